"""A Bulk Data import survives `kill -9` of the process running it (docs/api/import.md): it
resumes from its checkpoint, and the store ends with every line of the input once, at version 1
— the unit that was being committed when the process died is committed again, which a line
with an id or a business identifier turns into a no-op.

- embedded: `micdr serve` SIGKILLed mid-import, started again on the same data dir;
- full stack: a `micdr worker` SIGKILLed mid-import; a second worker takes it over once the
  lease has run out."""

from __future__ import annotations

import asyncio
import time
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

SYSTEM = "urn:micdr-test:import-kill"
ASYNC = {"Prefer": "respond-async"}
QUIET = {"MICDR_ASYNC_LEASE_SECONDS": "3", "MICDR_LOG_LEVEL": "WARNING", "MICDR_IG_MODE": "0"}


def write_input(folder: Path, lines: int) -> Path:
    """`lines` Patients: the even ones with an id, the odd ones with an identifier only."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "patients.ndjson"
    with path.open("wb") as out:
        for n in range(lines):
            patient: dict[str, Any] = {"resourceType": "Patient", "name": [{"family": f"K{n}"}]}
            if n % 2:
                patient["identifier"] = [{"system": SYSTEM, "value": str(n)}]
            else:
                patient["id"] = f"k{n:05d}"
            out.write(orjson.dumps(patient) + b"\n")
    return path


async def kick_off(client: Any, path: Path) -> str:
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "inputFormat", "valueCode": "application/fhir+ndjson"},
            {
                "name": "input",
                "part": [
                    {"name": "type", "valueCode": "Patient"},
                    {"name": "url", "valueUri": path.as_uri()},
                ],
            },
        ],
    }
    return status_path(await client.post("/fhir/$import", json=body, headers=ASYNC))


def under_way(progress: str) -> bool:
    return progress.startswith("input 1 of 1") and not progress.endswith(": 0 resources loaded")


async def finished_count(client: Any, status: str, timeout: float) -> int:
    response = (await wait_finished(client, [status], timeout))[status]
    assert response.status_code == 200, response.text
    manifest = response.json()
    assert manifest["error"] == []
    return int(manifest["output"][0]["count"])


async def stored(client: Any, lines: int, timeout: float = 120.0) -> tuple[int, int]:
    """(Patients, Patient versions) once the index holds `lines` Patients."""
    deadline = time.monotonic() + timeout
    while True:
        found = (await client.get("/fhir/Patient?_summary=count")).json()["total"]
        if found >= lines or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    versions = 0
    page: str | None = "/fhir/Patient/_history?_count=1000"
    while page is not None:
        bundle = (await client.get(page)).json()
        versions += len(bundle.get("entry", []))
        after = [link["url"] for link in bundle.get("link", []) if link["relation"] == "next"]
        page = "/" + after[0].split("/", 3)[3] if after else None
    return found, versions


async def test_embedded_server_killed_mid_import_resumes(tmp_path: Path) -> None:
    lines = 6000  # 12 units of 500
    path = write_input(tmp_path / "inbox", lines)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"MICDR_DATA_DIR": str(tmp_path / "data"), "MICDR_IMPORT_DIRS": str(path.parent)}
    env.update(QUIET)
    serve = ["serve", "--port", str(port)]
    server = Process(serve, env, tmp_path / "1.log")
    try:
        await wait_serving(url, server)
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            status = await kick_off(client, path)
            progress = await until_under_way(client, status, under_way, 60)
            server.kill()
            server = Process(serve, env, tmp_path / "2.log")
            await wait_serving(url, server)
            count = await finished_count(client, status, 120)
            patients, versions = await stored(client, lines)
    finally:
        server.stop()
    assert progress  # it was killed with resources loaded
    assert (count, patients, versions) == (lines, lines, lines)


@pytest.fixture
async def full_client(
    full_env: dict[str, str], tmp_path: Path
) -> AsyncIterator[tuple[Any, dict[str, str]]]:
    env = {**full_env, **QUIET, "MICDR_IMPORT_DIRS": str(tmp_path / "inbox")}
    async with in_process_api(env) as client:
        yield client, env


async def test_full_stack_worker_killed_mid_import_is_taken_over(
    full_client: tuple[Any, dict[str, str]], tmp_path: Path
) -> None:
    client, env = full_client
    lines = 1500  # 3 units of 500
    path = write_input(tmp_path / "inbox", lines)
    status = await kick_off(client, path)
    first = Process(["worker"], env, tmp_path / "worker-1.log")
    second: Process | None = None
    try:
        await until_under_way(client, status, under_way, 120)
        first.kill()
        second = Process(["worker"], env, tmp_path / "worker-2.log")
        count = await finished_count(client, status, 300)
        patients, versions = await stored(client, lines, 300)
    finally:
        first.stop()
        if second is not None:
            second.stop()
    assert (count, patients, versions) == (lines, lines, lines)
