"""One way to open an embedded SQLite file, so the embedded store (app/store/sqlite.py) and the
embedded index (indexing/engines/sqlite/), each in a file of its own (app/deploy/engines.py), run
with the same journal, durability and cache settings. It sits beside the engines' ports rather
than inside the index's SQLite package because it belongs to neither adapter: both import it,
neither imports the other (docs/layering.md)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

# Bytes the WAL file is truncated to after a checkpoint (a little over one autocheckpoint's
# worth of 4 KB pages, so steady ingest does not regrow it each time).
WAL_SIZE_LIMIT = 64 * 1024 * 1024
CHECKPOINT_BYTES = 10_000 * 4096


def open_connection(
    path: Path,
    schema: str,
    page_size: int = 4096,
    before: Callable[[sqlite3.Connection], None] | None = None,
) -> sqlite3.Connection:
    """An autocommit connection usable from the adapter's one worker thread, schema applied
    (after `before`, which may drop what an older layout left). `page_size` applies to a new
    file only (an existing one keeps its own)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA page_size={int(page_size)}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=10000")
    # Bulk ingest (bench/README.md): a 64 MB page cache keeps the B-tree pages of the
    # secondary indexes in memory, and checkpointing every ~40 MB of WAL (10,000 pages of
    # 4 KB, not SQLite's 1,000) fsyncs the file less often.
    conn.execute("PRAGMA cache_size=-65536")
    actual = int(conn.execute("PRAGMA page_size").fetchone()[0])
    conn.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_BYTES // actual}")
    # A checkpoint reuses the WAL file but never shrinks it: without a limit it keeps the size
    # of its largest burst (626 MB seen after a 112,000-resource load) for the process's life.
    conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    if before is not None:
        before(conn)
    conn.executescript(schema)
    return conn
