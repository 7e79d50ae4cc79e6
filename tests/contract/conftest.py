"""Adapters as fixture parameters: one suite, every store.

SQLite and mongomock-motor always run; FerretDB runs when MICDR_TEST_MONGO_URL is set and is
mandatory when MICDR_REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.store.mongo import MongoResourceStore
from app.store.sqlite import SqliteResourceStore
from tests._episode_engines import EPISODE_ENGINES, open_episode_index
from tests._full_stack import unique_name
from tests._services import engine_url

STORES = ["sqlite", "mongomock", "ferretdb"]


async def open_store(kind: str, tmp_path: Path) -> tuple[Any, Any]:
    """(store, cleanup) for one adapter kind."""
    if kind == "sqlite":
        store = await SqliteResourceStore.open(tmp_path / "store.sqlite3")
        return store, store.close
    if kind == "mongomock":
        from mongomock_motor import AsyncMongoMockClient

        client = AsyncMongoMockClient()
        store = await MongoResourceStore.open(client[f"t{uuid.uuid4().hex[:8]}"])
        return store, store.close
    url = engine_url("mongo")
    from pymongo import AsyncMongoClient

    client = AsyncMongoClient(url, serverSelectionTimeoutMS=5000)
    name = unique_name().replace("-", "_")
    store = await MongoResourceStore.open(client[name])

    async def cleanup() -> None:
        await client.drop_database(name)
        await client.close()

    return store, cleanup


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    store, cleanup = await open_store(request.param, tmp_path)
    try:
        yield store
    finally:
        await cleanup()


@pytest.fixture(params=EPISODE_ENGINES)
async def episodes(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """The episode index on each engine (tests/_episode_engines.py)."""
    opened, cleanup = await open_episode_index(request.param, tmp_path)
    try:
        yield opened
    finally:
        await cleanup()
