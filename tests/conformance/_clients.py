"""The deployments every HTTP-level test runs on, and clients with non-default settings.

- `embedded`: the SQLite store and index in a temp dir, projection in-process.
- `mongo`: the MongoDB store on mongomock-motor with the SQLite index (fast, no servers).
- `full`: the full stack on the real engines: FerretDB store, Elasticsearch index, and an arq
  worker on Redis projecting the commits (marked `integration`; it fails rather than skips when
  MICDR_REQUIRE_SERVICES=1).

Every client is a `strict_client`: each response body is parsed as strict FHIR R4
(tests/conformance/_strict.py) before the test sees it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.deploy.engines import Engines
from app.main import create_app
from app.settings import Settings, load_settings
from app.store.mongo import MongoResourceStore
from tests._full_stack import drop, full_stack_env, open_with_worker, unique_name
from tests._uvicorn import served
from tests.conformance._strict import strict_response

DEPLOYMENTS = ["embedded", "mongo", pytest.param("full", marks=pytest.mark.integration)]
PLAIN_FHIR = {"MICDR_IG_MODE": "0"}


async def _mongomock_engines(settings: Settings) -> Engines:
    """The MongoDB store on mongomock-motor, with the embedded SQLite index and episodes."""
    from mongomock_motor import AsyncMongoMockClient

    from indexing.engines.sqlite.adapter import SqliteSearchIndex
    from indexing.engines.sqlite.episodes import SqliteEpisodeIndex

    client = AsyncMongoMockClient()
    engines = Engines(await MongoResourceStore.open(client[f"t{uuid.uuid4().hex[:8]}"]))
    index = await SqliteSearchIndex.open(settings.sqlite_index_path, engines.registry)
    engines.index = index
    engines.closers.append(index.close)
    episodes = await SqliteEpisodeIndex.open(settings.sqlite_index_path)
    engines.episodes = episodes
    engines.closers.append(episodes.close)
    return engines


@asynccontextmanager
async def strict_client(app: Litestar) -> AsyncIterator[AsyncTestClient[Any]]:
    """A test client of `app` that fails on any response body a strict R4 parser rejects."""
    async with AsyncTestClient(app=app, base_url="http://micdr.local") as c:
        c.event_hooks = {**c.event_hooks, "response": [strict_response]}
        yield c


@asynccontextmanager
async def app_with(
    env: Mapping[str, str], deployment: str, data_dir: Path
) -> AsyncIterator[Litestar]:
    """The app whose settings are `env` (plus a temp data dir) on `deployment`; on leaving,
    what the full stack created on the engines is dropped."""
    base = {"MICDR_DATA_DIR": str(data_dir)}
    if deployment == "full":
        base.update(await full_stack_env(unique_name()))
    settings = load_settings({**base, **env})
    if deployment == "mongo":
        app = create_app(settings, _mongomock_engines)
    elif deployment == "full":
        app = create_app(settings, open_with_worker)
    else:
        app = create_app(settings)
    try:
        yield app
    finally:
        if deployment == "full":
            with contextlib.suppress(Exception):
                await drop(settings)


@asynccontextmanager
async def client_with(
    env: Mapping[str, str], deployment: str, data_dir: Path
) -> AsyncIterator[AsyncTestClient[Any]]:
    """A test client whose settings are `env` (plus a temp data dir) on `deployment`."""
    async with app_with(env, deployment, data_dir) as app, strict_client(app) as c:
        yield c


@asynccontextmanager
async def served_with(
    env: Mapping[str, str], deployment: str, data_dir: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """As `client_with`, but the app is served on loopback (uvicorn in a thread) and the client
    is a real HTTP client. For requests that must run at once: the test client sends one at a
    time and does not yield to the event loop while it waits (its transport blocks), so tasks
    that loop until another one sets a flag never end."""
    async with app_with(env, deployment, data_dir) as app:
        with served(app) as url:
            async with httpx.AsyncClient(
                base_url=url, timeout=60, event_hooks={"response": [strict_response]}
            ) as c:
                yield c


@pytest.fixture(params=DEPLOYMENTS)
async def plain_client(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[AsyncTestClient[Any]]:
    """A plain FHIR server: IG mode off."""
    async with client_with(PLAIN_FHIR, request.param, tmp_path) as c:
        yield c
