"""update: `PUT [base]/[type]/[id]` and conditional update `PUT [base]/[type]?criteria`
(http.html#update, #cond-update), with `If-Match` (412 on a version mismatch).

Update-as-create with a client id is allowed unless MICDR_ALLOW_UPDATE_CREATE=0. An update whose
content equals the current version is a no-op: 200 with the current version, no new version.
"""

from __future__ import annotations

from urllib.parse import urlencode

from app.fhir.meta import check_id, parse_etag
from app.interactions._respond import write_response
from app.interactions._write import execute
from app.interactions.context import Services
from app.interactions.result import FhirRequest, FhirResponse
from app.tx.conditional import parse_criteria
from app.tx.entry import Entry, check_entry


def single_entry(request: FhirRequest, method: str, body_field: str) -> Entry:
    """The Entry for a write request alone (not in a Bundle)."""
    assert request.type is not None
    if_match = request.header("If-Match")
    criteria = None
    if request.id is None:
        criteria = parse_criteria(request.type, urlencode(list(request.query)))
    else:
        check_id(request.id)
    entry = Entry(
        index=-1,
        method=method,
        type=request.type,
        id=request.id,
        criteria=criteria,
        resource=request.body if body_field == "resource" else None,
        patch=request.body if body_field == "patch" else None,
        if_match=parse_etag(if_match) if if_match else None,
        url=f"{request.type}/{request.id}"
        if request.id
        else f"{request.type}?{criteria and criteria.query}",
    )
    check_entry(entry)
    return entry


async def update(services: Services, request: FhirRequest) -> FhirResponse:
    plan = await execute(services, [single_entry(request, "PUT", "resource")])
    return write_response(plan.results[0], request.base)
