"""`ExportFiles` in the MongoDB store (the full stack): every API and worker process reaches it,
and no other service is needed.

Not GridFS: a GridFS file is written once, in one go, while an export appends chunks across
worker restarts, and GridFS finds chunks by a `files_id` filter, which FerretDB answers by
reading the whole collection. Here a chunk is one document whose `_id` is
`<export id>/<file name>/<index>` (found by `_id`, replaced by an upsert), and `EXPORTS` holds
one document per export with chunks (what `exports` lists). A chunk is a batch of resources,
far below the 16 MiB document limit at the default batch size.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from app.bulk.port import check_key
from app.store.names import EXPORT_CHUNKS, EXPORTS


def _key(export_id: str, name: str, index: int) -> str:
    check_key(export_id, name)
    return f"{export_id}/{name}/{index:08d}"


class MongoExportFiles:
    """On a database handle of the store's client (PyMongo async, or mongomock-motor)."""

    def __init__(self, database: Any) -> None:
        self._chunks = database[EXPORT_CHUNKS]
        self._exports = database[EXPORTS]

    async def put(self, export_id: str, name: str, index: int, data: bytes) -> None:
        key = _key(export_id, name, index)
        if index == 0:
            await self._exports.update_one(
                {"_id": export_id}, {"$setOnInsert": {"at": time.time()}}, upsert=True
            )
        await self._chunks.replace_one({"_id": key}, {"data": data}, upsert=True)

    async def read(self, export_id: str, name: str, count: int) -> AsyncIterator[bytes]:
        for index in range(count):
            key = _key(export_id, name, index)
            doc = await self._chunks.find_one({"_id": key})
            if doc is None:
                raise FileNotFoundError(key)
            yield bytes(doc["data"])

    async def remove(self, export_id: str) -> None:
        check_key(export_id)
        # '0' follows '/': the range is exactly this export's chunks
        await self._chunks.delete_many({"_id": {"$gt": f"{export_id}/", "$lt": f"{export_id}0"}})
        await self._exports.delete_one({"_id": export_id})

    async def exports(self) -> list[str]:
        return sorted([d["_id"] async for d in self._exports.find({}, {"_id": 1})])
