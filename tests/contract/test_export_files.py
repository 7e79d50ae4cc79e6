"""The `ExportFiles` contract (app/bulk/port.py) on both adapters: the data dir (beside the
SQLite store) and the MongoDB store (mongomock; FerretDB with the integration services), each
built the way app/deploy builds it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.bulk.port import ExportFiles
from app.deploy.engines import export_files
from app.settings import load_settings


def files_for(store: Any, tmp_path: Path) -> ExportFiles:
    return export_files(load_settings({"MICDR_DATA_DIR": str(tmp_path)}), store)


async def read_all(files: ExportFiles, export_id: str, name: str, count: int) -> list[bytes]:
    return [chunk async for chunk in files.read(export_id, name, count)]


async def test_chunks_read_back_in_order(store: Any, tmp_path: Path) -> None:
    files = files_for(store, tmp_path)
    await files.put("e1", "Patient.1.ndjson", 0, b'{"a":1}\n')
    await files.put("e1", "Patient.1.ndjson", 1, b'{"a":2}\n{"a":3}\n')
    await files.put("e1", "Patient.2.ndjson", 0, b'{"a":4}\n')
    assert await read_all(files, "e1", "Patient.1.ndjson", 2) == [
        b'{"a":1}\n',
        b'{"a":2}\n{"a":3}\n',
    ]
    assert await read_all(files, "e1", "Patient.2.ndjson", 1) == [b'{"a":4}\n']
    # a count below what is stored reads only that many (a chunk beyond a checkpoint is unread)
    assert await read_all(files, "e1", "Patient.1.ndjson", 1) == [b'{"a":1}\n']


async def test_a_chunk_written_again_replaces_the_first(store: Any, tmp_path: Path) -> None:
    files = files_for(store, tmp_path)
    await files.put("e1", "Patient.1.ndjson", 0, b"first\n")
    await files.put("e1", "Patient.1.ndjson", 0, b"again\n")
    assert await read_all(files, "e1", "Patient.1.ndjson", 1) == [b"again\n"]


async def test_remove_deletes_one_export_only(store: Any, tmp_path: Path) -> None:
    files = files_for(store, tmp_path)
    await files.put("e1", "Patient.1.ndjson", 0, b"one\n")
    await files.put("e10", "Patient.1.ndjson", 0, b"ten\n")
    await files.put("e1-b", "Patient.1.ndjson", 0, b"other\n")
    assert await files.exports() == ["e1", "e1-b", "e10"]
    await files.remove("e1")
    await files.remove("e1")  # removing nothing is not an error
    assert await files.exports() == ["e1-b", "e10"]
    with pytest.raises(FileNotFoundError):
        await read_all(files, "e1", "Patient.1.ndjson", 1)
    assert await read_all(files, "e10", "Patient.1.ndjson", 1) == [b"ten\n"]
    assert await read_all(files, "e1-b", "Patient.1.ndjson", 1) == [b"other\n"]


@pytest.mark.parametrize("name", ["../x", "a/b", ".hidden", ""])
async def test_a_key_that_could_leave_its_place_is_refused(
    store: Any, tmp_path: Path, name: str
) -> None:
    files = files_for(store, tmp_path)
    with pytest.raises(ValueError):
        await files.put("e1", name, 0, b"x\n")
