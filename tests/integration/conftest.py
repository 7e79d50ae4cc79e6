"""Fixtures for the real engines: Elasticsearch, a MongoDB-wire server (FerretDB) and Redis.

The URLs come from MICDR_TEST_ELASTICSEARCH_URL, MICDR_TEST_MONGO_URL and MICDR_TEST_REDIS_URL
(`eval "$(scripts/services.sh env)"`). Each engine is probed once per session. An engine that is
not configured or does not answer fails the test when MICDR_REQUIRE_SERVICES=1 (scripts/test and
CI: the run must not pass by skipping) and skips it otherwise.

Every test under tests/integration gets the `integration` marker (`-m "not integration"` leaves
them out). Engine clients are function-scoped: pytest-asyncio gives each test its own loop.
See docs/implementation/services.md.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests._full_stack import unique_name as new_name
from tests._services import ENV, SERVICE, engine_url

HERE = Path(__file__).resolve().parent
SERVICES_SH = HERE.parents[1] / "scripts" / "services.sh"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def elasticsearch_url() -> str:
    return engine_url("elasticsearch")


@pytest.fixture(scope="session")
def mongo_url() -> str:
    return engine_url("mongo")


@pytest.fixture(scope="session")
def redis_url() -> str:
    return engine_url("redis")


@pytest.fixture
def unique_name() -> str:
    """A fresh lower-case name per test (index, database, key prefix): reruns never collide."""
    return new_name()


@pytest.fixture
async def es(elasticsearch_url: str) -> AsyncIterator[Any]:
    from elasticsearch import AsyncElasticsearch

    client = AsyncElasticsearch(elasticsearch_url, request_timeout=30)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def mongo_client(mongo_url: str) -> AsyncIterator[Any]:
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient = AsyncMongoClient(mongo_url, serverSelectionTimeoutMS=5000)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def mongo_db(mongo_client: Any, unique_name: str) -> AsyncIterator[Any]:
    """A database of its own, dropped afterwards."""
    name = unique_name.replace("-", "_")
    try:
        yield mongo_client[name]
    finally:
        await mongo_client.drop_database(name)


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Any]:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


class ServiceControl:
    """Stop, start or kill one engine through scripts/services.sh, for fault tests."""

    def __init__(self, managed: dict[str, str]) -> None:
        self._managed = managed

    def __call__(self, action: str, engine: str) -> None:
        var = ENV[engine]
        if os.environ.get(var) != self._managed.get(var):
            # someone else's server: never stop it
            pytest.skip(f"{var} does not point at the engine scripts/services.sh runs")
        proc = subprocess.run(
            ["bash", str(SERVICES_SH), action, SERVICE[engine]],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0:
            raise AssertionError(
                f"scripts/services.sh {action} {SERVICE[engine]} failed ({proc.returncode}):\n"
                f"{proc.stdout}{proc.stderr}"
            )

    def stop(self, engine: str) -> None:
        self("stop", engine)

    def start(self, engine: str) -> None:
        self("start", engine)

    def kill(self, engine: str) -> None:
        self("kill", engine)


@pytest.fixture(scope="session")
def services() -> ServiceControl:
    """Engine control by scripts/services.sh: `services.stop("redis")`, `services.start(...)`,
    `services.kill(...)` ("elasticsearch", "mongo", "redis"). A call skips the test when that
    engine's MICDR_TEST_* URL is not the one the script serves."""
    proc = subprocess.run(
        ["bash", str(SERVICES_SH), "env"], capture_output=True, text=True, timeout=30, check=True
    )
    managed = dict(
        line.removeprefix("export ").split("=", 1)
        for line in proc.stdout.splitlines()
        if line.startswith("export ")
    )
    return ServiceControl(managed)
