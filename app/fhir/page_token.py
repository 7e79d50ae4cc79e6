"""Opaque, tamper-proof paging tokens: the search and where to continue, signed (HMAC-SHA256).

A token carries the canonical query and the engine cursor of the previous page's last hit; the
signature stops a client from editing either (e.g. widening a search it may not run).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import orjson

from app.fhir.outcome import FhirError


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_page(secret: bytes, query: list[tuple[str, str]], cursor: Any) -> str:
    payload = orjson.dumps({"q": query, "c": cursor})
    signature = hmac.new(secret, payload, hashlib.sha256).digest()[:16]
    return f"{_b64(payload)}.{_b64(signature)}"


def decode_page(secret: bytes, token: str) -> tuple[list[tuple[str, str]], Any]:
    invalid = FhirError.of(400, "invalid", "_page is not a page link this server issued")
    try:
        payload_part, signature_part = token.split(".")
        payload = _unb64(payload_part)
        signature = _unb64(signature_part)
    except ValueError:
        raise invalid from None
    expected = hmac.new(secret, payload, hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(signature, expected):
        raise invalid
    data = orjson.loads(payload)
    return [(str(k), str(v)) for k, v in data["q"]], data["c"]
