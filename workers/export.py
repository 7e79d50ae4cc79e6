"""The Bulk Data export job (docs/api/export.md): read the snapshot from the store type by type
in batches, write each batch's NDJSON lines as one chunk, save the checkpoint, and at the end
the manifest as the export's result.

An export is a stored submission (`request.interaction` = `export`), so it has the
submissions' lease, heartbeat, retries and re-queueing after a worker died
(docs/implementation/async.md). Its checkpoint (app/bulk/output.py `ExportState`) is saved in
the submission's journal with the same fence as every other change (still `running`, still
this worker's), after the chunk it counts: a worker killed at any point leaves at most one
chunk the checkpoint does not count, which the next attempt writes again under the same key.
Memory holds one batch. Between batches the job yields, so exports running together take
turns. Why it is built so: docs/decisions/0007-bulk-export-snapshots-and-chunks.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl

from app.bulk.kickoff import ExportRequest
from app.bulk.output import (
    ExportState,
    Selection,
    advance,
    manifest,
    missing_patients,
    ndjson_line,
    output_types,
    progress,
    with_errors,
)
from app.bulk.port import ExportFiles
from app.interactions._access import visible
from app.interactions._chains import resolve_plan
from app.interactions.replay import audit_job, submitted_principal
from app.security.scopes import Access, Forbidden, access_for
from app.store.port import Submission
from indexing.compartment import Compartment
from indexing.plan.parse import parse_search
from workers import outcomes
from workers.bulk import run_bulk_job, save_checkpoint
from workers.context import JobContext

log = logging.getLogger("micdr.export")

SETTLE_POLL_SECONDS = 0.25
SETTLE_WARN_SECONDS = 5.0


def _files(ctx: JobContext) -> ExportFiles:
    files = ctx.services.files
    assert files is not None, "app/deploy hands every process its export files"
    return files


async def _accesses(
    ctx: JobContext, sub: Submission, types: tuple[str, ...]
) -> Mapping[str, Access]:
    """What the submitter may read of each type (types it may not read at all are left out)."""
    principal = submitted_principal(sub)
    out: dict[str, Access] = {}
    for type_ in types:
        try:
            out[type_] = access_for(principal, type_, "r")
        except Forbidden:
            continue
    return out


async def _save(
    ctx: JobContext, sub: Submission, state: ExportState, changes: Mapping[str, Any] | None = None
) -> None:
    await save_checkpoint(ctx, sub, ExportState.KIND, state.to_json(), progress(state), changes)


async def produce_export(ctx: JobContext, sub: Submission) -> str:
    """Run a claimed export to its end (or until it stops being this worker's); answers the
    state it left: `done`, or `lost` (cancelled: its files removed)."""
    return await run_bulk_job(ctx, sub, _produce)


async def _produce(ctx: JobContext, sub: Submission) -> None:
    store, settings, files = ctx.store, ctx.settings, _files(ctx)
    request = ExportRequest.from_json(sub.request["export"])
    seq = int(sub.request["seq"])
    waited = 0.0
    while not await store.settled(seq):
        if waited == SETTLE_WARN_SECONDS:
            log.warning("export %s waits for the transactions up to %d to finish", sub.id, seq)
        await asyncio.sleep(SETTLE_POLL_SECONDS)
        waited += SETTLE_POLL_SECONDS
    if request.type_filters:  # filters are searched in the index: it must hold the snapshot
        while (oldest := await store.unindexed(1)) and oldest[0].seq <= seq:
            await asyncio.sleep(SETTLE_POLL_SECONDS)
    compartment = Compartment.load()
    saved = sub.journal.get(ExportState.KIND)
    if saved is not None:
        state = ExportState.from_json(saved)
    else:
        types = output_types(request, compartment, await store.snapshot_types(seq))
        state = ExportState(types=types)
    accesses = await _accesses(ctx, sub, state.types)
    selection = Selection(request, compartment, ctx.registry)
    services = ctx.services
    while not state.done:
        type_ = state.types[state.position]
        access = accesses.get(type_)
        if access is None:  # the submitter may not read this type: nothing of it
            state, _ = advance(state, [], None, settings.export_file_bytes)
            await _save(ctx, sub, state)
            continue
        page = await store.scan_as_of(type_, seq, state.after, settings.export_batch)
        taken = [s for s in page.resources if selection.takes(s) and visible(services, access, s)]
        filters = request.filters_of(type_)
        if filters and taken:
            matched = await _matching(ctx, type_, filters, [s.id for s in taken])
            taken = [s for s in taken if s.id in matched]
        lines = [ndjson_line(s.resource, type_, request.elements) for s in taken if s.resource]
        seen = [s.id for s in taken] if type_ == "Patient" and request.patients else []
        state, chunk = advance(state, lines, page.after, settings.export_file_bytes, seen)
        if chunk is not None:
            await files.put(sub.id, chunk.file, chunk.index, chunk.data)
        await _save(ctx, sub, state)
        await asyncio.sleep(0)  # let other exports take a turn
    state, chunk = with_errors(state, missing_patients(request, state))
    if chunk is not None:
        await files.put(sub.id, chunk.file, chunk.index, chunk.data)
    base = sub.request["base"]
    body = manifest(
        state,
        transaction_time=sub.request["transactionTime"],
        request_url=sub.request["url"],
        file_url=f"{base}/$export-file/{sub.id}",
        requires_token=settings.auth_configured,
    )
    result = {"status": 200, "headers": {}, "body": body}
    changes = outcomes.finished("done", result, time.time(), settings.export_retention, None)
    # audited before it shows as done: whoever sees it complete finds its audit line, and a
    # crash between the two writes the line again rather than never
    audit_job(
        services,
        sub,
        200,
        None,
        f"exported {state.count} resources in {len(body['output'])} files",
    )
    await _save(ctx, sub, state, changes)
    log.info("export %s: %d resources in %d files", sub.id, state.count, len(body["output"]))


async def _matching(ctx: JobContext, type_: str, filters: list[str], ids: list[str]) -> set[str]:
    """Which of `ids` match one of the `_typeFilter` searches of `type_` (in the index: the
    criteria see each resource's indexed version, its current one)."""
    matched: set[str] = set()
    for query in filters:
        pairs = [*parse_qsl(query, keep_blank_values=True), ("_id", ",".join(ids))]
        plan = parse_search(
            ctx.registry, type_, pairs, strict=True, default_count=len(ids), max_count=len(ids)
        )
        plan = await resolve_plan(ctx.services, replace(plan, count=len(ids)))
        matched |= {hit.id for hit in (await ctx.index.search(plan)).hits}
    return matched


async def purge_exports(ctx: JobContext, now: float) -> int:
    """Remove the files of exports that expired, were cancelled or are forgotten; answers how
    many exports' files were removed."""
    files = _files(ctx)
    removed = 0
    for export_id in await files.exports():
        sub = await ctx.store.submission(export_id)
        if sub is None or sub.state == "cancelled" or (sub.expires and sub.expires < now):
            with contextlib.suppress(OSError):
                await files.remove(export_id)
                removed += 1
    return removed
