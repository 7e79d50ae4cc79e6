"""`embedded_bytes`, `embedded_pages`, `per_resource` and `per_version` (bench/footprint.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bench.footprint import (
    embedded_bytes,
    embedded_pages,
    embedded_versions,
    per_resource,
    per_version,
)


def test_the_embedded_files_and_their_wal_are_counted_the_rest_is_not(tmp_path: Path) -> None:
    for name, size in {
        "micdr.sqlite3": 100,
        "micdr.sqlite3-wal": 50,
        "micdr-index.sqlite3": 30,
        "micdr-index.sqlite3-shm": 7,
        "audit.jsonl": 999,
    }.items():
        (tmp_path / name).write_bytes(bytes(size))
    assert embedded_bytes(tmp_path) == {"store": 150, "index": 37}


def test_bytes_per_resource() -> None:
    assert per_resource({"store": 150, "index": 50}, 8) == {
        "store_bytes": 150,
        "index_bytes": 50,
        "total_bytes": 200,
        "bytes_per_resource": 25,
    }
    assert per_resource({"store": 1}, 0)["bytes_per_resource"] is None


def test_pages_in_use_per_stored_version(tmp_path: Path) -> None:
    """The pages the tables and indexes use, not the files' size: free pages left by deletes
    are not counted."""
    store = sqlite3.connect(tmp_path / "micdr.sqlite3")
    store.execute("CREATE TABLE resource_versions (body BLOB)")
    store.executemany("INSERT INTO resource_versions VALUES (?)", [(bytes(3000),)] * 40)
    store.commit()
    store.execute("DELETE FROM resource_versions WHERE rowid > 4")
    store.commit()
    store.close()
    sqlite3.connect(tmp_path / "micdr-index.sqlite3").close()
    pages = embedded_pages(tmp_path)
    assert 4 * 3000 < pages["store"] < 40 * 3000 < (tmp_path / "micdr.sqlite3").stat().st_size
    assert pages["index"] == 0
    assert embedded_versions(tmp_path) == 4
    assert per_version({"store": 900, "index": 300}, 4) == {
        "store_page_bytes": 900,
        "index_page_bytes": 300,
        "stored_versions": 4,
        "bytes_per_version": 300,
    }
    assert per_version({"store": 1}, 0)["bytes_per_version"] is None
