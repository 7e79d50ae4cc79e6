"""The `pid` of each (resource type, parameter) in the index file (schema.py `idx_name`), kept in
memory by the adapter: the writer numbers a pair the first time it indexes a value of it, and
the compiler reads the numbers of the searched types (compile.py).

The compiler runs on the event loop, beside the index's thread, so that compiling one search
does not wait behind another's SQL: `by_param` is never changed in place but replaced (a pair
is numbered once, so copies are rare), and a reader holds a consistent snapshot."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

from indexing.engines.sqlite.schema import NAME

__all__ = ["ParamNames"]


class ParamNames:
    """The numbers known to this process; changed on the adapter's thread only."""

    def __init__(self) -> None:
        self._pids: dict[tuple[str, str], int] = {}
        # param -> resource type -> pid: what the compiler looks up (replaced, never changed)
        self.by_param: Mapping[str, Mapping[str, int]] = {}
        self._newest = 0

    def load(self, db: sqlite3.Connection) -> None:
        """Read every number from the file (at start, after a rollback dropped numbers given
        in it, and when another process added some)."""
        pids: dict[tuple[str, str], int] = {}
        by_param: dict[str, dict[str, int]] = {}
        for pid, type_, param in db.execute(f"SELECT pid, type, param FROM {NAME}"):
            pids[(type_, param)] = pid
            by_param.setdefault(param, {})[type_] = pid
        self._pids, self.by_param = pids, by_param
        self._newest = max(pids.values(), default=0)

    def catch_up(self, db: sqlite3.Connection) -> None:
        """Load again if another process numbered pairs since (one primary-key lookup)."""
        newest = db.execute(f"SELECT MAX(pid) FROM {NAME}").fetchone()[0]
        if newest is not None and newest > self._newest:
            self.load(db)

    def pid(self, db: sqlite3.Connection, type_: str, param: str) -> int:
        """The pair's number, given now if it has none: inside the caller's write transaction,
        so no other process numbers the same pair between the lookup and the insert."""
        known = self._pids.get((type_, param))
        if known is not None:
            return known
        row = db.execute(
            f"SELECT pid FROM {NAME} WHERE type = ? AND param = ?", (type_, param)
        ).fetchone()
        if row is not None:  # numbered by another process
            pid = int(row[0])
        else:
            cursor = db.execute(f"INSERT INTO {NAME} (type, param) VALUES (?, ?)", (type_, param))
            assert cursor.lastrowid is not None
            pid = cursor.lastrowid
        self._remember(pid, type_, param)
        return pid

    def _remember(self, pid: int, type_: str, param: str) -> None:
        self._pids[(type_, param)] = pid
        self.by_param = {**self.by_param, param: {**self.by_param.get(param, {}), type_: pid}}
        self._newest = max(self._newest, pid)
