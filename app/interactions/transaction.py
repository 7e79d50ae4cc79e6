"""transaction: `POST [base]` (and the IG's `POST [base]/Bundle`) with a `transaction` Bundle
(http.html#transaction). All entries succeed or none does (R12); failures name the entry."""

from __future__ import annotations

from typing import Any

from app.fhir.bundles import bundle
from app.fhir.clock import utc_now
from app.fhir.outcome import FhirError
from app.ig.submissions import check_submission
from app.interactions._entries import write_entry
from app.interactions._reads import read_entry
from app.interactions._write import execute
from app.interactions.context import Services
from app.interactions.result import FhirRequest, FhirResponse
from app.tx.entry import entry_from_bundle


def bundle_entries(services: Services, body: Any, kind: str) -> list[Any]:
    """The raw entries of a `kind` Bundle, within the configured size limit."""
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        raise FhirError.of(400, "invalid", f"a {kind} must be a Bundle resource")
    entries = body.get("entry") or []
    if not isinstance(entries, list):
        raise FhirError.of(400, "structure", "Bundle.entry must be an array", "Bundle.entry")
    limit = services.settings.max_bundle_entries
    if len(entries) > limit:
        raise FhirError.of(
            413,
            "too-costly",
            f"the Bundle has {len(entries)} entries; this server accepts at most {limit} "
            "(MICDR_MAX_BUNDLE_ENTRIES)",
            "Bundle.entry",
        )
    return entries


def prefer_return(request: FhirRequest, default: str = "minimal") -> str:
    """`Prefer: return=...` (minimal | representation | OperationOutcome), else `default`."""
    prefer = request.header("Prefer") or ""
    for part in prefer.split(";"):
        for token in part.split(","):
            name, _, value = token.strip().partition("=")
            if name.strip() == "return":
                return value.strip().strip('"')
    return default


async def transaction(services: Services, request: FhirRequest) -> FhirResponse:
    raw = bundle_entries(services, request.body, "transaction")
    if services.settings.ig_mode:
        check_submission(request.body, services.settings.report_bundle_profiles)
    entries = [entry_from_bundle(i, e, services.resource_types) for i, e in enumerate(raw)]
    plan = await execute(services, entries)
    prefer = prefer_return(request)
    out = []
    for result in plan.results:
        if result.entry.method in ("GET", "HEAD"):
            head = result.entry.method == "HEAD"
            out.append(await read_entry(services, request.base, result.entry.url, head))
        else:
            out.append(write_entry(result, request.base, prefer))
    return FhirResponse(200, bundle("transaction-response", out, utc_now()))
