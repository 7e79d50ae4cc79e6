"""The full stack for tests: settings on the real engines under a name of the test's own, an arq
worker run inside the API's event loop, and the cleanup that drops what the test created.

Used by tests/conformance (the `full` deployment of every HTTP-level test) and tests/integration.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from app.deploy.engines import Engines, open_engines
from app.deploy.worker import build_worker
from app.settings import Settings
from bench.stack import flush_redis
from tests._services import engine_url

# Indexed documents are searchable within this (production default: 1 s); every index write
# waits for that refresh, so a short one keeps the tests quick.
TEST_REFRESH_INTERVAL = "50ms"
# The Redis database of the tests' queues, emptied before each test: arq keeps a finished job's
# id for a while, and commit sequence numbers (the job ids) restart with every test's store.
TEST_REDIS_DB = 9
# A cancelled worker task ends at its next await; one still running after this never will.
STOP_SECONDS = 60


_named: set[str] = set()  # every name this test session handed out (what `sweep` may delete)


def unique_name(prefix: str = "micdr-test") -> str:
    """A fresh lower-case name (index prefix; database name with `_` for `-`), remembered."""
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    _named.add(name)
    return name


async def full_stack_env(name: str) -> dict[str, str]:
    """MICDR_* variables for a full stack on the test engines: database and index prefix `name`,
    and the tests' Redis database, emptied."""
    redis_url = engine_url("redis")
    redis_url = redis_url.rsplit("/", 1)[0] if redis_url.count("/") > 2 else redis_url
    redis_url = f"{redis_url}/{TEST_REDIS_DB}"
    await flush_redis(redis_url)
    return {
        "MICDR_MONGO_URL": engine_url("mongo"),
        "MICDR_MONGO_DATABASE": name.replace("-", "_"),
        "MICDR_ELASTICSEARCH_URL": engine_url("elasticsearch"),
        "MICDR_INDEX_PREFIX": name,
        "MICDR_REDIS_URL": redis_url,
        "MICDR_INDEX_REFRESH_INTERVAL": TEST_REFRESH_INTERVAL,
    }


def start_worker(settings: Settings) -> Callable[[], Awaitable[None]]:
    """Run a long-lived arq worker on the current event loop; answers the coroutine that stops
    it. Its job tasks are cancelled and awaited first: arq's `close` gathers them without
    `return_exceptions`, so a cancelled one would raise out of it."""
    # polled every 20 ms: a test waits for each projection
    worker = build_worker(settings, handle_signals=False, poll_delay=0.02)
    running = asyncio.create_task(worker.async_run(), name="micdr-test-worker")

    async def stop() -> None:
        tasks = [running, *worker.tasks.values()]
        for task in tasks:
            task.cancel()
        _, pending = await asyncio.wait(tasks, timeout=STOP_SECONDS)
        if pending:  # a task that ignores its cancellation is a bug: name it, do not hang
            names = sorted(task.get_name() for task in pending)
            raise AssertionError(
                f"worker tasks still running {STOP_SECONDS}s after cancel: {names}"
            )
        worker.tasks.clear()
        await worker.close()

    return stop


async def open_with_worker(settings: Settings) -> Engines:
    """`open_engines` plus a long-lived arq worker on the same event loop (the API's, in a test
    client), stopped before the engines close: the full stack in one process."""
    engines = await open_engines(settings)
    engines.closers.append(start_worker(settings))
    return engines


async def run_worker_burst(settings: Settings) -> None:
    """Run an arq worker until the queue is empty."""
    worker = build_worker(settings, burst=True)
    try:
        await worker.async_run()
    finally:
        await worker.close()


async def drop(settings: Settings) -> None:
    """Delete the test's indexes and database."""
    from elasticsearch import AsyncElasticsearch, NotFoundError
    from pymongo import AsyncMongoClient

    es = AsyncElasticsearch(settings.elasticsearch_url)
    try:
        # wildcard deletes are refused (action.destructive_requires_name): name each index;
        # listed again when one of them went meanwhile (an episode index being swapped)
        for attempt in range(3):
            names = list(await es.indices.get(index=f"{settings.index_prefix}-*"))
            if not names:
                break
            try:
                await es.indices.delete(index=",".join(names), ignore_unavailable=True)
                break
            except NotFoundError:
                if attempt == 2:
                    raise
                await asyncio.sleep(0.2)
    finally:
        await es.close()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    try:
        await client.drop_database(settings.mongo_database)
    finally:
        await client.close()


def sweep(elasticsearch_url: str | None, mongo_url: str | None) -> None:
    """Delete the indexes and databases of the names this session handed out (synchronous: runs
    after the loop). Names only: other test sessions on the same engines keep theirs."""
    if elasticsearch_url:
        from elasticsearch import Elasticsearch

        with Elasticsearch(elasticsearch_url, request_timeout=30) as es:
            names = [
                index
                for index in es.indices.get(index="micdr-*", allow_no_indices=True)
                if any(index.startswith(f"{name}-") for name in _named)
            ]
            if names:
                es.indices.delete(index=",".join(names))
    if mongo_url:
        from pymongo import MongoClient

        client: MongoClient[dict[str, Any]] = MongoClient(mongo_url, serverSelectionTimeoutMS=5000)
        try:
            databases = {name.replace("-", "_") for name in _named}
            for database in client.list_database_names():
                if database in databases:
                    client.drop_database(database)
        finally:
            client.close()
