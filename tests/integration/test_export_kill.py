"""A Bulk Data export survives `kill -9` of the process producing it (docs/api/export.md,
Workers, memory, crashes): the export resumes from its checkpoint, and its files hold every
resource of the snapshot exactly once, no line lost or repeated.

- embedded: `micdr serve` SIGKILLed mid-export, started again on the same data dir;
- full stack: a `micdr worker` SIGKILLed mid-export; a second worker takes it over once the
  lease has run out.

Small batches (MICDR_EXPORT_BATCH) make the export long enough to be caught half done."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.integration._async import (
    Process,
    free_port,
    in_process_api,
    status_path,
    until_under_way,
    wait_finished,
    wait_serving,
)
from tests.integration.test_async_faults import full_env as full_env  # a fixture

RESOURCES = 1500
PER_BUNDLE = 100
EXPORT = {"MICDR_EXPORT_BATCH": "3", "MICDR_ASYNC_LEASE_SECONDS": "3", "MICDR_LOG_LEVEL": "WARNING"}
ASYNC = {"Prefer": "respond-async"}


def patients(start: int) -> dict[str, Any]:
    entries = [
        {
            "resource": {"resourceType": "Patient", "id": f"k{n:05d}", "name": [{"family": "K"}]},
            "request": {"method": "PUT", "url": f"Patient/k{n:05d}"},
        }
        for n in range(start, min(start + PER_BUNDLE, RESOURCES))
    ]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


async def load(client: Any) -> None:
    for start in range(0, RESOURCES, PER_BUNDLE):
        response = await client.post("/fhir", json=patients(start))
        assert response.status_code == 200, response.text


async def kick_off(client: Any) -> str:
    return status_path(await client.get("/fhir/$export?_type=Patient", headers=ASYNC))


def under_way(progress: str) -> bool:
    return "Patient" in progress and not progress.endswith(": 0 resources")


async def exported_ids(client: Any, status: str, timeout: float = 120.0) -> list[str]:
    response = (await wait_finished(client, [status], timeout))[status]
    assert response.status_code == 200, response.text
    ids: list[str] = []
    for entry in response.json()["output"]:
        url = "/" + entry["url"].split("/", 3)[3]
        body = (await client.get(url)).content
        lines = [orjson.loads(line) for line in body.splitlines()]
        assert len(lines) == entry["count"]
        ids += [r["id"] for r in lines]
    return ids


def expected() -> list[str]:
    return [f"k{n:05d}" for n in range(RESOURCES)]


async def test_embedded_server_killed_mid_export_resumes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"MICDR_DATA_DIR": str(data), "MICDR_IG_MODE": "0", **EXPORT}
    serve = ["serve", "--port", str(port)]
    server = Process(serve, env, tmp_path / "1.log")
    try:
        await wait_serving(url, server)
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            await load(client)
            status = await kick_off(client)
            progress = await until_under_way(client, status, under_way, 60)
            server.kill()
            server = Process(serve, env, tmp_path / "2.log")
            await wait_serving(url, server)
            ids = await exported_ids(client, status)
    finally:
        server.stop()
    assert progress  # it was killed with resources written
    assert sorted(ids) == expected()
    assert len(ids) == len(set(ids)) == RESOURCES


@pytest.fixture
async def full_client(full_env: dict[str, str]) -> AsyncIterator[tuple[Any, dict[str, str]]]:
    env = {**full_env, "MICDR_IG_MODE": "0", **EXPORT}
    async with in_process_api(env) as client:
        yield client, env


async def test_full_stack_worker_killed_mid_export_is_taken_over(
    full_client: tuple[Any, dict[str, str]], tmp_path: Path
) -> None:
    client, env = full_client
    await load(client)
    status = await kick_off(client)
    first = Process(["worker"], env, tmp_path / "worker-1.log")
    second: Process | None = None
    try:
        await until_under_way(client, status, under_way, 120)
        first.kill()
        second = Process(["worker"], env, tmp_path / "worker-2.log")
        ids = await exported_ids(client, status, timeout=240)
    finally:
        first.stop()
        if second is not None:
            second.stop()
    assert sorted(ids) == expected()
    assert len(ids) == len(set(ids)) == RESOURCES
