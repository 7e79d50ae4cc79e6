"""`POST [base]` and the IG's `POST [base]/Bundle` (Submit MI Bundle): a transaction or a batch,
by Bundle.type (IG R5, R6); any other Bundle type is refused."""

from __future__ import annotations

from app.fhir.outcome import FhirError
from app.interactions.batch import batch
from app.interactions.context import Services
from app.interactions.result import FhirRequest, FhirResponse
from app.interactions.transaction import transaction


async def submit_bundle(services: Services, request: FhirRequest) -> FhirResponse:
    kind = request.body.get("type") if isinstance(request.body, dict) else None
    if kind == "transaction":
        return await transaction(services, request)
    if kind == "batch":
        return await batch(services, request)
    raise FhirError.of(
        400,
        "invalid",
        f"Bundle.type must be transaction or batch to be processed, not {kind!r}",
        "Bundle.type",
    )
