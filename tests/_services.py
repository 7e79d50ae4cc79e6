"""Where the integration engines are and what they are.

Shared by tests/conftest.py (pytest report header) and tests/integration/conftest.py (fixtures).
The engines themselves are started by scripts/services.sh; see docs/implementation/services.md.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

ENGINES = ("elasticsearch", "mongo", "redis")
ENV = {
    "elasticsearch": "MICDR_TEST_ELASTICSEARCH_URL",
    "mongo": "MICDR_TEST_MONGO_URL",
    "redis": "MICDR_TEST_REDIS_URL",
}
LABEL = {"elasticsearch": "Elasticsearch", "mongo": "MongoDB-wire server", "redis": "Redis"}
# scripts/services.sh names, for stop/start/kill of one engine
SERVICE = {"elasticsearch": "elasticsearch", "mongo": "ferretdb", "redis": "redis"}


def services_required() -> bool:
    """MICDR_REQUIRE_SERVICES=1 (scripts/test, CI): an unreachable engine fails the run."""
    return os.environ.get("MICDR_REQUIRE_SERVICES") == "1"


def engine_version(engine: str, url: str, timeout: float = 5.0) -> str:
    """One line naming the engine behind `url` and its version; raises when it does not answer.

    Uses the same client libraries as the code under test, synchronously, so it can run outside
    any event loop (session fixtures, report header)."""
    if engine == "elasticsearch":
        from elasticsearch import Elasticsearch

        # GET / is not served by the test distribution (no rest-root module): ask the node.
        with Elasticsearch(url, request_timeout=timeout, max_retries=0) as es:
            info = es.nodes.info(node_id="_local", metric="jvm")
        node = next(iter(info["nodes"].values()))
        return f"Elasticsearch {node['version']} (Java {node['jvm']['version']})"
    if engine == "mongo":
        from pymongo import MongoClient

        ms = int(timeout * 1000)
        client: MongoClient = MongoClient(
            url, serverSelectionTimeoutMS=ms, connectTimeoutMS=ms, socketTimeoutMS=ms
        )
        try:
            build = client.admin.command("buildInfo")
        finally:
            client.close()
        if "ferretdbVersion" in build:
            return f"FerretDB {build['ferretdbVersion']} (MongoDB wire {build['version']})"
        return f"MongoDB {build['version']}"
    if engine == "redis":
        import redis

        client_r = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            server = client_r.info("server")
        finally:
            client_r.close()
        return f"Redis {server['redis_version']}"
    raise ValueError(f"unknown engine {engine!r}")


def _unavailable(reason: str) -> NoReturn:
    if services_required():
        pytest.fail(
            f"{reason}. MICDR_REQUIRE_SERVICES=1, so integration tests must run: start the engines"
            ' with `scripts/services.sh start` and `eval "$(scripts/services.sh env)"`, or set'
            " MICDR_REQUIRE_SERVICES=0 to skip them.",
            pytrace=False,
        )
    pytest.skip(reason)


_answered: dict[str, str] = {}


def engine_url(engine: str) -> str:
    """The engine's MICDR_TEST_* URL once it answers (probed once per session). Fails the test
    when it is unset or silent and MICDR_REQUIRE_SERVICES=1; skips it otherwise."""
    url = os.environ.get(ENV[engine])
    if not url:
        _unavailable(f"{LABEL[engine]} not configured ({ENV[engine]} is unset)")
    if _answered.get(engine) == url:
        return url
    try:
        engine_version(engine, url)
    except Exception as exc:
        problem = f"{type(exc).__name__}: {str(exc).rstrip('.')}"
    else:
        _answered[engine] = url
        return url
    # called outside the `except` block, so the report shows no chained traceback
    _unavailable(f"{LABEL[engine]} at {url} does not answer ({problem})")
