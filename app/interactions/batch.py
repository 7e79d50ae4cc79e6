"""batch: `POST [base]` with a `batch` Bundle (http.html#transaction): every entry on its own,
each with its own status, or an OperationOutcome where it failed.

`commit_independent` is the same promise for a bulk load (`micdr load`, `$import`): independent
writes committed together while they all succeed, so that a thousand resources cost one
commit."""

from __future__ import annotations

from typing import Any

from app.fhir.bundles import bundle
from app.fhir.clock import utc_now
from app.fhir.meta import identifier_tokens
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


def independent_runs(entries: list[Entry]) -> list[list[Entry]]:
    """`entries` cut, in order, into runs in which no two entries name the same resource, the
    same condition or the same business identifier: in one commit those would be planned
    against the store as it was before either (two resources for one identifier, where one
    after the other the second finds the first)."""
    runs: list[list[Entry]] = []
    seen: set[tuple[str, ...]] = set()
    for entry in entries:
        keys = {("ref", entry.type, entry.id or "")} if entry.id else set()
        if entry.criteria is not None:
            keys.add(("criteria", *entry.criteria.key))
        tokens = identifier_tokens(entry.resource or {})
        keys.update(("identifier", entry.type, t) for t in tokens if "|" in t)
        if not runs or keys & seen:
            runs.append([])
            seen = set()
        runs[-1].append(entry)
        seen |= keys
    return runs


async def commit_independent(
    services: Services, raw_entries: list[dict[str, Any]], base: str
) -> list[dict[str, Any]]:
    """The batch-response entries of a bulk load's write entries (no entry depends on
    another), in their order, as a batch would answer them one after another: each run of
    `independent_runs` is one commit, and where that fails, each half on its own, down to the
    entries that fail alone. Only the number of commits differs (one per run, plus about log2
    of its size per failing entry)."""
    answers: dict[int, dict[str, Any]] = {}
    entries = []
    for index, raw in enumerate(raw_entries):
        try:
            entries.append(entry_from_bundle(index, raw, services.resource_types))
        except FhirError as err:
            answers[index] = failed_entry(err)
    for run in independent_runs(entries):
        committed = await _commit_run(services, run, base)
        answers.update(zip((e.index for e in run), committed, strict=True))
    return [answers[i] for i in range(len(raw_entries))]


async def _commit_run(services: Services, entries: list[Entry], base: str) -> list[dict[str, Any]]:
    try:
        plan = await execute(services, entries)
    except FhirError as err:
        if len(entries) == 1:
            return [failed_entry(err)]
        half = len(entries) // 2
        return await _commit_run(services, entries[:half], base) + await _commit_run(
            services, entries[half:], base
        )
    return [write_entry(result, base, "minimal") for result in plan.results]
