"""`embedded_bytes` and `per_resource` (bench/footprint.py)."""

from __future__ import annotations

from pathlib import Path

from bench.footprint import embedded_bytes, per_resource


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
