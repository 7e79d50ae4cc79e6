"""Round trips to the engines, counted by the engines themselves: MongoDB's (and FerretDB's)
`serverStatus.metrics.commands`, Elasticsearch's per-route HTTP statistics, Redis's
`INFO commandstats`. They count every client of the engine, so the figures of a phase are
this stack's only when nothing else uses the engines meanwhile (the benchmark's own probes
are left out)."""

from __future__ import annotations

from typing import Any

Calls = dict[str, dict[str, int]]  # engine -> command or route -> count

# the probes below, which would otherwise count themselves
_OWN = {"serverStatus", "/_nodes/stats/{metric}", "info"}


async def engine_calls(urls: dict[str, str]) -> Calls:
    """The engines' command counters now (an engine that does not answer is left out)."""
    calls: Calls = {}
    for engine, probe in (("store", _mongo), ("index", _elasticsearch), ("queue", _redis)):
        try:
            calls[engine] = await probe(urls)
        except Exception:  # an engine without the figure: left out, the run goes on
            continue
    return calls


def calls_between(before: Calls, after: Calls) -> Calls:
    """What each engine was asked between two readings, by command (zero counts left out)."""
    out: Calls = {}
    for engine, counts in after.items():
        earlier = before.get(engine, {})
        delta = {k: n - earlier.get(k, 0) for k, n in counts.items() if k not in _OWN}
        out[engine] = {k: n for k, n in sorted(delta.items()) if n > 0}
    return out


def per_unit(calls: Calls, units: int) -> dict[str, Any]:
    """`{engine: {"total": calls per unit, "by_kind": {command: calls per unit}}}`."""
    if not units:
        return {}
    return {
        engine: {
            "total": round(sum(counts.values()) / units, 2),
            "by_kind": {k: round(n / units, 2) for k, n in counts.items()},
        }
        for engine, counts in calls.items()
    }


async def _mongo(urls: dict[str, str]) -> dict[str, int]:
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(urls["mongo"])
    try:
        status = await client.admin.command("serverStatus")
    finally:
        await client.close()
    commands = status.get("metrics", {}).get("commands", {})
    return {name: int(c.get("total", 0)) for name, c in commands.items() if isinstance(c, dict)}


async def _elasticsearch(urls: dict[str, str]) -> dict[str, int]:
    import httpx

    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.get(f"{urls['elasticsearch'].rstrip('/')}/_nodes/stats/http")
        answer.raise_for_status()
    counts: dict[str, int] = {}
    for node in answer.json()["nodes"].values():
        for route, stats in node["http"].get("routes", {}).items():
            counts[route] = counts.get(route, 0) + int(stats["requests"]["count"])
    return counts


async def _redis(urls: dict[str, str]) -> dict[str, int]:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(urls["redis"])
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return {name.removeprefix("cmdstat_"): int(s["calls"]) for name, s in stats.items()}
