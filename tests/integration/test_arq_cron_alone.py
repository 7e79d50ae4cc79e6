"""A periodic job of the full stack runs alone (workers/arq_settings.py `run_alone`): a run
due while the last one is still busy skips its turn, and a killed run's hold ends by itself."""

from __future__ import annotations

import asyncio

import redis.asyncio

from workers.arq_settings import run_alone
from workers.keys import QueueNames


async def test_a_run_due_while_the_last_is_busy_skips_its_turn(
    redis_url: str, unique_name: str
) -> None:
    key = QueueNames.for_store(unique_name).running("reconcile")
    client = redis.asyncio.Redis.from_url(redis_url)
    started, release = asyncio.Event(), asyncio.Event()
    runs: list[str] = []

    async def busy() -> int:
        runs.append("busy")
        started.set()
        await release.wait()
        return 7

    async def quick() -> int:
        runs.append("quick")
        return 1

    try:
        first = asyncio.create_task(run_alone(client, key, busy))
        await started.wait()
        assert await run_alone(client, key, quick) is None  # skipped: the first holds it
        release.set()
        assert await first == 7
        assert await run_alone(client, key, quick) == 1  # free again
        assert runs == ["busy", "quick"]
        assert await client.exists(key) == 0
    finally:
        await client.delete(key)
        await client.aclose()


async def test_a_killed_runs_hold_ends_after_its_time(redis_url: str, unique_name: str) -> None:
    key = QueueNames.for_store(unique_name).running("reconcile")
    client = redis.asyncio.Redis.from_url(redis_url)

    async def one() -> int:
        return 1

    try:
        # what a worker killed mid-run leaves: the lock, held by nobody alive
        assert await client.lock(key, timeout=0.5, blocking=False).acquire()
        assert await run_alone(client, key, one) is None
        await asyncio.sleep(0.7)
        assert await run_alone(client, key, one) == 1
    finally:
        await client.delete(key)
        await client.aclose()
