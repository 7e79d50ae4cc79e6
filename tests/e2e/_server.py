"""A real miCDR server on loopback for the browser tests: uvicorn in a thread, on the embedded
deployment or on the full stack (FerretDB, Elasticsearch and an arq worker on Redis, all in the
server's own event loop), with its data loaded over HTTP as a contributor would send it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from app.main import create_app
from app.settings import Settings, load_settings
from tests._full_stack import drop, full_stack_env, open_with_worker, unique_name
from tests._uvicorn import served

_T = TypeVar("_T")


@dataclass(frozen=True)
class Server:
    url: str  # http://127.0.0.1:<port>
    settings: Settings

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


def run_apart(coroutine: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine on an event loop of its own thread: the sync Playwright keeps one running
    on the test's thread, where `asyncio.run` is refused."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(coroutine())).result()


@contextmanager
def running_server(deployment: str, data_dir: Path, env: Mapping[str, str]) -> Iterator[Server]:
    """A server of `deployment` (`embedded` or `full`) with settings `env`, until the block ends."""
    base = {"MICDR_DATA_DIR": str(data_dir)}
    if deployment == "full":
        name = unique_name()
        base.update(run_apart(lambda: full_stack_env(name)))
    settings = load_settings({**base, **env})
    app = create_app(settings, open_with_worker) if deployment == "full" else create_app(settings)
    try:
        with served(app) as url:
            yield Server(url, settings)
    finally:
        if deployment == "full":
            with contextlib.suppress(Exception):
                run_apart(lambda: drop(settings))


def submit(server: Server, bundles: list[dict[str, Any]], token: str | None = None) -> None:
    """POST each transaction Bundle, then wait until the index has caught up with every commit
    (a search right after a write may not see it yet on either deployment)."""
    with server.client(token) as client:
        for bundle in bundles:
            answer = client.post("/fhir", json=bundle)
            assert answer.status_code == 200, answer.text
        wait_indexed(client)


def wait_indexed(client: httpx.Client, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        health = client.get("/health")
        index = health.json().get("index") if health.status_code == 200 else None
        if index is not None and index["oldest_unindexed_commit"] is None:
            return
        # an engine restarted by another test run answers again within the timeout
        assert time.monotonic() < deadline, f"the index did not catch up: {health.text[:500]}"
        time.sleep(0.1)
