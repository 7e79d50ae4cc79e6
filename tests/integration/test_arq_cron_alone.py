"""A periodic job of the full stack runs alone (workers/arq_settings.py `run_alone`): a run
due while the last one is still busy skips its turn, even when the last one outlasts the hold
(renewed while it runs), and a killed run's hold ends by itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from workers.arq_settings import run_alone
from workers.keys import QueueNames


@pytest.fixture
async def lock(redis_url: str, unique_name: str) -> AsyncIterator[tuple[redis.asyncio.Redis, str]]:
    key = QueueNames.for_store(unique_name).running("reconcile")
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        yield client, key
    finally:
        await client.delete(key)
        await client.aclose()


class HeldRun:
    """A run that holds its turn until `release` is set; answers 7."""

    def __init__(self) -> None:
        self.started, self.release = asyncio.Event(), asyncio.Event()

    async def __call__(self) -> int:
        self.started.set()
        await self.release.wait()
        return 7


async def one() -> int:
    return 1


async def test_a_run_due_while_the_last_is_busy_skips_its_turn(
    lock: tuple[redis.asyncio.Redis, str],
) -> None:
    client, key = lock
    busy = HeldRun()
    first = asyncio.create_task(run_alone(client, key, busy))
    await busy.started.wait()
    assert await run_alone(client, key, one) is None  # skipped: the first holds it
    busy.release.set()
    assert await first == 7
    assert await run_alone(client, key, one) == 1  # free again
    assert await client.exists(key) == 0


async def test_a_long_run_keeps_its_hold_past_the_hold_time(
    lock: tuple[redis.asyncio.Redis, str],
) -> None:
    client, key = lock
    long = HeldRun()
    first = asyncio.create_task(run_alone(client, key, long, hold=0.6))
    await long.started.wait()
    await asyncio.sleep(1.5)  # two and a half holds: renewed meanwhile
    assert await run_alone(client, key, one) is None
    long.release.set()
    assert await first == 7
    assert await run_alone(client, key, one) == 1


async def test_a_killed_runs_hold_ends_after_its_time(
    lock: tuple[redis.asyncio.Redis, str],
) -> None:
    client, key = lock
    # what a worker killed mid-run leaves: the lock, held by nobody alive
    assert await client.lock(key, timeout=0.5, blocking=False).acquire()
    assert await run_alone(client, key, one) is None
    await asyncio.sleep(0.7)
    assert await run_alone(client, key, one) == 1
