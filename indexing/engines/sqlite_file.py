"""One way to open an embedded SQLite file, so the embedded store (app/store/sqlite.py) and the
embedded index (indexing/engines/sqlite/), each in a file of its own (app/deploy/engines.py), run
with the same journal, durability and cache settings. It sits beside the engines' ports rather
than inside the index's SQLite package because it belongs to neither adapter: both import it,
neither imports the other (docs/layering.md)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

# Bytes the WAL file is truncated to after a checkpoint (a little over one autocheckpoint's
# worth of 4 KB pages, so steady ingest does not regrow it each time).
WAL_SIZE_LIMIT = 64 * 1024 * 1024


def open_connection(path: Path, schema: str) -> sqlite3.Connection:
    """An autocommit connection usable from the adapter's one worker thread, schema applied."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=10000")
    # Bulk ingest (bench/README.md): a 64 MB page cache keeps the B-tree pages of the
    # secondary indexes in memory, and checkpointing every 10,000 WAL pages (not 1,000)
    # fsyncs the file less often.
    conn.execute("PRAGMA cache_size=-65536")
    conn.execute("PRAGMA wal_autocheckpoint=10000")
    # A checkpoint reuses the WAL file but never shrinks it: without a limit it keeps the size
    # of its largest burst (626 MB seen after a 112,000-resource load) for the process's life.
    conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    conn.executescript(schema)
    return conn
