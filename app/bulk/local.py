"""`ExportFiles` in a directory (the embedded deployment's data dir): one file per chunk,
`<root>/<export id>/<file name>/<index>`, written to a temporary name and renamed into place
so that a chunk is either whole or absent."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from app.bulk.port import check_key


class LocalExportFiles:
    def __init__(self, root: Path) -> None:
        self._root = root

    def _chunk(self, export_id: str, name: str, index: int) -> Path:
        check_key(export_id, name)
        return self._root / export_id / name / f"{index:08d}"

    async def put(self, export_id: str, name: str, index: int, data: bytes) -> None:
        await asyncio.to_thread(self._put, self._chunk(export_id, name, index), data)

    @staticmethod
    def _put(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_bytes(data)
        os.replace(temporary, path)

    async def read(self, export_id: str, name: str, count: int) -> AsyncIterator[bytes]:
        for index in range(count):
            yield await asyncio.to_thread(self._chunk(export_id, name, index).read_bytes)

    async def remove(self, export_id: str) -> None:
        check_key(export_id)
        await asyncio.to_thread(shutil.rmtree, self._root / export_id, True)

    async def exports(self) -> list[str]:
        return await asyncio.to_thread(self._exports)

    def _exports(self) -> list[str]:
        if not self._root.is_dir():
            return []
        return sorted(p.name for p in self._root.iterdir() if p.is_dir())
