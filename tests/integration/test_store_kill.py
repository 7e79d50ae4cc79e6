"""kill -9 in the middle of a stream of commits: after recovery every transaction is whole or
absent, and every transaction the writer acknowledged is present.

A child process (store_writer.py) commits three-resource transactions in a loop and prints each
one after `commit` returns; the parent SIGKILLs it at a random moment, recovers the store as a
restarting server does and checks. Several rounds on one store, with different kill delays, so a
round also resumes after the previous round's crash.

SQLite always runs (its commit point is SQLite's COMMIT, durable against a process crash in WAL
mode). FerretDB runs when MICDR_TEST_MONGO_URL is set and is required when
MICDR_REQUIRE_SERVICES=1. Mechanism: docs/implementation/write-path.md.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from app.store.mongo import MongoResourceStore
from app.store.port import HistoryQuery
from app.store.sqlite import SqliteResourceStore

ROOT = Path(__file__).resolve().parents[2]
WRITER = Path(__file__).with_name("store_writer.py")
KILL_DELAYS = (0.15, 0.4, 0.8, 1.3)
READY_TIMEOUT = 30.0
KINDS = (("Patient", "p"), ("Observation", "o"))  # with Group/g, the three writes of a transaction

OpenStore = Callable[[], Awaitable[tuple[Any, Callable[[], Awaitable[None]]]]]


def run_and_kill(args: list[str], out: Path, delay: float) -> list[int]:
    """Start the writer, SIGKILL it `delay` seconds after it is ready; the acknowledged `i`s."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with out.open("w") as sink:
        child = subprocess.Popen(
            [sys.executable, str(WRITER), *args], stdout=sink, stderr=subprocess.PIPE, env=env
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not out.read_text().startswith("ready"):
            if child.poll() is not None or time.monotonic() > deadline:
                _, err = child.communicate(timeout=5)
                pytest.fail(f"writer did not start: {err.decode()[-2000:]}")
            time.sleep(0.01)
        time.sleep(delay)
        assert child.poll() is None, "writer stopped by itself"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stderr is not None:
            child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    lines = out.read_text().splitlines()[1:]
    # The last line may be cut short by the kill; a cut line was never a full acknowledgement.
    return [int(line.split()[0]) for line in lines if len(line.split()) == 2]


async def assert_whole_or_absent(store: Any, acknowledged: set[int], context: str) -> int:
    """Transactions 0..n-1 are whole, n and later absent; every acknowledged one is among the
    whole ones. Answers n."""
    group = await store.read("Group", "g")
    n = group.version if group is not None else 0
    assert acknowledged <= set(range(n)), f"{context}: acknowledged but lost: {n=}"
    present = await store.read_many([(t, f"{p}{i}") for i in range(n + 2) for t, p in KINDS])
    assert sorted((s.type, s.id) for s in present) == sorted(
        (t, f"{p}{i}") for i in range(n) for t, p in KINDS
    ), f"{context}: partial transaction ({n=})"
    for i in range(n):
        assert await store.vread("Group", "g", i + 1) is not None, f"{context}: Group v{i + 1}"
    for version in (n + 1, n + 2):
        assert await store.vread("Group", "g", version) is None, f"{context}: Group v{version}"
    history = await store.history(HistoryQuery(type="Group", id="g", count=n + 5))
    assert [h.version for h in history] == list(range(n, 0, -1)), context
    log = await store.unindexed(n + 5)
    assert len(log) == n, f"{context}: commit log has {len(log)} of {n}"
    assert all(len(c.refs) == 3 for c in log), context
    refs = {r for c in log for r in c.refs}
    assert {("Group", "g", i + 1) for i in range(n)} <= refs, context
    return n


async def kill_rounds(args: list[str], open_store: OpenStore, tmp_path: Path) -> None:
    rng = random.Random()
    seed = rng.randrange(1_000_000)
    rng.seed(seed)
    acknowledged: set[int] = set()
    total = 0
    for round_, base in enumerate(KILL_DELAYS):
        delay = base * rng.uniform(0.7, 1.3)
        acked = await asyncio.to_thread(run_and_kill, args, tmp_path / f"out{round_}", delay)
        acknowledged |= set(acked)
        store, close = await open_store()
        try:
            repaired = await store.recover(stale_after_seconds=0)
            context = (
                f"round {round_} (seed {seed}, killed after {delay:.3f}s, "
                f"{len(acked)} acknowledged, recover answered {repaired})"
            )
            total = await assert_whole_or_absent(store, acknowledged, context)
        finally:
            await close()
    assert acknowledged, "the writer never acknowledged a commit: kill delays too short"
    assert total >= max(acknowledged) + 1


async def test_sqlite_kill9_mid_stream_loses_no_acknowledged_transaction(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"

    async def open_store() -> tuple[Any, Callable[[], Awaitable[None]]]:
        store = await SqliteResourceStore.open(path)
        return store, store.close

    await kill_rounds(["sqlite", str(path)], open_store, tmp_path)


@pytest.mark.integration
async def test_ferretdb_kill9_mid_stream_recovers_whole_transactions(tmp_path: Path) -> None:
    url = os.environ.get("MICDR_TEST_MONGO_URL")
    if not url:
        if os.environ.get("MICDR_REQUIRE_SERVICES") == "1":
            pytest.fail("MICDR_REQUIRE_SERVICES=1 but MICDR_TEST_MONGO_URL is not set")
        pytest.skip("FerretDB not configured (MICDR_TEST_MONGO_URL unset)")
    from pymongo import AsyncMongoClient

    name = f"micdr_kill_{uuid.uuid4().hex[:10]}"

    async def open_store() -> tuple[Any, Callable[[], Awaitable[None]]]:
        client: Any = AsyncMongoClient(url, serverSelectionTimeoutMS=5000)
        store = await MongoResourceStore.open(client[name])

        async def close() -> None:
            await client.close()

        return store, close

    try:
        await kill_rounds(["mongo", url, name], open_store, tmp_path)
    finally:
        client: Any = AsyncMongoClient(url, serverSelectionTimeoutMS=5000)
        await client.drop_database(name)
        await client.close()
