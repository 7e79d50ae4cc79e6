"""The benchmark's probes of the real engines: `engine_calls` (bench/engine_calls.py) sees a
known piece of work in each engine's own counters, `full_stack_bytes` (bench/footprint.py)
measures the run's own database and indices. Other clients of the engines (another test
session) can only add calls, so those checks are lower bounds."""

from __future__ import annotations

from typing import Any

import httpx
import redis.asyncio
from pymongo import AsyncMongoClient

from bench.engine_calls import calls_between, engine_calls
from bench.footprint import full_stack_bytes


async def test_each_engine_counts_the_work_it_was_asked(
    elasticsearch_url: str, mongo_url: str, redis_url: str, unique_name: str
) -> None:
    urls = {"mongo": mongo_url, "elasticsearch": elasticsearch_url, "redis": redis_url}
    before = await engine_calls(urls)
    assert set(before) == {"store", "index", "queue"}

    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        collection = mongo[unique_name.replace("-", "_")]["calls"]
        for n in range(3):
            await collection.insert_one({"_id": n})
        assert await collection.find_one({"_id": 1}) == {"_id": 1}
    finally:
        await mongo.drop_database(unique_name.replace("-", "_"))
        await mongo.close()
    async with httpx.AsyncClient() as es:
        for _ in range(2):
            (await es.get(f"{elasticsearch_url}/_cluster/health")).raise_for_status()
    queue = redis.asyncio.Redis.from_url(redis_url)
    try:
        for _ in range(4):
            await queue.get(unique_name)
    finally:
        await queue.aclose()

    delta = calls_between(before, await engine_calls(urls))
    assert delta["store"]["insert"] >= 3
    assert delta["store"]["find"] >= 1
    assert delta["index"]["/_cluster/health"] >= 2
    assert delta["queue"]["get"] >= 4
    # the probes do not count themselves
    assert "serverStatus" not in delta["store"]
    assert "info" not in delta["queue"]


async def test_the_full_stack_footprint_is_the_runs_own_database_and_indices(
    elasticsearch_url: str, mongo_url: str, unique_name: str
) -> None:
    env = {
        "MICDR_MONGO_URL": mongo_url,
        "MICDR_MONGO_DATABASE": unique_name.replace("-", "_"),
        "MICDR_ELASTICSEARCH_URL": elasticsearch_url,
        "MICDR_INDEX_PREFIX": unique_name,
    }
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        await mongo[env["MICDR_MONGO_DATABASE"]]["r"].insert_many(
            [{"_id": n, "text": "x" * 1000} for n in range(200)]
        )
        async with httpx.AsyncClient() as es:
            index = f"{elasticsearch_url}/{unique_name}-patient"
            for n in range(20):
                stored = await es.put(f"{index}/_doc/{n}", json={"text": "y" * 500})
                stored.raise_for_status()
            sizes = await full_stack_bytes(env)
            (await es.delete(index)).raise_for_status()
    finally:
        await mongo.drop_database(env["MICDR_MONGO_DATABASE"])
        await mongo.close()
    assert sizes["store"] >= 200 * 1000
    assert sizes["index"] >= 20 * 500 / 4  # compressed, but not nothing
