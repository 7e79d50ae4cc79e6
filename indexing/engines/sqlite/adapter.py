"""`SearchIndex` on an embedded SQLite file (the embedded default; port: indexing/engines/port.py).

The index has a file of its own (app/deploy/engines.py), apart from the store's, so its writes
never wait for the store's write lock; its tables (schema.py) are all prefixed `idx_` and queries
join nothing else. All calls run on one dedicated thread with one connection (WAL mode), like
app/store/sqlite.py. A batch of ops is one SQLite transaction, so a crash leaves either the whole
batch or none of it; the version guard makes replaying it harmless. Writes are visible to the next
search: `refresh` has nothing to do.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from indexing.document import IndexOp
from indexing.engines.port import Hit, HitPage, IndexStatus
from indexing.engines.sqlite._names import ParamNames
from indexing.engines.sqlite._rows import document_rows
from indexing.engines.sqlite.compile import Names, compile_count, compile_query
from indexing.engines.sqlite.schema import PARAM, RESOURCE, SCHEMA, VALUE_COLUMNS, outdated
from indexing.engines.sqlite_file import open_connection
from indexing.plan.plan import SearchPlan
from indexing.registry import SearchParamRegistry

__all__ = ["SqliteSearchIndex"]

T = TypeVar("T")

_TABLES = (PARAM, *VALUE_COLUMNS)
_INSERTS = {
    PARAM: f"INSERT INTO {PARAM} (doc, pid) VALUES (?, ?)",
    **{
        table: f"INSERT INTO {table} (doc, pid, grp, {', '.join(columns)})"
        f" VALUES ({', '.join('?' * (3 + len(columns)))})"
        for table, columns in VALUE_COLUMNS.items()
    },
}


def _drop_outdated(db: sqlite3.Connection) -> None:
    def columns_of(table: str) -> list[str]:
        return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]

    for table in outdated(columns_of):
        db.execute(f"DROP TABLE IF EXISTS {table}")


class SqliteSearchIndex:
    """The embedded search index; one instance per process owns the file's index writes."""

    def __init__(self, path: Path, registry: SearchParamRegistry) -> None:
        self._path = path
        self._registry = registry
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="micdr-sqlite-index")
        self._conn: sqlite3.Connection | None = None
        self._names = ParamNames()

    @classmethod
    async def open(cls, path: Path, registry: SearchParamRegistry) -> SqliteSearchIndex:
        index = cls(path, registry)
        await index._run(index._connect)
        return index

    def _connect(self) -> None:
        self._conn = open_connection(self._path, SCHEMA, before=_drop_outdated)
        self._names.load(self._conn)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @property
    def _db(self) -> sqlite3.Connection:
        assert self._conn is not None, "index is closed"
        return self._conn

    # -- writes ---------------------------------------------------------------------------

    async def write(self, ops: Sequence[IndexOp]) -> None:
        if ops:
            await self._run(self._write, list(ops))

    def _write(self, ops: list[IndexOp], rebuild: bool = False) -> None:
        newest: dict[tuple[str, str], IndexOp] = {}
        for op in ops:  # within a batch, only the highest version of a resource counts
            known = newest.get((op.type, op.id))
            if known is None or op.version > known.version:
                newest[(op.type, op.id)] = op
        db, names = self._db, self._names
        db.execute("BEGIN IMMEDIATE")
        try:
            rows: dict[str, list[tuple[Any, ...]]] = {}
            for (type_, id_), op in newest.items():
                last_updated = ""
                if op.document is not None:
                    last_updated = str(op.document.get("lastUpdated") or "")
                deleted = op.document is None
                stored = db.execute(
                    f"SELECT doc, version FROM {RESOURCE} WHERE type = ? AND id = ?", (type_, id_)
                ).fetchone()
                if stored is not None:
                    doc, version = stored
                    # The version guard; a rebuild rewrites an equal version (new parameters),
                    # never an older one over a newer (a write that raced the rebuild's read).
                    if version > op.version or (version == op.version and not rebuild):
                        continue
                    for table in _TABLES:
                        db.execute(f"DELETE FROM {table} WHERE doc = ?", (doc,))
                    db.execute(
                        f"UPDATE {RESOURCE} SET version = ?, last_updated = ?, deleted = ?"
                        " WHERE doc = ?",
                        (op.version, last_updated, deleted, doc),
                    )
                else:
                    doc = db.execute(
                        f"INSERT INTO {RESOURCE} (type, id, version, last_updated, deleted)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (type_, id_, op.version, last_updated, deleted),
                    ).lastrowid
                if op.document is not None:
                    for table, table_rows in document_rows(op.document).items():
                        rows.setdefault(table, []).extend(
                            (doc, names.pid(db, type_, param), *rest) for param, *rest in table_rows
                        )
            for table, table_rows in rows.items():
                db.executemany(_INSERTS[table], table_rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            names.load(db)  # the numbers given in the rolled-back transaction are gone
            raise

    # -- rebuild --------------------------------------------------------------------------

    async def begin_rebuild(
        self, resource_type: str, resume: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Nothing to create: a rebuild rewrites the type's rows in place, batch by batch, each
        batch one transaction, so searches keep answering (from old rows, then new ones)."""
        return {"type": resource_type}

    async def rebuild_write(self, state: Mapping[str, Any], ops: Sequence[IndexOp]) -> None:
        if any(op.type != state["type"] for op in ops):
            raise ValueError(f"reindex of {state['type']} given another type's op")
        if ops:
            await self._run(self._write, list(ops), True)

    async def finish_rebuild(self, state: Mapping[str, Any]) -> int:
        return 0

    # -- search ---------------------------------------------------------------------------

    async def search(
        self, plan: SearchPlan, after: Any = None, with_total: bool = False
    ) -> HitPage:
        names = self._names.by_param
        query, count = self._compiled(plan, after, names, with_total)
        return await self._run(self._search, plan, after, names, query, count)

    def _compiled(
        self, plan: SearchPlan, after: Any, names: Names, with_total: bool
    ) -> tuple[tuple[str, list[Any]], tuple[str, list[Any]] | None]:
        """The page's query, and the count's when a total is wanted."""
        query = compile_query(plan, self._registry, names, after=after)
        return query, compile_count(plan, self._registry, names) if with_total else None

    def _search(
        self,
        plan: SearchPlan,
        after: Any,
        names: Names,
        query: tuple[str, list[Any]],
        count: tuple[str, list[Any]] | None,
    ) -> HitPage:
        db = self._db
        self._names.catch_up(db)
        if self._names.by_param is not names:  # numbers given since it was compiled
            query, count = self._compiled(plan, after, self._names.by_param, count is not None)
        hits = [
            Hit(type=row[0], id=row[1], version=row[2], cursor=[*row[3:], row[0], row[1]])
            for row in db.execute(*query)
        ]
        total = int(db.execute(*count).fetchone()[0]) if count else None
        return HitPage(hits=hits, total=total)

    async def refresh(self) -> None:
        """Nothing to do: every committed write is already visible."""

    async def status(self) -> IndexStatus:
        try:
            indexed = await self._run(self._count_resources)
        except (sqlite3.Error, AssertionError) as error:
            return IndexStatus(up=False, version=sqlite3.sqlite_version, detail=str(error))
        return IndexStatus(
            up=True, version=f"SQLite {sqlite3.sqlite_version}", detail=f"{indexed} resources"
        )

    def _count_resources(self) -> int:
        row = self._db.execute(f"SELECT COUNT(*) FROM {RESOURCE} WHERE deleted = 0").fetchone()
        return int(row[0])

    async def empty(self) -> bool:
        """True when the index holds no resource, not even a tombstone (a new file)."""
        return await self._run(self._empty)

    def _empty(self) -> bool:
        return self._db.execute(f"SELECT 1 FROM {RESOURCE} LIMIT 1").fetchone() is None

    async def close(self) -> None:
        if self._conn is not None:
            await self._run(self._db.close)
            self._conn = None
        self._executor.shutdown(wait=True)
