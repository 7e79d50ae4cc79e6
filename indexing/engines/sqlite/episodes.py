"""`EpisodeIndex` on the embedded index's SQLite file (port: indexing/engines/port.py).

Two tables beside the search index's (schema: EPISODE_SCHEMA): `epi_episode`, one row per
episode with a column per scalar field of indexing/analytics.py's FIELDS (the analysts query
them as they are) plus the whole document as JSON and a revision counter; and `epi_term`, the
terms each episode is found by; `epi_rebuild` holds the start of a rebuild not yet finished
(at most one row). `apply` checks every revision and writes in one SQLite transaction, so a
conflict leaves nothing written. `answer` compiles a question into one GROUP BY
(`compile_answer`, pure).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson

from indexing.alerts import AlertRule, alert_row, threshold
from indexing.analytics import (
    FIELDS,
    GROUPS,
    OPEN_STATUSES,
    REPORTED_STATUSES,
    TURNAROUNDS,
    AnalyticsQuery,
    episode_terms,
)
from indexing.engines.port import EpisodeStatus, EpisodeWrite, StoredEpisode
from indexing.engines.sqlite_file import open_connection

__all__ = ["EPISODE_SCHEMA", "SqliteEpisodeIndex", "compile_answer"]

T = TypeVar("T")

_SQL_TYPES = {"keyword": "TEXT", "date": "TEXT", "integer": "INTEGER", "boolean": "INTEGER"}
_COLUMNS = ", ".join(
    f'"{name}" {_SQL_TYPES[kind]}' for name, kind in FIELDS.items() if name != "key"
)
EPISODE_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS epi_episode (
    key TEXT PRIMARY KEY, rev INTEGER NOT NULL, doc TEXT NOT NULL, {_COLUMNS}
);
CREATE INDEX IF NOT EXISTS epi_episode_date ON epi_episode (episode_date);
CREATE TABLE IF NOT EXISTS epi_term (
    term TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (term, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS epi_term_key ON epi_term (key);
CREATE TABLE IF NOT EXISTS epi_rebuild (since TEXT NOT NULL);
"""
_NAMES = [name for name in FIELDS if name != "key"]
_QUOTED = ", ".join('"' + n + '"' for n in _NAMES)
_UPSERT = (
    f"INSERT OR REPLACE INTO epi_episode (key, rev, doc, {_QUOTED})"
    f" VALUES ({', '.join('?' * (3 + len(_NAMES)))})"
)


def _q(name: str) -> str:
    return f'"{name}"'


def compile_answer(query: AnalyticsQuery) -> tuple[str, list[Any]]:
    """One SELECT ... GROUP BY answering `query`, with its parameters; its rows are in the
    group fields' order with NULL first, like `reference_answer`."""
    where: list[str] = []
    params: list[Any] = []
    if query.start:
        where.append("episode_date >= ?")
        params.append(query.start)
    if query.end:
        where.append("episode_date < ?")
        params.append(query.end)
    if query.modality:
        where.append("modality = ?")
        params.append(query.modality)
    if query.site:
        where.append("performing_org_upi = ?")
        params.append(query.site)
    if query.question == "unreported":
        where.append(f"status IN ({', '.join('?' * len(OPEN_STATUSES))}) AND episode_date < ?")
        params.extend([*OPEN_STATUSES, query.cutoff])
    groups = GROUPS[query.question]
    if query.question == "turnaround":
        measures = ["COUNT(*) AS episodes"] + [
            f"AVG({_q(t)}) AS {_q(t[:-8] + '_avg')}" for t in TURNAROUNDS
        ]
    elif query.question == "repeats":
        measures = ["COUNT(*) AS episodes", 'SUM("repeat") AS repeats']
    elif query.question == "amendments":
        reported = ", ".join(f"'{s}'" for s in REPORTED_STATUSES)
        measures = [
            f"SUM(status IN ({reported})) AS reported",
            "SUM(status = 'amended') AS amended",
        ]
    else:
        measures = ["COUNT(*) AS episodes"]
    group_list = ", ".join(_q(g) for g in groups)
    sql = (
        f"SELECT {group_list}, {', '.join(measures)} FROM epi_episode"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + f" GROUP BY {group_list} ORDER BY {group_list}"
    )
    return sql, params


def _row(doc: dict[str, Any]) -> list[Any]:
    return [
        (int(doc[n]) if FIELDS[n] == "boolean" and doc.get(n) is not None else doc.get(n))
        for n in _NAMES
    ]


class SqliteEpisodeIndex:
    """The embedded episode index: its own connection to the index file, one thread."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="micdr-episodes")
        self._conn: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, path: Path) -> SqliteEpisodeIndex:
        index = cls(path)
        await index._run(index._connect)
        return index

    def _connect(self) -> None:
        self._conn = open_connection(self._path, EPISODE_SCHEMA)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @property
    def _db(self) -> sqlite3.Connection:
        assert self._conn is not None, "episode index is closed"
        return self._conn

    async def related(self, terms: Sequence[str]) -> list[StoredEpisode]:
        return await self._run(self._related, sorted(set(terms))) if terms else []

    def _related(self, terms: list[str]) -> list[StoredEpisode]:
        found: dict[str, StoredEpisode] = {}
        for i in range(0, len(terms), 500):
            chunk = terms[i : i + 500]
            rows = self._db.execute(
                "SELECT key, rev, doc FROM epi_episode WHERE key IN"
                f" (SELECT key FROM epi_term WHERE term IN ({', '.join('?' * len(chunk))}))",
                chunk,
            ).fetchall()
            for key, rev, doc in rows:
                found[key] = StoredEpisode(key, orjson.loads(doc), rev)
        return [found[k] for k in sorted(found)]

    async def apply(self, writes: Sequence[EpisodeWrite]) -> bool:
        return await self._run(self._apply, list(writes)) if writes else True

    def _apply(self, writes: list[EpisodeWrite]) -> bool:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for write in writes:
                row = db.execute("SELECT rev FROM epi_episode WHERE key = ?", (write.key,))
                stored = row.fetchone()
                if (stored[0] if stored else None) != write.expect:
                    db.execute("ROLLBACK")
                    return False
                db.execute("DELETE FROM epi_term WHERE key = ?", (write.key,))
                if write.doc is None:
                    db.execute("DELETE FROM epi_episode WHERE key = ?", (write.key,))
                    continue
                rev = (stored[0] if stored else 0) + 1
                db.execute(
                    _UPSERT, [write.key, rev, orjson.dumps(write.doc).decode(), *_row(write.doc)]
                )
                db.executemany(
                    "INSERT INTO epi_term (term, key) VALUES (?, ?)",
                    [(term, write.key) for term in episode_terms(write.doc)],
                )
            db.execute("COMMIT")
            return True
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def answer(self, query: AnalyticsQuery) -> list[dict[str, Any]]:
        sql, params = compile_answer(query)
        return await self._run(self._answer, sql, params, GROUPS[query.question])

    def _answer(self, sql: str, params: list[Any], groups: tuple[str, ...]) -> list[dict[str, Any]]:
        cursor = self._db.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    async def alerts(self, rules: Sequence[AlertRule], now: datetime) -> list[dict[str, Any]]:
        return await self._run(self._alerts, list(rules), now)

    def _alerts(self, rules: list[AlertRule], now: datetime) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for rule in rules:
            compare = "<" if rule.is_age else ">"
            statuses = ", ".join("?" * len(rule.statuses))
            cursor = self._db.execute(
                f"SELECT doc FROM epi_episode WHERE status IN ({statuses})"
                f" AND {_q(rule.field)} {compare} ? ORDER BY key",
                [*rule.statuses, threshold(rule, now)],
            )
            out.extend(alert_row(rule, orjson.loads(doc)) for (doc,) in cursor.fetchall())
        return out

    async def begin_rebuild(self, since: str) -> None:
        await self._run(self._begin_rebuild, since)

    def _begin_rebuild(self, since: str) -> None:
        # one transaction: no reader sees the episodes gone without the rebuild recorded
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for table in ("epi_term", "epi_episode", "epi_rebuild"):
                db.execute(f"DELETE FROM {table}")
            db.execute("INSERT INTO epi_rebuild (since) VALUES (?)", (since,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def finish_rebuild(self, since: str) -> None:
        await self._run(self._finish_rebuild, since)

    def _finish_rebuild(self, since: str) -> None:
        self._db.execute("DELETE FROM epi_rebuild WHERE since = ?", (since,))

    async def status(self) -> EpisodeStatus:
        try:
            return EpisodeStatus(up=True, rebuilding_since=await self._run(self._rebuilding))
        except (sqlite3.Error, AssertionError) as error:
            return EpisodeStatus(up=False, detail=str(error))

    def _rebuilding(self) -> str | None:
        row = self._db.execute("SELECT since FROM epi_rebuild").fetchone()
        return str(row[0]) if row else None

    async def close(self) -> None:
        if self._conn is not None:
            await self._run(self._db.close)
            self._conn = None
        self._executor.shutdown(wait=True)
