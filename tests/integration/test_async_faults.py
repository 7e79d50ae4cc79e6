"""Nothing acknowledged with 202 is lost (IG R8-R10; docs/implementation/async.md): every
accepted submission is processed exactly once — no loss, no duplicate resources — through

- `kill -9` of a `micdr worker` in the middle of jobs (another worker takes over after the lease);
- Redis flushed and restarted with jobs queued (the reconciler re-enqueues from the store);
- Elasticsearch down during processing (writes land in the store; the backlog drains later);
- the embedded server SIGKILLed after 202 and restarted on the same data dir.

The full-stack tests use a Redis database of their own (1-7: neither the conformance tests' 9 nor
the benchmark's 8-15, so no other worker takes their jobs) and empty it before and after: Redis
persists, and jobs another run left there would be run first."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

from app.main import create_app
from app.settings import load_settings
from app.store.mongo import MongoResourceStore
from app.store.port import HistoryQuery
from tests._full_stack import drop
from tests.integration._async import (
    PER_BUNDLE,
    Process,
    bundle,
    check_outcomes,
    free_port,
    submit,
    wait_backlog_drained,
    wait_finished,
    wait_serving,
)
from tests.integration.conftest import ServiceControl

LEASE = "3"


@pytest.fixture
async def full_env(
    mongo_url: str, elasticsearch_url: str, redis_url: str, unique_name: str
) -> AsyncIterator[dict[str, str]]:
    db = random.randint(1, 7)
    env = {
        "MICDR_MONGO_URL": mongo_url,
        "MICDR_MONGO_DATABASE": unique_name.replace("-", "_"),
        "MICDR_ELASTICSEARCH_URL": elasticsearch_url,
        "MICDR_INDEX_PREFIX": unique_name,
        "MICDR_REDIS_URL": f"{redis_url.rsplit('/', 1)[0]}/{db}",
        "MICDR_ASYNC_LEASE_SECONDS": LEASE,
        "MICDR_LOG_LEVEL": "WARNING",
    }
    await flush(env)
    try:
        yield env
    finally:
        await drop(load_settings(env))
        await flush(env)


async def flush(env: dict[str, str]) -> None:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(env["MICDR_REDIS_URL"])
    try:
        await client.flushdb()
    except Exception:
        pass  # Redis may be down after a fault test failed; nothing to clean then
    finally:
        await client.aclose()


async def store_counts(env: dict[str, str]) -> tuple[int, int, int]:
    """(current Basic resources, Basic versions, distinct identifiers) in the MongoDB store."""
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(env["MICDR_MONGO_URL"])
    try:
        db = client[env["MICDR_MONGO_DATABASE"]]
        current = await db["resources"].count_documents({"type": "Basic"})
        # committed versions: what the store's history shows
        store = MongoResourceStore(db)
        versions = len(await store.history(HistoryQuery(type="Basic", count=100_000)))
        idents = await db["resources"].distinct("ident", {"type": "Basic"})
        return current, versions, len([i for i in idents if i.startswith("urn:")])
    finally:
        await client.close()


async def assert_exactly_once(env: dict[str, str], done: dict[str, Any]) -> None:
    created = check_outcomes(done)
    assert await store_counts(env) == (created, created, created)
    # every answered location is a distinct resource
    locations = [
        e["response"]["location"] for r in done.values() for e in r.json().get("entry", [])
    ]
    assert len(set(locations)) == len(locations) == created


async def test_kill_9_of_a_worker_mid_job(full_env: dict[str, str], tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    app = create_app(load_settings(full_env))
    async with AsyncTestClient(app=app, base_url="http://micdr.local") as client:
        paths = [await submit(client, bundle(run, n)) for n in range(40)]
        first = Process(["worker"], full_env, tmp_path / "worker-1.log")
        seen_running = False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            stats = (await client.get("/health")).json()["submissions"]
            if stats["running"] >= 1 and stats["queue_depth"] < len(paths):
                seen_running = True
                break
            await asyncio.sleep(0.01)
        first.kill()
        assert seen_running, f"the worker never ran a submission:\n{first.tail()}"
        left = (await client.get("/health")).json()["submissions"]
        assert left["queue_depth"] + left["running"] > 0, "all done before the kill"

        second = Process(["worker"], full_env, tmp_path / "worker-2.log")
        try:
            done = await wait_finished(client, paths, timeout=120)
        finally:
            second.stop()
        await assert_exactly_once(full_env, done)
        stats = (await client.get("/health")).json()["submissions"]
        assert (stats["queue_depth"], stats["running"], stats["dead"]) == (0, 0, 0)


async def test_a_job_taken_by_a_worker_that_died_before_claiming_it(
    full_env: dict[str, str], tmp_path: Path
) -> None:
    """arq marks a job in progress when a worker takes it, for a day (its longest job
    timeout); a worker killed before it claimed the submission leaves that mark behind. The
    reconciler releases it once older than the lease, and another worker runs the job."""
    import redis.asyncio
    from arq.constants import in_progress_key_prefix, retry_key_prefix

    from app.deploy.worker import build_worker
    from workers.keys import QueueNames

    settings = load_settings(full_env)
    held_for = build_worker(settings).in_progress_timeout_s
    app = create_app(settings)
    async with AsyncTestClient(app=app, base_url="http://micdr.local") as client:
        path = await submit(client, bundle(uuid.uuid4().hex[:8], 0))
        names = QueueNames.for_store(settings.mongo_database)
        key = in_progress_key_prefix + names.submission_job_id(path.rsplit("/", 1)[1], 0)
        queue = redis.asyncio.Redis.from_url(full_env["MICDR_REDIS_URL"])
        try:
            # what a worker that took the job 10 s ago and was killed at once left: arq's
            # in-progress mark, and its count of the job's tries
            await queue.psetex(key, int((held_for - 10) * 1000), b"1")
            await queue.set(key.replace(in_progress_key_prefix, retry_key_prefix), b"1")
            worker = Process(["worker"], full_env, tmp_path / "worker.log")
            try:
                done = await wait_finished(client, [path], timeout=60)
            finally:
                worker.stop()
            assert await queue.exists(key) == 0
        finally:
            await queue.aclose()
        await assert_exactly_once(full_env, done)
        log = worker.tail()
        assert "was taken by a worker that stopped before it ran; released" in log
        assert "max retries" not in log  # run at once, not refused as a second try


async def test_redis_flushed_and_restarted_with_jobs_queued(
    full_env: dict[str, str], tmp_path: Path, services: ServiceControl
) -> None:
    import redis.asyncio

    run = uuid.uuid4().hex[:8]
    app = create_app(load_settings(full_env))
    async with AsyncTestClient(app=app, base_url="http://micdr.local") as client:
        paths = [await submit(client, bundle(run, n)) for n in range(30)]
        queue = redis.asyncio.Redis.from_url(full_env["MICDR_REDIS_URL"])
        try:
            assert await queue.dbsize() > 0  # the jobs are queued
            await queue.flushdb()
            assert await queue.dbsize() == 0
        finally:
            await queue.aclose()
        services.stop("redis")
        services.start("redis")
        assert (await client.get("/health")).json()["submissions"]["queue_depth"] == 30

        worker = Process(["worker"], full_env, tmp_path / "worker.log")
        try:
            done = await wait_finished(client, paths, timeout=120)
        finally:
            worker.stop()
        await assert_exactly_once(full_env, done)


async def test_elasticsearch_down_during_processing(
    full_env: dict[str, str], tmp_path: Path, services: ServiceControl
) -> None:
    run = uuid.uuid4().hex[:8]
    app = create_app(load_settings(full_env))
    worker = Process(["worker"], full_env, tmp_path / "worker.log")
    try:
        async with AsyncTestClient(app=app, base_url="http://micdr.local") as client:
            before = [await submit(client, bundle(run, n)) for n in range(10)]
            done = await wait_finished(client, before, timeout=120)
            services.stop("elasticsearch")
            try:
                during = [await submit(client, bundle(run, n)) for n in range(10, 30)]
                done.update(await wait_finished(client, during, timeout=120))
                await assert_exactly_once(full_env, done)  # all in the store
                health = (await client.get("/health")).json()
                assert health["index"]["up"] is False
                assert health["index"]["oldest_unindexed_commit"] is not None
            finally:
                services.start("elasticsearch")
            await wait_backlog_drained(client, worker)
            await asyncio.sleep(1.2)  # Elasticsearch's refresh interval
            found = await client.get(f"/fhir/Basic?identifier=urn:micdr-test:{run}|&_summary=count")
            assert found.status_code == 200, found.text
            assert found.json()["total"] == 30 * PER_BUNDLE
    finally:
        worker.stop()


def sqlite_counts(data_dir: Path) -> tuple[int, int]:
    with sqlite3.connect(data_dir / "micdr.sqlite3") as db:
        current = db.execute("SELECT COUNT(*) FROM resources WHERE type = 'Basic'").fetchone()[0]
        versions = db.execute(
            "SELECT COUNT(*) FROM resource_versions WHERE type = 'Basic'"
        ).fetchone()[0]
    return int(current), int(versions)


async def test_embedded_server_killed_after_202_then_restarted(tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    data = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"MICDR_DATA_DIR": str(data), "MICDR_LOG_LEVEL": "WARNING"}
    serve = ["serve", "--port", str(port)]
    paths: list[str] = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        # 1. accepted, not yet processed (this start runs none), then SIGKILL
        server = Process(serve, {**env, "MICDR_ASYNC_CONCURRENCY": "0"}, tmp_path / "1.log")
        await wait_serving(url, server)
        paths += [await submit(client, bundle(run, n)) for n in range(5)]
        server.kill()
        # 2. SIGKILL while processing: right after the last 202
        server = Process(serve, env, tmp_path / "2.log")
        await wait_serving(url, server)
        paths += [await submit(client, bundle(run, n)) for n in range(5, 60)]
        server.kill()
        # 3. restarted on the same data dir: everything completes, once
        server = Process(serve, env, tmp_path / "3.log")
        try:
            await wait_serving(url, server)
            done = await wait_finished(client, paths, timeout=120)
        finally:
            server.stop()
    created = check_outcomes(done)
    assert created == 60 * PER_BUNDLE
    assert sqlite_counts(data) == (created, created)
