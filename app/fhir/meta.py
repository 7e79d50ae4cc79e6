"""Versions, ETags and server-assigned metadata (http.html#versioning), as pure functions."""

from __future__ import annotations

import re
import uuid
from typing import Any

from app.fhir.outcome import FhirError

_ETAG = re.compile(r'^\s*(?:W/)?"(\d+)"\s*$')
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def new_id() -> str:
    return str(uuid.uuid4())


def etag(version: int) -> str:
    return f'W/"{version}"'


def parse_etag(header: str, name: str = "If-Match") -> int:
    """`W/"3"` or `"3"` -> 3; anything else is a 400."""
    match = _ETAG.match(header)
    if match is None:
        raise FhirError.of(
            400, "invalid", f'{name} must be a version ETag like W/"3", not {header!r}'
        )
    return int(match.group(1))


def check_id(id_: str) -> str:
    if not _ID.match(id_):
        raise FhirError.of(
            400, "invalid", f"{id_!r} is not a valid id (1-64 of A-Z a-z 0-9 - .)", "id"
        )
    return id_


def with_meta(
    resource: dict[str, Any], id_: str, version: int, last_updated: str
) -> dict[str, Any]:
    """A copy of `resource` with the server's id, versionId and lastUpdated; the client's other
    meta elements (profile, tag, security, source) are kept. `id` and `meta` come first."""
    meta = {
        k: v
        for k, v in (resource.get("meta") or {}).items()
        if k not in ("versionId", "lastUpdated")
    }
    out: dict[str, Any] = {
        "resourceType": resource["resourceType"],
        "id": id_,
        "meta": {"versionId": str(version), "lastUpdated": last_updated, **meta},
    }
    out.update((k, v) for k, v in resource.items() if k not in ("resourceType", "id", "meta"))
    return out


def same_content(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """True when two versions differ at most in id, versionId and lastUpdated (a no-op update)."""
    return _content(a) == _content(b)


def _content(resource: dict[str, Any]) -> dict[str, Any]:
    meta = {
        k: v
        for k, v in (resource.get("meta") or {}).items()
        if k not in ("versionId", "lastUpdated")
    }
    body = {k: v for k, v in resource.items() if k not in ("id", "meta")}
    if meta:
        body["meta"] = meta
    return body


def identifier_tokens(resource: dict[str, Any]) -> tuple[str, ...]:
    """Store-side lookup tokens of `resource.identifier`: `system|value` and `value` (any system),
    or `|value` and `value` for an identifier without a system."""
    tokens: list[str] = []
    identifiers = resource.get("identifier")
    if isinstance(identifiers, dict):  # a few types have identifier 0..1
        identifiers = [identifiers]
    for ident in identifiers or ():
        if not isinstance(ident, dict) or not isinstance(ident.get("value"), str):
            continue
        value = ident["value"]
        system = ident.get("system")
        tokens.append(f"{system}|{value}" if isinstance(system, str) else f"|{value}")
        tokens.append(value)
    return tuple(dict.fromkeys(tokens))
