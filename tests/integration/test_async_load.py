"""Load: 1,000 asynchronous Bundles (small, generated; every 20th invalid) from 8 concurrent
clients against the embedded server (`micdr serve` in a subprocess) all complete, and every
status URL reports the right outcome — the transaction-response for the valid ones, the 400
OperationOutcome for the invalid ones. Timings are printed (`-s`), never asserted."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx

from tests.integration._async import (
    PER_BUNDLE,
    Process,
    bundle,
    check_outcomes,
    free_port,
    submit,
    wait_finished,
    wait_serving,
)
from tests.integration.test_async_faults import sqlite_counts

BUNDLES = 1000
CLIENTS = 8


async def test_1000_async_bundles_from_8_clients_all_complete(tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    data = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"MICDR_DATA_DIR": str(data), "MICDR_LOG_LEVEL": "WARNING"}
    server = Process(["serve", "--port", str(port)], env, tmp_path / "serve.log")
    invalid = {n for n in range(BUNDLES) if n % 20 == 7}
    try:
        await wait_serving(url, server)
        started = time.monotonic()

        async def client_run(k: int) -> tuple[list[str], set[str]]:
            mine = range(k, BUNDLES, CLIENTS)
            paths, bad = [], set()
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                for n in mine:
                    path = await submit(client, bundle(run, n, invalid=n in invalid))
                    paths.append(path)
                    if n in invalid:
                        bad.add(path)
            return paths, bad

        submitted = await asyncio.gather(*(client_run(k) for k in range(CLIENTS)))
        accepted = time.monotonic()

        async def poll(paths: list[str]) -> dict[str, httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                return await wait_finished(client, paths, timeout=300)

        results = await asyncio.gather(*(poll(paths) for paths, _ in submitted))
        finished = time.monotonic()
        done = {path: r for part in results for path, r in part.items()}
        invalid_paths = {p for _, bad in submitted for p in bad}
        assert len(done) == BUNDLES and len(invalid_paths) == len(invalid)
        created = check_outcomes(done, invalid_paths)
        assert created == (BUNDLES - len(invalid)) * PER_BUNDLE
        async with httpx.AsyncClient(base_url=url) as client:
            stats = (await client.get("/health")).json()["submissions"]
        assert stats["queue_depth"] == stats["running"] == stats["dead"] == 0
        assert stats["failed"] == len(invalid)
    finally:
        server.stop()
    assert sqlite_counts(data) == (created, created)
    total = finished - started
    print(
        f"\n{BUNDLES} async Bundles from {CLIENTS} clients: all accepted in "
        f"{accepted - started:.1f}s ({BUNDLES / (accepted - started):.0f} submissions/s), "
        f"all finished in {total:.1f}s ({BUNDLES / total:.0f} Bundles/s end to end)"
    )
