"""Bytes on disk of a stack's store and index: the embedded files (with their WAL and shared
memory files) or, on the full stack, what MongoDB's `dbStats` and Elasticsearch's store
statistics report for the run's own database and indices."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# micdr.sqlite3, micdr-index.sqlite3 (app/settings.py) and their -wal and -shm files
_EMBEDDED = {"store": "micdr.sqlite3", "index": "micdr-index.sqlite3"}


def embedded_bytes(data_dir: Path) -> dict[str, int]:
    """`{"store": bytes, "index": bytes}` of the embedded files under `data_dir`."""
    return {
        part: sum(f.stat().st_size for f in data_dir.glob(f"{name}*") if f.is_file())
        for part, name in _EMBEDDED.items()
    }


async def full_stack_bytes(env: dict[str, str]) -> dict[str, int]:
    """`{"store": bytes, "index": bytes}` of the run's database and indices."""
    import httpx
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(env["MICDR_MONGO_URL"])
    try:
        stats = await client[env["MICDR_MONGO_DATABASE"]].command("dbStats")
    finally:
        await client.close()
    store = int(stats.get("totalSize") or stats.get("storageSize", 0) + stats.get("indexSize", 0))
    url = env["MICDR_ELASTICSEARCH_URL"].rstrip("/")
    async with httpx.AsyncClient(timeout=30) as es:
        await es.post(f"{url}/{env['MICDR_INDEX_PREFIX']}-*/_flush")
        answer = await es.get(f"{url}/{env['MICDR_INDEX_PREFIX']}-*/_stats/store")
        answer.raise_for_status()
    index = int(answer.json()["_all"]["total"]["store"]["size_in_bytes"])
    return {"store": store, "index": index}


def per_resource(sizes: dict[str, int], resources: int) -> dict[str, Any]:
    """The sizes, their total, and bytes per resource sent (None without resources)."""
    total = sum(sizes.values())
    return {
        **{f"{part}_bytes": n for part, n in sizes.items()},
        "total_bytes": total,
        "bytes_per_resource": round(total / resources) if resources else None,
    }
