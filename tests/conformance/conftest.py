"""HTTP-level tests through Litestar's AsyncTestClient, on every deployment of
tests/conformance/_clients.py (embedded, MongoDB store on mongomock, the full stack on the real
engines)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests._data import ig_episode_path
from tests.conformance._clients import DEPLOYMENTS, client_with


def episode(n: int) -> dict[str, Any]:
    return json.loads(ig_episode_path(n).read_text())


@pytest.fixture(params=DEPLOYMENTS)
async def client(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[AsyncTestClient[Any]]:
    async with client_with({}, request.param, tmp_path) as c:
        yield c


async def indexed(client: AsyncTestClient[Any], timeout: float = 20.0) -> None:
    """Wait until the background projection has indexed every commit (GET /health shows no
    unindexed commit). The app runs on the test client's own event loop, so tests watch it
    through HTTP rather than calling into it."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        health = (await client.get("/health")).json()
        if health["index"]["oldest_unindexed_commit"] is None:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the index did not catch up within {timeout}s: {health}")


async def finished(
    client: AsyncTestClient[Any],
    status_path: str,
    timeout: float = 30.0,
    headers: dict[str, str] | None = None,
) -> Any:
    """Poll the status URL (sending `headers`) until it stops answering 202."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        response = await client.get(status_path, headers=headers)
        if response.status_code != 202:
            return response
        assert response.headers["x-progress"]
        await asyncio.sleep(0.05)
    raise AssertionError(f"{status_path} still in progress after {timeout}s")
