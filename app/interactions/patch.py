"""patch: `PATCH [base]/[type]/[id]` and conditional patch (http.html#patch), with JSON Patch
(`application/json-patch+json`) or FHIRPath Patch (a `Parameters` resource)."""

from __future__ import annotations

from app.interactions._respond import write_response
from app.interactions._write import execute
from app.interactions.context import Services
from app.interactions.result import FhirRequest, FhirResponse
from app.interactions.update import single_entry


async def patch(services: Services, request: FhirRequest) -> FhirResponse:
    plan = await execute(services, [single_entry(request, "PATCH", "patch")])
    return write_response(plan.results[0], request.base)
