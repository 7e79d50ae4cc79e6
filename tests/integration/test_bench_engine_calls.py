"""`engine_calls` (bench/engine_calls.py) against the real engines: a known piece of work is
counted by each engine's own counters. Other clients of the engines (another test session)
can only add calls, so the checks are lower bounds."""

from __future__ import annotations

from typing import Any

import httpx
import redis.asyncio
from pymongo import AsyncMongoClient

from bench.engine_calls import calls_between, engine_calls


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
