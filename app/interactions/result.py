"""An interaction's answer as data; app/http/render.py puts it on the wire."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FhirRequest:
    """The parts of an HTTP request the interactions use, already split by the router."""

    base: str
    type: str | None = None
    id: str | None = None
    version: str | None = None
    file: str | None = None  # an export's output file (`$export-file/<id>/<file>`)
    query: tuple[tuple[str, str], ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def param(self, name: str) -> str | None:
        return next((v for k, v in self.query if k == name), None)


@dataclass(frozen=True)
class FhirResponse:
    status: int
    resource: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # Create/update/patch answers honour `Prefer: return=...`.
    is_write: bool = False
    # A body that is not a FHIR resource (a Bulk Data manifest, NDJSON): `raw` bytes or a
    # `stream` of them, sent as `media_type`.
    raw: bytes | None = None
    stream: AsyncIterator[bytes] | None = None
    media_type: str | None = None
