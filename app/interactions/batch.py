"""batch: `POST [base]` with a `batch` Bundle (http.html#transaction): every entry on its own,
each with its own status, or an OperationOutcome where it failed.

`commit_each` is the same promise for a bulk load (`micdr load`, `$import`): independent writes
committed together while they all succeed, so that a thousand resources cost one commit."""

from __future__ import annotations

from typing import Any

from app.fhir.bundles import bundle
from app.fhir.clock import utc_now
from app.fhir.outcome import FhirError
from app.interactions._entries import failed_entry, write_entry
from app.interactions._reads import read_entry
from app.interactions._write import execute
from app.interactions.context import Services
from app.interactions.result import FhirRequest, FhirResponse
from app.interactions.transaction import bundle_entries, prefer_return
from app.tx.entry import Entry, entry_from_bundle


async def batch(services: Services, request: FhirRequest) -> FhirResponse:
    prefer = prefer_return(request)
    out: list[dict[str, Any]] = []
    for index, raw in enumerate(bundle_entries(services, request.body, "batch")):
        try:
            entry = entry_from_bundle(index, raw, services.resource_types)
            if entry.method in ("GET", "HEAD"):
                head = entry.method == "HEAD"
                out.append(await read_entry(services, request.base, entry.url, head))
                continue
            plan = await execute(services, [entry])
            out.append(write_entry(plan.results[0], request.base, prefer))
        except FhirError as err:
            out.append(failed_entry(err))
    return FhirResponse(200, bundle("batch-response", out, utc_now()))


async def commit_each(services: Services, entries: list[Entry], base: str) -> list[dict[str, Any]]:
    """The batch-response entries of independent write `entries`, in their order: one commit
    for all of them, and where that fails, each half on its own, down to the entries that fail
    alone. Each entry succeeds or fails as it would in a batch; only the number of commits
    differs (about log2 of the group's size per failing entry)."""
    try:
        plan = await execute(services, entries)
    except FhirError as err:
        if len(entries) == 1:
            return [failed_entry(err)]
        half = len(entries) // 2
        return await commit_each(services, entries[:half], base) + await commit_each(
            services, entries[half:], base
        )
    return [write_entry(result, base, "minimal") for result in plan.results]
