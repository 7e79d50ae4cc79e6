"""HTTP-level tests through Litestar's AsyncTestClient, on both deployments' stores.

`embedded`: the SQLite store in a temp dir. `mongo`: the MongoDB store on mongomock-motor (the
real FerretDB runs in tests/integration).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.engines import Engines
from app.main import create_app
from app.settings import Settings, load_settings
from app.store.mongo import MongoResourceStore

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def episode(n: int) -> dict[str, Any]:
    return json.loads((SHARED / "micdr-examples" / f"episode-{n}.json").read_text())


async def _mongomock_engines(settings: Settings) -> Engines:
    """The MongoDB store on mongomock-motor, with the embedded SQLite index."""
    from mongomock_motor import AsyncMongoMockClient

    from indexing.engines.sqlite.adapter import SqliteSearchIndex

    client = AsyncMongoMockClient()
    engines = Engines(await MongoResourceStore.open(client[f"t{uuid.uuid4().hex[:8]}"]))
    index = await SqliteSearchIndex.open(settings.sqlite_path, engines.registry)
    engines.index = index
    engines.closers.append(index.close)
    return engines


@pytest.fixture(params=["embedded", "mongo"])
async def client(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[AsyncTestClient[Any]]:
    settings = load_settings({"MICDR_DATA_DIR": str(tmp_path)})
    if request.param == "mongo":
        app = create_app(settings, _mongomock_engines)
    else:
        app = create_app(settings)
    async with AsyncTestClient(app=app, base_url="http://micdr.local") as c:
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
