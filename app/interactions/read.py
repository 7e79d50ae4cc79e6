"""read: `GET [base]/[type]/[id]` (http.html#read), with conditional read (If-None-Match,
If-Modified-Since -> 304). Answered from the store; never waits for the index."""

from __future__ import annotations

from datetime import datetime
from email.utils import parsedate_to_datetime

from app.fhir.meta import parse_etag
from app.interactions._access import require, visible
from app.interactions._respond import etag_only, gone, not_found
from app.interactions.context import Services
from app.interactions.result import FhirRequest, FhirResponse


async def read(services: Services, request: FhirRequest) -> FhirResponse:
    assert request.type is not None and request.id is not None
    access = require(services, request.type, "r")
    stored = await services.store.read(request.type, request.id)
    if stored is None or (access.kind != "all" and not visible(services, access, stored)):
        raise not_found(request.type, request.id)
    if stored.deleted:
        raise gone(stored, request.base)
    headers = etag_only(stored)
    if _not_modified(request, stored.version, stored.last_updated):
        return FhirResponse(304, None, headers)
    return FhirResponse(200, stored.resource, headers)


def _not_modified(request: FhirRequest, version: int, last_updated: str) -> bool:
    if_none_match = request.header("If-None-Match")
    if if_none_match is not None:
        return if_none_match.strip() == "*" or parse_etag(if_none_match, "If-None-Match") == version
    if_modified_since = request.header("If-Modified-Since")
    if if_modified_since is not None:
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False  # an unparseable date is ignored, as HTTP says
        changed = datetime.fromisoformat(last_updated.replace("Z", "+00:00"))
        return changed.replace(microsecond=0) <= since
    return False
