"""The Bulk Data import job (docs/api/import.md): read the inputs in order, each in units of
NDJSON lines, commit each unit as `micdr load` does (app/interactions/batch.py
`commit_independent`: validation, the IG's rules, identity by id or business identifier,
versions, the outbox that projects and notifies), write the unit's refused lines as a chunk of
the input's error file, then save the checkpoint (app/bulk/imports.py `ImportState`) with the
same fence as an export's.

A `file:` input is read where it lies (inside MICDR_IMPORT_DIRS); an https one is downloaded
first to a temporary file from an address checked at that moment (workers/reach.py). An
input that cannot be read is one error of the manifest; the other inputs still load. Memory
holds one unit. Between units the job yields, so bulk jobs running together take turns.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx

from app.bulk.imports import (
    ImportRequest,
    ImportState,
    advance,
    input_refusal,
    local_file,
    manifest,
    next_input,
    progress,
)
from app.interactions.batch import commit_independent
from app.interactions.replay import audit_job, submitted_principal
from app.load import judge, ndjson_units
from app.store.port import Submission
from workers import outcomes
from workers.bulk import run_bulk_job, save_checkpoint
from workers.context import JobContext
from workers.reach import Reach, Unreachable, call, reach

DOWNLOAD_TIMEOUT_SECONDS = 300.0


class Unreadable(Exception):
    """An input the job cannot read (gone, refused, not answered with 200)."""


async def produce_import(ctx: JobContext, sub: Submission) -> str:
    """Run a claimed import to its end (or until it stops being this worker's); answers the
    state it left: `done`, or `lost` (cancelled: its files removed)."""
    return await run_bulk_job(ctx, sub, _produce)


async def _produce(ctx: JobContext, sub: Submission) -> None:
    files = ctx.services.files
    assert files is not None, "app/deploy hands every process its bulk files"
    request = ImportRequest.from_json(sub.request["import"])
    saved = sub.journal.get(ImportState.KIND)
    state = ImportState.from_json(saved) if saved is not None else ImportState()
    services = replace(ctx.services, principal=submitted_principal(sub))
    base = sub.request["base"]
    while state.position < len(request.inputs):
        url = request.inputs[state.position].url
        try:
            async with _readable(ctx, url) as path:
                for unit in ndjson_units(path, state.units):
                    answers = await commit_independent(services, unit.bundle["entry"], base)
                    outcome = judge(unit, 200, {"entry": answers})
                    state, chunk = advance(state, url, outcome.resources, outcome.rejects)
                    if chunk is not None:
                        await files.put(sub.id, chunk.file, chunk.index, chunk.data)
                    await _save(ctx, sub, state, len(request.inputs))
                    await asyncio.sleep(0)  # let other bulk jobs take a turn
        except Unreadable as err:
            state, chunk = advance(state, url, 0, [{"reason": f"not read: {err}"}])
            assert chunk is not None
            await files.put(sub.id, chunk.file, chunk.index, chunk.data)
        state = next_input(state)
        await _save(ctx, sub, state, len(request.inputs))
    body = manifest(
        state,
        request,
        transaction_time=sub.request["transactionTime"],
        request_url=sub.request["url"],
        file_url=f"{base}/$import-file/{sub.id}",
        requires_token=ctx.settings.auth_configured,
    )
    result = {"status": 200, "headers": {}, "body": body}
    settings = ctx.settings
    changes = outcomes.finished("done", result, time.time(), settings.export_retention, None)
    refused = sum(t.refused for t in state.tallies)
    # audited before it shows as done, as an export is (workers/export.py)
    audit_job(ctx.services, sub, 200, None, f"imported {state.loaded} resources, {refused} refused")
    await _save(ctx, sub, state, len(request.inputs), changes)


async def _save(
    ctx: JobContext,
    sub: Submission,
    state: ImportState,
    inputs: int,
    changes: dict[str, object] | None = None,
) -> None:
    await save_checkpoint(
        ctx, sub, ImportState.KIND, state.to_json(), progress(state, inputs), changes
    )


@contextlib.asynccontextmanager
async def _readable(ctx: JobContext, url: str) -> AsyncIterator[Path]:
    """The input as a local file: where it lies, or downloaded for the time of the block."""
    settings = ctx.settings
    why = input_refusal(url, settings.import_dirs, settings.import_allow_list)
    if why is not None:  # the operator changed the folders or the allow-list since kick-off
        raise Unreadable(why)
    path = local_file(url, settings.import_dirs)
    if path is not None:
        if not path.is_file():
            raise Unreadable(f"{path} is not a file")
        yield path
        return
    try:
        target = await reach(url, settings.import_allow_list, "input url")
    except Unreachable as exc:
        raise Unreadable(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="micdr-import-") as folder:
        path = Path(folder) / "input.ndjson"
        await _download(ctx, target, path)
        yield path


async def _download(ctx: JobContext, target: Reach, path: Path) -> None:
    url = target.url
    try:
        async with call(ctx.outbound, target, "GET", timeout=DOWNLOAD_TIMEOUT_SECONDS) as answer:
            if answer.status_code != 200:
                raise Unreadable(f"GET {url} answered {answer.status_code}")
            with path.open("wb") as out:
                async for data in answer.aiter_bytes():
                    out.write(data)
    except httpx.HTTPError as exc:
        raise Unreadable(f"GET {url}: {type(exc).__name__}: {exc}") from None
