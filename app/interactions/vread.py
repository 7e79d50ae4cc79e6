"""vread: `GET [base]/[type]/[id]/_history/[vid]` (http.html#vread)."""

from __future__ import annotations

from app.fhir.outcome import FhirError
from app.interactions._access import require, visible
from app.interactions._respond import etag_only, gone
from app.interactions.context import Services
from app.interactions.result import FhirRequest, FhirResponse

_MAX_VERSION = 2**63 - 1


async def vread(services: Services, request: FhirRequest) -> FhirResponse:
    assert request.type is not None and request.id is not None and request.version is not None
    version = request.version
    # ASCII digits only ("²".isdigit() is true), and within the stores' 64-bit integers.
    if not (version.isascii() and version.isdigit()) or int(version) > _MAX_VERSION:
        raise FhirError.of(404, "not-found", f"version {version!r} is not a version number")
    access = require(services, request.type, "r")
    stored = await services.store.vread(request.type, request.id, int(version))
    if stored is None or (access.kind != "all" and not visible(services, access, stored)):
        raise FhirError.of(
            404, "not-found", f"{request.type}/{request.id} has no version {request.version}"
        )
    if stored.deleted:
        raise gone(stored, request.base)
    return FhirResponse(200, stored.resource, etag_only(stored))
