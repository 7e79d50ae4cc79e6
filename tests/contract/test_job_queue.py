"""The `JobQueue` port (workers/port.py): one suite, both adapters.

`inprocess` (the embedded runner) always runs; `arq` runs on the real stack (FerretDB,
Elasticsearch, Redis) with a long-lived worker in the test's event loop, and is marked
integration. Writes are made with a silent queue, so that only the call under test asks for the
work. Both adapters also have fallbacks that find work by themselves (the in-process runner
polls every 2 s, the arq reconciler of commits runs every 15 s); the projection and reindex
checks wait less than that (`Harness.doorbell`), so a doorbell that does not ring is caught.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from app.deploy.assemble import deploy
from app.interactions.async_status import new_submission
from app.interactions.context import Services
from app.interactions.create import create
from app.interactions.export import export_system
from app.interactions.result import FhirRequest
from app.interactions.search import search
from app.settings import load_settings
from tests._full_stack import drop, full_stack_env, start_worker, unique_name
from workers.port import JobQueue

QUEUES = ["inprocess", pytest.param("arq", marks=pytest.mark.integration)]
BASE = "http://micdr.local/fhir"
# How long a rung doorbell may take: below the in-process runner's 2 s poll, and, for arq
# (a worker polling Redis, Elasticsearch's refresh), well below its 15 s reconciler.
DOORBELL_SECONDS = {"inprocess": 1.8, "arq": 6.0}
REBUILD_SECONDS = 30.0


class SilentQueue:
    """A queue that asks for nothing: writes through it leave their work to the call under
    test."""

    async def wake(self, seq: int) -> None:
        return None

    async def submit(self, submission_id: str) -> None:
        return None

    async def bulk(self, submission_id: str) -> None:
        return None

    async def request_reindex(self, seq: int, types: Sequence[str]) -> None:
        return None

    async def deliver(self, subscriptions: Sequence[str]) -> None:
        return None

    async def rebuild_lost_index(self) -> None:
        return None

    async def drain(self) -> int:
        return 0

    async def close(self) -> None:
        return None


@dataclass(frozen=True)
class Harness:
    queue: JobQueue
    services: Services  # over the same store and index as the queue's jobs
    runs_here: bool  # the jobs run in this process (in-process), not in workers (arq)
    doorbell: float  # seconds

    @property
    def silent(self) -> Services:
        return replace(self.services, queue=SilentQueue())


@pytest.fixture(params=QUEUES)
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    env = {"MICDR_DATA_DIR": str(tmp_path), "MICDR_IG_MODE": "0"}
    if request.param == "arq":
        env.update(await full_stack_env(unique_name()))
    settings = load_settings(env)
    deployment = await deploy(settings)
    stop_worker = start_worker(settings) if request.param == "arq" else None
    try:
        await warm_up(deployment.services)
        yield Harness(
            deployment.queue,
            deployment.services,
            request.param == "inprocess",
            DOORBELL_SECONDS[request.param],
        )
    finally:
        if stop_worker is not None:
            await stop_worker()
        await deployment.close()
        if request.param == "arq":
            with contextlib.suppress(Exception):
                await drop(settings)


async def within(seconds: float, done: Callable[[], Awaitable[bool]]) -> bool:
    """Whether `done` answers True before `seconds` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await done():
            return True
        await asyncio.sleep(0.05)
    return await done()


async def warm_up(services: Services) -> None:
    """Write through the queue and wait until it is searchable: the workers are running."""
    body = {"resourceType": "Patient", "name": [{"family": "WarmUp"}]}
    await create(services, FhirRequest(BASE, type="Patient", body=body))

    async def searchable() -> bool:
        try:
            return await found(services, "WarmUp") == 1
        except Exception:  # a new Elasticsearch index answers 503 until its shards start
            return False

    assert await within(30.0, searchable), "the queue's workers did not start"


async def write_patient(services: Services, family: str) -> int:
    """Create a Patient; answers its commit's sequence (the commit stays unindexed)."""
    body = {"resourceType": "Patient", "name": [{"family": family}]}
    await create(services, FhirRequest(BASE, type="Patient", body=body))
    commits = await services.store.unindexed(10)
    assert commits, "the silent queue projected nothing"
    return commits[-1].seq


async def found(services: Services, family: str) -> int:
    answer = await search(services, FhirRequest(BASE, type="Patient", query=(("family", family),)))
    assert answer.resource is not None
    return len(answer.resource.get("entry") or [])


async def test_a_woken_commit_is_projected(harness: Harness) -> None:
    seq = await write_patient(harness.silent, "Woken")
    assert await found(harness.services, "Woken") == 0

    await harness.queue.wake(seq)

    async def projected() -> bool:
        return await harness.services.store.oldest_unindexed() is None

    assert await within(harness.doorbell, projected)
    assert await found(harness.services, "Woken") == 1


async def test_waking_the_same_commit_twice_projects_it_once(harness: Harness) -> None:
    seq = await write_patient(harness.silent, "Twice")
    await harness.queue.wake(seq)
    await harness.queue.wake(seq)

    async def searchable() -> bool:
        return await found(harness.services, "Twice") == 1

    assert await within(harness.doorbell, searchable)
    await asyncio.sleep(0.3)
    assert await found(harness.services, "Twice") == 1


async def test_a_requested_reindex_indexes_the_types_from_the_store(harness: Harness) -> None:
    seq = await write_patient(harness.silent, "Reindexed")
    await harness.queue.request_reindex(seq, ["Patient"])

    async def searchable() -> bool:
        return await found(harness.services, "Reindexed") == 1

    assert await within(harness.doorbell, searchable)


async def test_a_lost_index_is_rebuilt_for_every_type(harness: Harness) -> None:
    await write_patient(harness.silent, "Rebuilt")
    await harness.queue.rebuild_lost_index()

    async def searchable() -> bool:
        return await found(harness.services, "Rebuilt") == 1

    # every type's index is created again (and, on Elasticsearch, the episodes' index swapped):
    # seconds of index creation on a busy 2-core machine, beyond a doorbell's wait
    assert await within(max(harness.doorbell, REBUILD_SECONDS), searchable)


async def test_drain_projects_what_is_committed_where_the_jobs_run_here(
    harness: Harness,
) -> None:
    await write_patient(harness.silent, "Drained")
    projected = await harness.queue.drain()
    if harness.runs_here:
        assert projected == 1
        assert await harness.services.store.oldest_unindexed() is None
        assert await found(harness.services, "Drained") == 1
    else:  # the workers project, in their own processes: nothing to finish here
        assert projected == 0


async def test_a_submitted_submission_runs_to_its_result(harness: Harness) -> None:
    body = {"resourceType": "Patient", "name": [{"family": "Submitted"}]}
    request = FhirRequest(BASE, type="Patient", body=body, headers={})
    stored = await harness.services.store.submit(
        new_submission("create", request, "POST", time.time())
    )
    await harness.queue.submit(stored.id)

    async def finished() -> bool:
        sub = await harness.services.store.submission(stored.id)
        return sub is not None and sub.state == "done"

    assert await within(10.0, finished)
    done: Any = await harness.services.store.submission(stored.id)
    assert done.result["status"] == 201
    assert done.result["body"]["name"] == [{"family": "Submitted"}]


async def test_an_export_produces_its_files(harness: Harness) -> None:
    """`bulk` rings for a stored export: a worker produces the manifest and the files."""
    await write_patient(harness.silent, "Exported")
    request = FhirRequest(BASE, query=(("_type", "Patient"),), headers={"prefer": "respond-async"})
    answer = await export_system(harness.silent, request)
    assert answer.status == 202
    export_id = answer.headers["Content-Location"].rsplit("/", 1)[1]
    await harness.queue.bulk(export_id)

    async def done() -> bool:
        sub = await harness.services.store.submission(export_id)
        return sub is not None and sub.state == "done"

    assert await within(10.0, done)
    sub: Any = await harness.services.store.submission(export_id)
    manifest = sub.result["body"]
    url = f"{BASE}/$export-file/{export_id}/Patient.1.ndjson"
    assert manifest["output"] == [{"type": "Patient", "url": url, "count": 2}]
    files = harness.services.files
    assert files is not None
    chunks = [c async for c in files.read(export_id, "Patient.1.ndjson", 1)]
    families = sorted(
        orjson.loads(line)["name"][0]["family"] for line in b"".join(chunks).splitlines()
    )
    assert families == ["Exported", "WarmUp"]
