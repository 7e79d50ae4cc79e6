"""`open_connection` (indexing/engines/sqlite_file.py): the WAL does not keep the size of its
largest burst after a checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexing.engines import sqlite_file

SCHEMA = "CREATE TABLE IF NOT EXISTS blob (n INTEGER PRIMARY KEY, data BLOB);"


def _wal_after_a_burst(path: Path) -> int:
    conn = sqlite_file.open_connection(path, SCHEMA)
    try:
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO blob (data) VALUES (?)", ((bytes(8192),) for _ in range(600)))
        conn.execute("COMMIT")  # ~5 MB of WAL frames in one transaction
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        # the next write restarts the checkpointed WAL from its start: that is when it shrinks
        conn.execute("INSERT INTO blob (data) VALUES (x'00')")
        return Path(f"{path}-wal").stat().st_size
    finally:
        conn.close()


def test_a_checkpoint_truncates_the_wal_to_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_file, "WAL_SIZE_LIMIT", 1024 * 1024)
    assert _wal_after_a_burst(tmp_path / "limited.sqlite3") <= 1024 * 1024


def test_without_a_limit_the_wal_keeps_its_largest_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the control: what the limit prevents
    monkeypatch.setattr(sqlite_file, "WAL_SIZE_LIMIT", -1)
    assert _wal_after_a_burst(tmp_path / "unlimited.sqlite3") > 4 * 1024 * 1024


def test_the_production_limit_is_set_on_every_connection(tmp_path: Path) -> None:
    conn = sqlite_file.open_connection(tmp_path / "x.sqlite3", SCHEMA)
    try:
        assert conn.execute("PRAGMA journal_size_limit").fetchone() == (64 * 1024 * 1024,)
    finally:
        conn.close()
