"""Bytes on disk of a stack's store and index: the embedded files (with their WAL and shared
memory files) or, on the full stack, what MongoDB's `dbStats` and Elasticsearch's store
statistics report for the run's own database and indices."""

from __future__ import annotations

import sqlite3
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


def embedded_pages(data_dir: Path) -> dict[str, int]:
    """`{"store": bytes, "index": bytes}` of the pages the embedded files' tables and indexes
    use (SQLite's `dbstat`, read through the WAL): the data's own size, without the WAL and
    the free pages, which come and go with checkpoints."""
    sizes: dict[str, int] = {}
    for part, name in _EMBEDDED.items():
        db = sqlite3.connect(f"file:{data_dir / name}?mode=ro", uri=True)
        try:
            sizes[part] = int(
                db.execute("SELECT COALESCE(SUM(pgsize), 0) FROM dbstat").fetchone()[0]
            )
        finally:
            db.close()
    return sizes


def embedded_versions(data_dir: Path) -> int:
    """How many resource versions the embedded store holds (app/store/sqlite.py)."""
    db = sqlite3.connect(f"file:{data_dir / _EMBEDDED['store']}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT COUNT(*) FROM resource_versions").fetchone()[0])
    finally:
        db.close()


def per_version(pages: dict[str, int], versions: int) -> dict[str, Any]:
    """Pages in use per stored resource version (issue 21's measure: store + index)."""
    return {
        **{f"{part}_page_bytes": n for part, n in pages.items()},
        "stored_versions": versions,
        "bytes_per_version": round(sum(pages.values()) / versions) if versions else None,
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
