"""delete: `DELETE [base]/[type]/[id]` and conditional delete (http.html#delete).

Deletes are versioned: a tombstone version is written, read answers 410, history shows it.
Deleting an already deleted resource is a 204 with no new version; an unknown id is a 404; a
condition matching several resources is a 412.
"""

from __future__ import annotations

from app.interactions._respond import not_found
from app.interactions._write import execute
from app.interactions.context import Services
from app.interactions.result import FhirRequest, FhirResponse
from app.interactions.update import single_entry


async def delete(services: Services, request: FhirRequest) -> FhirResponse:
    plan = await execute(services, [single_entry(request, "DELETE", "none")])
    result = plan.results[0]
    if result.status == 404:
        assert request.type is not None and request.id is not None
        raise not_found(request.type, request.id)
    headers = {"ETag": f'W/"{result.version}"'} if result.version is not None else {}
    return FhirResponse(204, None, headers)
