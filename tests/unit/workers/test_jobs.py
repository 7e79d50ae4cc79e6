"""workers/jobs.py `process_submission` at its crash points, on the SQLite store: a worker that
dies after its commit but before storing the result is replayed, not re-run (no second write);
a transient store failure is retried; a submission whose worker keeps dying is dead-lettered.
Mechanism: docs/implementation/async.md."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from app.deploy.assemble import assemble
from app.deploy.engines import Engines, open_engines
from app.interactions.async_status import new_submission
from app.interactions.bundle import submit_bundle
from app.interactions.context import Services
from app.interactions.export import export_system
from app.interactions.result import FhirRequest
from app.settings import load_settings
from app.store.port import HistoryQuery, StoreError
from workers.context import JobContext
from workers.jobs import (
    process_submission,
    project_commits,
    project_in_turn,
    reconcile_submissions,
)


class CrashAfterCommit:
    """The store, except that finishing a submission fails once: the worker "died" after its
    commit and before it stored the result."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.crashes = 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _maybe_crash(self, changes: Mapping[str, Any]) -> None:
        if changes.get("state") == "done" and self.crashes:
            self.crashes -= 1
            raise StoreError("crash")

    async def update_submission(
        self, id: str, expect: Mapping[str, Any], changes: Mapping[str, Any]
    ) -> Any:
        self._maybe_crash(changes)
        return await self._store.update_submission(id, expect, changes)

    async def amend_submission(
        self, id: str, expect: Mapping[str, Any], changes: Mapping[str, Any]
    ) -> bool:
        self._maybe_crash(changes)
        return bool(await self._store.amend_submission(id, expect, changes))


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[Engines, Services]]:
    settings = load_settings(
        {
            "MICDR_DATA_DIR": str(tmp_path),
            "MICDR_ASYNC_CONCURRENCY": "0",
            "MICDR_ASYNC_MAX_ATTEMPTS": "3",
        }
    )
    engines = await open_engines(settings)
    try:
        yield engines, (await assemble(settings, engines)).services
    finally:
        await engines.close()


def transaction(n: int = 2) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Basic", "code": {"text": str(i)}},
                "request": {"method": "POST", "url": "Basic"},
            }
            for i in range(n)
        ],
    }


def job(services: Services, store: Any) -> JobContext:
    assert services.index is not None
    return JobContext(store, services.index, replace(services, store=store))


async def basics(services: Services) -> int:
    return len(await services.store.history(HistoryQuery(type="Basic", count=100)))


async def test_a_redelivery_after_the_commit_replays_it(
    running: tuple[Engines, Services],
) -> None:
    _, services = running
    request = FhirRequest(base="http://x/fhir", body=transaction(), headers={})
    sub = await services.store.submit(new_submission("transaction", request, "POST", time.time()))
    crashing = CrashAfterCommit(services.store)
    with pytest.raises(StoreError):
        await process_submission(job(services, crashing), sub.id)
    assert (await services.store.submission(sub.id)).state == "running"  # type: ignore[union-attr]
    assert await basics(services) == 2

    # the lease "expired" (the worker is gone): the reconciler queues it again, a worker runs it
    again = job(services, services.store)
    assert [s.id for s in await reconcile_submissions(again, math.inf)] == [sub.id]
    assert (await process_submission(again, sub.id)).state == "done"
    assert await basics(services) == 2  # no second write
    done = await services.store.submission(sub.id)
    assert done is not None and done.attempts == 1
    entries = done.result["body"]["entry"]  # type: ignore[index]
    assert [e["response"]["status"] for e in entries] == ["201 Created"] * 2


async def test_a_second_delivery_of_a_running_or_done_job_is_skipped(
    running: tuple[Engines, Services],
) -> None:
    _, services = running
    request = FhirRequest(base="http://x/fhir", body=transaction(1), headers={})
    sub = await services.store.submit(new_submission("transaction", request, "POST", time.time()))
    ctx = job(services, services.store)
    assert (await process_submission(ctx, sub.id)).state == "done"
    assert (await process_submission(ctx, sub.id)).state == "skipped"
    assert await basics(services) == 1


async def test_a_worker_that_keeps_dying_dead_letters_the_submission(
    running: tuple[Engines, Services],
) -> None:
    _, services = running
    request = FhirRequest(base="http://x/fhir", body=transaction(1), headers={})
    sub = await services.store.submit(new_submission("transaction", request, "POST", time.time()))
    ctx = job(services, services.store)
    for _ in range(3):
        claimed = await services.store.claim_submission(sub.id, "dying", time.time(), 0.0)
        if claimed is None:
            break
        await reconcile_submissions(ctx, math.inf)
    dead = await services.store.submission(sub.id)
    assert dead is not None and dead.state == "dead"
    assert dead.result is not None and dead.result["status"] == 500


async def test_a_submission_without_its_submitter_is_refused_on_an_authenticated_server(
    running: tuple[Engines, Services], tmp_path: Path
) -> None:
    _, services = running
    request = FhirRequest(base="http://x/fhir", body=transaction(1), headers={})
    sub = await services.store.submit(new_submission("transaction", request, "POST", time.time()))
    assert sub.principal is None
    authenticated = replace(
        services, settings=replace(services.settings, auth_jwks_file=tmp_path / "jwks.json")
    )
    assert (await process_submission(job(authenticated, services.store), sub.id)).state == "failed"
    refused = await services.store.submission(sub.id)
    assert refused is not None and refused.result is not None
    assert refused.result["status"] == 401
    assert await basics(services) == 0  # nothing written


class HeldOutbox:
    """The store, except that the first read of the outbox waits for `release` and finds it
    empty (the query ran before a commit another job rang for): what the projecting job sees
    while a second job arrives."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.reading, self.release = asyncio.Event(), asyncio.Event()
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def unindexed(self, limit: int, after: int = 0) -> list[Any]:
        self.reads += 1
        if self.reads == 1:
            self.reading.set()
            await self.release.wait()
            return []
        return list(await self._store.unindexed(limit, after))


async def test_a_second_projecting_job_of_a_process_leaves_and_the_first_looks_again(
    running: tuple[Engines, Services],
) -> None:
    _, services = running
    store = HeldOutbox(services.store)
    ctx = job(services, store)
    first = asyncio.create_task(project_in_turn(ctx))
    await store.reading.wait()
    assert await project_in_turn(ctx) == 0  # left at once, without reading the outbox
    assert store.reads == 1
    store.release.set()
    await first
    assert store.reads >= 2  # the first looked again, as asked (it had found nothing)
    before = store.reads
    await project_in_turn(ctx)
    assert store.reads > before  # alone now: it reads the outbox itself


async def test_projection_stops_after_the_batch_during_which_its_time_ran_out(
    running: tuple[Engines, Services],
) -> None:
    _, services = running
    for _ in range(3):
        await submit_bundle(services, FhirRequest(base="http://x/fhir", body=transaction(1)))
    store = CountedOutbox(services.store)
    projected = await project_commits(job(services, store), batch=1, until=time.monotonic())
    assert (projected, store.reads) == (1, 1)  # one batch, and the outbox not read again


class CountedOutbox:
    """The store, counting the reads of the outbox."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def unindexed(self, limit: int, after: int = 0) -> list[Any]:
        self.reads += 1
        return list(await self._store.unindexed(limit, after))


async def test_an_export_is_audited_before_it_shows_as_done(
    running: tuple[Engines, Services],
) -> None:
    """A worker that dies while storing a finished export's result has written its audit line
    already; the retry writes it again (at least once, never lost), then finishes it."""
    _, services = running
    headers = {"accept": "application/fhir+json", "prefer": "respond-async"}
    request = FhirRequest(base="http://x/fhir", query=(("_type", "Basic"),), headers=headers)
    await submit_bundle(services, FhirRequest(base="http://x/fhir", body=transaction(2)))
    kicked = await export_system(services, request)
    sub_id = kicked.headers["Content-Location"].rsplit("/", 1)[1]
    audit = Path(services.settings.audit_path)

    def finished_lines() -> list[dict[str, Any]]:
        lines = [orjson.loads(line) for line in audit.read_bytes().splitlines()]
        return [line for line in lines if line.get("submission") == sub_id and line.get("async")]

    crashing = CrashAfterCommit(services.store)
    assert (await process_submission(job(services, crashing), sub_id)).state == "queued"
    assert (await services.store.submission(sub_id)).state == "queued"  # type: ignore[union-attr]
    assert [line["detail"] for line in finished_lines()] == ["exported 2 resources in 1 files"]

    # its backoff over, the retry runs it to its end
    await services.store.update_submission(sub_id, {"state": "queued"}, {"not_before": 0.0})
    assert (await process_submission(job(services, services.store), sub_id)).state == "done"
    assert [line["detail"] for line in finished_lines()] == ["exported 2 resources in 1 files"] * 2
