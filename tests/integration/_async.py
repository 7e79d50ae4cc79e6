"""Helpers for the asynchronous-submission fault and load tests: generated Bundles, submitting
and polling through HTTP, `micdr` subprocesses, and counting what the store holds."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
from litestar.testing import AsyncTestClient

from app.main import create_app
from app.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
MICDR = Path(sys.executable).with_name("micdr")
ASYNC = {"Prefer": "respond-async"}
PER_BUNDLE = 3


def bundle(run: str, n: int, invalid: bool = False) -> dict[str, Any]:
    """A small transaction: `PER_BUNDLE` Basic resources, each with an identifier of its own;
    an invalid one carries a resource that fails validation (so the whole Bundle is 400)."""
    entries: list[dict[str, Any]] = []
    for j in range(PER_BUNDLE):
        resource: dict[str, Any] = {
            "resourceType": "Basic",
            "identifier": [{"system": f"urn:micdr-test:{run}", "value": f"{n}-{j}"}],
            "code": {"text": f"bundle {n} entry {j}"},
        }
        if invalid and j == 1:
            resource["created"] = "not a date"
        entries.append({"resource": resource, "request": {"method": "POST", "url": "Basic"}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


async def submit(client: httpx.AsyncClient | Any, body: dict[str, Any], base: str = "/fhir") -> str:
    """POST with `Prefer: respond-async` (retrying while the server is unreachable); the status
    URL's path."""
    response = await client.post(base, json=body, headers=ASYNC)
    return status_path(response)


def status_path(response: httpx.Response | Any) -> str:
    """The path of the status URL a 202 answer names."""
    assert response.status_code == 202, response.text
    return "/" + response.headers["content-location"].split("/", 3)[3]


async def until_under_way(
    client: httpx.AsyncClient | Any,
    path: str,
    under_way: Callable[[str], bool],
    timeout: float,
) -> str:
    """Poll a bulk job's status until its X-Progress shows it `under_way`, unfinished: the
    moment to kill the process running it. Answers that progress."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = await client.get(path)
        assert response.status_code == 202, f"finished before it could be killed: {response.text}"
        if under_way(progress := response.headers["x-progress"]):
            return progress
        await asyncio.sleep(0.02)
    raise AssertionError(f"{path} never got under way")


async def wait_finished(
    client: httpx.AsyncClient | Any, paths: list[str], timeout: float
) -> dict[str, Any]:
    """Poll every status URL until none answers 202; answers path -> final response."""
    pending = set(paths)
    done: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    while pending:
        for path in list(pending):
            response = await client.get(path)
            if response.status_code != 202:
                done[path] = response
                pending.discard(path)
        if pending:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(pending)} submissions unfinished after {timeout}s")
            await asyncio.sleep(0.2)
    return done


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Process:
    """A `micdr` subprocess (serve or worker) with its own environment; output to a log file."""

    def __init__(self, args: list[str], env: Mapping[str, str], log: Path) -> None:
        self.log = log
        with log.open("ab") as sink:
            self.proc = subprocess.Popen(
                [str(MICDR), *args],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                stdout=sink,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        """SIGKILL: no shutdown, no clean-up."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


async def wait_serving(url: str, proc: Process, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if proc.proc.poll() is not None:
                raise AssertionError(f"the server exited:\n{proc.tail()}")
            try:
                if (await client.get(f"{url}/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"the server did not start:\n{proc.tail()}")


def check_outcomes(
    done: Mapping[str, Any],
    invalid_paths: set[str] = frozenset(),  # type: ignore[assignment]
) -> int:
    """Every submission finished with the right outcome; answers the resources created."""
    created = 0
    for path, response in done.items():
        assert response.status_code == 200, (path, response.status_code, response.text)
        body = response.json()
        if path in invalid_paths:
            assert response.headers["x-original-status"] == "400", (path, body)
            assert body["resourceType"] == "OperationOutcome"
        else:
            assert response.headers["x-original-status"] == "200", (path, body)
            assert body["type"] == "transaction-response"
            statuses = [e["response"]["status"] for e in body["entry"]]
            assert statuses == ["201 Created"] * PER_BUNDLE, (path, statuses)
            created += PER_BUNDLE
    return created


@contextlib.asynccontextmanager
async def in_process_api(env: Mapping[str, str]) -> AsyncIterator[AsyncTestClient[Any]]:
    """The API on these settings, called in this process (its workers run as processes)."""
    app = create_app(load_settings(dict(env)))
    async with AsyncTestClient(app=app, base_url="http://micdr.local", timeout=60) as client:
        yield client


async def wait_backlog_drained(client: Any, worker: Process, timeout: float = 180.0) -> None:
    """Until `/health` shows no unindexed commit; fails with the worker's log after `timeout`."""
    deadline = time.monotonic() + timeout
    while (await client.get("/health")).json()["index"]["oldest_unindexed_commit"]:
        assert time.monotonic() < deadline, f"backlog not drained:\n{worker.tail()}"
        await asyncio.sleep(0.5)
