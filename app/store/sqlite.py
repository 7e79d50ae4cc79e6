"""`ResourceStore` and `CommitLog` on an embedded SQLite file (the embedded default).

SQLite has real transactions, so here the commit point is SQLite's own COMMIT: the version rows,
the current rows, the identifier rows, the claims and the commit-log row are written in one
`BEGIN IMMEDIATE` transaction, and a crash anywhere before COMMIT leaves nothing behind (SQLite's
journal). All calls run on one dedicated thread with one connection (WAL mode).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, fields, replace
from pathlib import Path
from typing import Any, TypeVar

import orjson

from app.fhir.clock import utc_now
from app.records import Claim, StoredResource, Transaction, Write
from app.store.names import (
    CLAIMS,
    CURRENT,
    IDENTIFIERS,
    SUBMISSION_KEYS,
    SUBMISSION_PARTS,
    SUBMISSIONS,
    SUBSCRIPTION_DELIVERY,
    SUBSCRIPTION_EVENTS,
    TXLOG,
    VERSIONS,
)
from app.store.port import (
    ClaimTaken,
    CommittedTransaction,
    DeliveryState,
    FoundEvent,
    HistoryQuery,
    ServiceStatus,
    SnapshotPage,
    Submission,
    SubmissionStats,
    SubscriptionEvent,
    VersionConflict,
)
from indexing.engines.sqlite_file import open_connection

T = TypeVar("T")
# Bodies are 1-2 KB (p99 ~4 KB): with 4 KB pages a WITHOUT ROWID row keeps at most ~1 KB in
# its page and puts the rest on an overflow page of its own, 3.3x the body on disk. 16 KB
# pages keep them whole (bench/README.md, "Bytes per resource"). Takes effect on a new file.
STORE_PAGE_SIZE = 16384
# A current row and the body of its version.
_CURRENT_ROWS = (
    f"SELECT c.type, c.id, c.version, c.op, c.last_updated, v.body FROM {CURRENT} c "
    f"JOIN {VERSIONS} v ON v.type = c.type AND v.id = c.id AND v.version = c.version"
)
_DELIVERY_COLUMNS = ", ".join(f.name for f in fields(DeliveryState))

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {VERSIONS} (
  type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, tx INTEGER NOT NULL,
  op TEXT NOT NULL, last_updated TEXT NOT NULL, body BLOB,
  PRIMARY KEY (type, id, version)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS {VERSIONS}_by_time ON {VERSIONS} (last_updated, type, id, version);
CREATE INDEX IF NOT EXISTS {VERSIONS}_by_type_time
  ON {VERSIONS} (type, last_updated, id, version);
CREATE TABLE IF NOT EXISTS {CURRENT} (
  type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, op TEXT NOT NULL,
  last_updated TEXT NOT NULL, body BLOB,
  PRIMARY KEY (type, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS {IDENTIFIERS} (
  type TEXT NOT NULL, token TEXT NOT NULL, id TEXT NOT NULL,
  PRIMARY KEY (type, token, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS {IDENTIFIERS}_by_id ON {IDENTIFIERS} (type, id);
CREATE TABLE IF NOT EXISTS {CLAIMS} (
  key TEXT PRIMARY KEY, ref TEXT NOT NULL, tx INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS {TXLOG} (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, committed_at TEXT NOT NULL, refs BLOB NOT NULL,
  origin TEXT, indexed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS {TXLOG}_unindexed ON {TXLOG} (indexed, seq);
CREATE INDEX IF NOT EXISTS {TXLOG}_origin ON {TXLOG} (origin);
CREATE TABLE IF NOT EXISTS {SUBMISSIONS} (
  id TEXT PRIMARY KEY, state TEXT NOT NULL, created REAL NOT NULL, not_before REAL NOT NULL,
  lease_until REAL NOT NULL, expires REAL, cb_state TEXT, cb_next REAL, doc BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS {SUBMISSIONS}_by_state ON {SUBMISSIONS} (state, created);
CREATE TABLE IF NOT EXISTS {SUBMISSION_KEYS} (key TEXT PRIMARY KEY, id TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS {SUBMISSION_PARTS} (
  id TEXT NOT NULL, key TEXT NOT NULL, body BLOB NOT NULL, UNIQUE (id, key)
);
CREATE TABLE IF NOT EXISTS {SUBSCRIPTION_EVENTS} (
  subscription TEXT NOT NULL, number INTEGER NOT NULL, seq INTEGER NOT NULL,
  focus TEXT NOT NULL, version INTEGER NOT NULL, interaction TEXT NOT NULL,
  timestamp TEXT NOT NULL,
  PRIMARY KEY (subscription, number),
  UNIQUE (subscription, seq, focus)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS {SUBSCRIPTION_DELIVERY} (
  subscription TEXT PRIMARY KEY, delivered INTEGER NOT NULL, failures INTEGER NOT NULL,
  retry_at REAL NOT NULL, last_sent REAL NOT NULL, owner TEXT, lease_until REAL NOT NULL,
  turns INTEGER NOT NULL
) WITHOUT ROWID;
"""


def _stored(row: sqlite3.Row | tuple[Any, ...]) -> StoredResource:
    type_, id_, version, op, last_updated, body = row
    return StoredResource(
        type=type_,
        id=id_,
        version=version,
        last_updated=last_updated,
        deleted=op == "delete",
        resource=orjson.loads(body) if body is not None else None,
        op=op,
    )


# The parts of a submission that are written once each (its journal, one entry at a time)
# are rows of SUBMISSION_PARTS keyed `request`, `result`, `journal.<key>`, apart from its
# state document: a change of state rewrites a few hundred bytes, not the Bundle it carries.
_PARTS = ("request", "result", "journal")


def _state_columns(doc: Mapping[str, Any]) -> tuple[Any, ...]:
    """A state document's indexed columns, its body and its id, in the order of the UPDATE."""
    callback = doc.get("callback") or {}
    return (
        doc["state"],
        doc["created"],
        doc["not_before"],
        doc["lease_until"],
        doc.get("expires"),
        callback.get("state"),
        callback.get("next_at"),
        orjson.dumps(doc),
        doc["id"],
    )


class SqliteResourceStore:
    """The embedded store; one instance per process owns the file's write connection."""

    submission_request_limit: int | None = None  # a submission's parts are rows of their own

    def __init__(self, path: Path) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="micdr-sqlite")
        self._conn: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, path: Path) -> SqliteResourceStore:
        store = cls(path)
        await store._run(store._connect)
        return store

    def _connect(self) -> None:
        self._conn = open_connection(self._path, _SCHEMA, STORE_PAGE_SIZE)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @property
    def _db(self) -> sqlite3.Connection:
        assert self._conn is not None, "store is closed"
        return self._conn

    # -- writes ---------------------------------------------------------------------------

    async def commit(self, tx: Transaction) -> int:
        return await self._run(self._commit, tx)

    def _commit(self, tx: Transaction) -> int:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for write in tx.writes:
                self._check_version(write)
            committed_at = utc_now()
            refs = [[w.type, w.id, w.version] for w in tx.writes]
            cur = db.execute(
                f"INSERT INTO {TXLOG} (committed_at, refs, origin) VALUES (?, ?, ?)",
                (committed_at, orjson.dumps(refs), tx.origin),
            )
            seq = int(cur.lastrowid or 0)
            for claim in tx.claims:
                self._take_claim(claim, seq)
            for write in tx.writes:
                self._apply(write, seq, tx.last_updated or committed_at)
            db.execute("COMMIT")
            return seq
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _check_version(self, write: Write) -> None:
        row = self._db.execute(
            f"SELECT version FROM {CURRENT} WHERE type = ? AND id = ?", (write.type, write.id)
        ).fetchone()
        current = row[0] if row else 0
        if current != write.version - 1:
            raise VersionConflict(write.ref, write.version)

    def _take_claim(self, claim: Claim, seq: int) -> None:
        db = self._db
        row = db.execute(f"SELECT ref FROM {CLAIMS} WHERE key = ?", (claim.key,)).fetchone()
        if row is not None and row[0] != claim.ref and self._claim_is_live(claim, row[0]):
            raise ClaimTaken(claim.key, row[0])
        db.execute(
            f"INSERT OR REPLACE INTO {CLAIMS} (key, ref, tx) VALUES (?, ?, ?)",
            (claim.key, claim.ref, seq),
        )

    def _claim_is_live(self, claim: Claim, holder: str) -> bool:
        # Live = the holder is a current, undeleted resource still carrying the identifier.
        holder_type, _, holder_id = holder.partition("/")
        row = self._db.execute(
            f"SELECT 1 FROM {IDENTIFIERS} i JOIN {CURRENT} c ON c.type = i.type AND c.id = i.id "
            "WHERE i.type = ? AND i.id = ? AND i.token = ? AND c.op != 'delete'",
            (holder_type, holder_id, claim.token),
        ).fetchone()
        return row is not None

    def _apply(self, write: Write, seq: int, tx_time: str) -> None:
        db = self._db
        body = orjson.dumps(write.resource) if write.resource is not None else None
        # As in the MongoDB store: meta.lastUpdated, else (a delete) the transaction's time.
        last_updated = (write.resource or {}).get("meta", {}).get("lastUpdated") or tx_time
        try:
            db.execute(
                f"INSERT INTO {VERSIONS} (type, id, version, tx, op, last_updated, body) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (write.type, write.id, write.version, seq, write.op, last_updated, body),
            )
        except sqlite3.IntegrityError:
            raise VersionConflict(write.ref, write.version) from None
        # The body is the version's, read through it (_CURRENT_ROWS): one copy on disk, not
        # two. (Data dirs from before keep a stale copy here, never read.)
        db.execute(
            f"INSERT OR REPLACE INTO {CURRENT} (type, id, version, op, last_updated, body) "
            "VALUES (?, ?, ?, ?, ?, NULL)",
            (write.type, write.id, write.version, write.op, last_updated),
        )
        db.execute(f"DELETE FROM {IDENTIFIERS} WHERE type = ? AND id = ?", (write.type, write.id))
        if write.op != "delete":
            db.executemany(
                f"INSERT OR IGNORE INTO {IDENTIFIERS} (type, token, id) VALUES (?, ?, ?)",
                [(write.type, token, write.id) for token in write.identifiers],
            )

    # -- reads ----------------------------------------------------------------------------

    async def read(self, type: str, id: str) -> StoredResource | None:
        return await self._run(self._read, type, id)

    def _read(self, type_: str, id_: str) -> StoredResource | None:
        row = self._db.execute(
            f"{_CURRENT_ROWS} WHERE c.type = ? AND c.id = ?", (type_, id_)
        ).fetchone()
        return _stored(row) if row else None

    async def read_many(self, refs: Sequence[tuple[str, str]]) -> list[StoredResource]:
        return await self._run(self._read_many, list(refs))

    def _read_many(self, refs: list[tuple[str, str]]) -> list[StoredResource]:
        out: list[StoredResource] = []
        for start in range(0, len(refs), 400):
            chunk = refs[start : start + 400]
            where = " OR ".join("(c.type = ? AND c.id = ?)" for _ in chunk)
            params = [v for ref in chunk for v in ref]
            rows = self._db.execute(f"{_CURRENT_ROWS} WHERE {where}", params).fetchall()
            out.extend(_stored(r) for r in rows)
        return out

    async def vread(self, type: str, id: str, version: int) -> StoredResource | None:
        return await self._run(self._vread, type, id, version)

    async def vread_many(self, keys: Sequence[tuple[str, str, int]]) -> list[StoredResource]:
        return await self._run(self._vread_many, list(keys))

    def _vread_many(self, keys: list[tuple[str, str, int]]) -> list[StoredResource]:
        found = (self._vread(*key) for key in dict.fromkeys(keys))  # one trip to the thread
        return [stored for stored in found if stored is not None]

    def _vread(self, type_: str, id_: str, version: int) -> StoredResource | None:
        row = self._db.execute(
            f"SELECT type, id, version, op, last_updated, body FROM {VERSIONS} "
            "WHERE type = ? AND id = ? AND version = ?",
            (type_, id_, version),
        ).fetchone()
        return _stored(row) if row else None

    async def history(self, query: HistoryQuery) -> list[StoredResource]:
        return await self._run(self._history, query)

    def _history(self, q: HistoryQuery) -> list[StoredResource]:
        clauses: list[str] = []
        params: list[Any] = []
        if q.type is not None:
            clauses.append("type = ?")
            params.append(q.type)
        if q.id is not None:
            clauses.append("id = ?")
            params.append(q.id)
        if q.since is not None:
            clauses.append("last_updated >= ?")
            params.append(q.since)
        if q.at is not None:
            # _at: the versions that were current at that instant, plus later ones.
            clauses.append(
                f"(last_updated > ? OR version = (SELECT MAX(v2.version) FROM {VERSIONS} v2 "
                f"WHERE v2.type = {VERSIONS}.type AND v2.id = {VERSIONS}.id "
                "AND v2.last_updated <= ?))"
            )
            params += [q.at, q.at]
        if q.before is not None:
            clauses.append("(last_updated, type, id, version) < (?, ?, ?, ?)")
            params += list(q.before)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._db.execute(
            f"SELECT type, id, version, op, last_updated, body FROM {VERSIONS} {where} "
            "ORDER BY last_updated DESC, type DESC, id DESC, version DESC LIMIT ?",
            [*params, q.count],
        ).fetchall()
        return [_stored(r) for r in rows]

    async def find_by_identifier(self, type: str, tokens: Sequence[str]) -> Mapping[str, list[str]]:
        return (await self.find_by_identifiers({type: tokens}))[type]

    async def find_by_identifiers(
        self, wanted: Mapping[str, Sequence[str]]
    ) -> Mapping[str, Mapping[str, list[str]]]:
        pairs = [(t, list(tokens)) for t, tokens in wanted.items()]
        return await self._run(lambda: {t: self._find_by_identifier(t, ts) for t, ts in pairs})

    def _find_by_identifier(self, type_: str, tokens: list[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {t: [] for t in tokens}
        for start in range(0, len(tokens), 500):
            chunk = tokens[start : start + 500]
            marks = ",".join("?" for _ in chunk)
            rows = self._db.execute(
                f"SELECT token, id FROM {IDENTIFIERS} WHERE type = ? AND token IN ({marks}) "
                "ORDER BY id",
                [type_, *chunk],
            ).fetchall()
            for token, id_ in rows:
                found[token].append(id_)
        return found

    async def resource_types(self) -> list[str]:
        return await self._run(self._resource_types)

    def _resource_types(self) -> list[str]:
        # A skip scan of the (type, id) key: one probe per type, not one row per resource.
        types: list[str] = []
        row = self._db.execute(f"SELECT MIN(type) FROM {CURRENT}").fetchone()
        while row is not None and row[0] is not None:
            types.append(row[0])
            row = self._db.execute(
                f"SELECT MIN(type) FROM {CURRENT} WHERE type > ?", (row[0],)
            ).fetchone()
        return types

    async def scan(self, type: str, after_id: str | None, limit: int) -> list[StoredResource]:
        return await self._run(self._scan, type, after_id, limit)

    def _scan(self, type_: str, after_id: str | None, limit: int) -> list[StoredResource]:
        rows = self._db.execute(
            f"{_CURRENT_ROWS} WHERE c.type = ? AND c.id > ? ORDER BY c.id LIMIT ?",
            (type_, after_id or "", limit),
        ).fetchall()
        return [_stored(r) for r in rows]

    async def count(self, type: str) -> int:
        return await self._run(self._count, type)

    def _count(self, type_: str) -> int:
        row = self._db.execute(
            f"SELECT COUNT(*) FROM {CURRENT} WHERE type = ? AND op != 'delete'", (type_,)
        ).fetchone()
        return int(row[0])

    async def changes(self, type: str) -> int:
        return await self._run(self._changes, type)

    def _changes(self, type_: str) -> int:
        # A commit is one SQLite transaction: its versions become visible with its current rows.
        row = self._db.execute(
            f"SELECT COUNT(DISTINCT tx) FROM {VERSIONS} WHERE type = ?", (type_,)
        ).fetchone()
        return int(row[0])

    # -- snapshots ------------------------------------------------------------------------
    # One SQLite transaction per commit, numbered in commit order: a version is in the snapshot
    # of `seq` exactly when its `tx` is at most `seq`.

    async def sequence(self) -> int:
        return await self._run(self._sequence)

    def _sequence(self) -> int:
        row = self._db.execute(f"SELECT COALESCE(MAX(seq), 0) FROM {TXLOG}").fetchone()
        return int(row[0])

    async def settled(self, seq: int) -> bool:
        return True

    async def snapshot_types(self, seq: int) -> list[str]:
        # the current types: a deleted resource keeps its row, one created later may add a type
        return await self.resource_types()

    async def scan_as_of(
        self, type: str, seq: int, after_id: str | None, limit: int
    ) -> SnapshotPage:
        return await self._run(self._scan_as_of, type, seq, after_id, limit)

    def _scan_as_of(self, type_: str, seq: int, after_id: str | None, limit: int) -> SnapshotPage:
        rows = self._db.execute(
            f"SELECT v.type, v.id, v.version, v.op, v.last_updated, v.body FROM {VERSIONS} v "
            "WHERE v.type = ? AND v.id > ? AND v.version = ("
            f"SELECT MAX(w.version) FROM {VERSIONS} w "
            "WHERE w.type = v.type AND w.id = v.id AND w.tx <= ?) "
            "ORDER BY v.id LIMIT ?",
            (type_, after_id or "", seq, limit),
        ).fetchall()
        found = [_stored(r) for r in rows]
        return SnapshotPage(found, found[-1].id if len(found) == limit else None)

    async def status(self) -> ServiceStatus:
        return ServiceStatus("store", True, f"SQLite {sqlite3.sqlite_version}", str(self._path))

    # -- commit log -----------------------------------------------------------------------

    async def unindexed(self, limit: int, after: int = 0) -> list[CommittedTransaction]:
        return await self._run(self._unindexed, limit, after)

    def _unindexed(self, limit: int, after: int) -> list[CommittedTransaction]:
        rows = self._db.execute(
            f"SELECT seq, refs, committed_at FROM {TXLOG} WHERE indexed = 0 AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (after, limit),
        ).fetchall()
        return [
            CommittedTransaction(seq, tuple((t, i, v) for t, i, v in orjson.loads(refs)), at)
            for seq, refs, at in rows
        ]

    async def mark_indexed(self, seqs: Sequence[int]) -> None:
        await self._run(self._mark_indexed, list(seqs))

    def _mark_indexed(self, seqs: list[int]) -> None:
        self._db.executemany(f"UPDATE {TXLOG} SET indexed = 1 WHERE seq = ?", [(s,) for s in seqs])

    async def oldest_unindexed(self) -> str | None:
        return await self._run(self._oldest_unindexed)

    def _oldest_unindexed(self) -> str | None:
        row = self._db.execute(
            f"SELECT MIN(committed_at) FROM {TXLOG} WHERE indexed = 0"
        ).fetchone()
        return row[0] if row else None

    async def committed_origin(self, origin: str) -> int | None:
        return await self._run(self._committed_origin, origin)

    def _committed_origin(self, origin: str) -> int | None:
        row = self._db.execute(f"SELECT seq FROM {TXLOG} WHERE origin = ?", (origin,)).fetchone()
        return row[0] if row else None

    async def recover(self, stale_after_seconds: float) -> tuple[int, int]:
        # SQLite's journal already rolled back any transaction cut short by a crash.
        return (0, 0)

    # -- subscription events ------------------------------------------------------------

    async def record_events(
        self, subscription: str, found: Sequence[FoundEvent]
    ) -> list[SubscriptionEvent]:
        return await self._run(self._record_events, subscription, found)

    def _record_events(
        self, subscription: str, found: Sequence[FoundEvent]
    ) -> list[SubscriptionEvent]:
        db = self._db
        db.execute("BEGIN IMMEDIATE")  # numbering and insertion in one SQLite transaction
        try:
            recorded = []
            for event in found:
                row = db.execute(
                    f"SELECT number FROM {SUBSCRIPTION_EVENTS} "
                    "WHERE subscription = ? AND seq = ? AND focus = ?",
                    (subscription, event.seq, event.focus),
                ).fetchone()
                if row is None:
                    number = self._last_event(subscription) + 1
                    db.execute(
                        f"INSERT INTO {SUBSCRIPTION_EVENTS} (subscription, number, seq, focus, "
                        "version, interaction, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            subscription,
                            number,
                            event.seq,
                            event.focus,
                            event.version,
                            event.interaction,
                            event.timestamp,
                        ),
                    )
                else:
                    number = int(row[0])
                recorded.append(event.numbered(subscription, number))
            db.execute("COMMIT")
            return recorded
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _last_event(self, subscription: str) -> int:
        row = self._db.execute(
            f"SELECT MAX(number) FROM {SUBSCRIPTION_EVENTS} WHERE subscription = ?",
            (subscription,),
        ).fetchone()
        return int(row[0] or 0)

    async def subscription_events(
        self, subscription: str, since: int, until: int | None, limit: int
    ) -> list[SubscriptionEvent]:
        return await self._run(self._subscription_events, subscription, since, until, limit)

    def _subscription_events(
        self, subscription: str, since: int, until: int | None, limit: int
    ) -> list[SubscriptionEvent]:
        rows = self._db.execute(
            f"SELECT number, seq, focus, version, interaction, timestamp "
            f"FROM {SUBSCRIPTION_EVENTS} WHERE subscription = ? AND number >= ? AND number <= ? "
            "ORDER BY number LIMIT ?",
            (subscription, since, until if until is not None else 2**62, limit),
        ).fetchall()
        return [SubscriptionEvent(subscription, *row) for row in rows]

    async def events_since_start(self, subscription: str) -> int:
        return await self._run(self._last_event, subscription)

    # -- subscription delivery --------------------------------------------------------------

    async def claim_delivery(
        self, subscription: str, worker: str, now: float, lease_until: float
    ) -> DeliveryState | None:
        return await self._run(self._claim_delivery, subscription, worker, now, lease_until)

    def _claim_delivery(
        self, subscription: str, worker: str, now: float, lease_until: float
    ) -> DeliveryState | None:
        def take() -> DeliveryState | None:
            state = self._delivery(subscription) or DeliveryState(subscription)
            if state.owner not in (None, worker) and state.lease_until >= now:
                return None
            turns = state.turns + (state.owner != worker)
            state = replace(state, owner=worker, lease_until=lease_until, turns=turns)
            self._put_delivery(state)
            return state

        return self._immediately(take)

    def _immediately(self, fn: Callable[[], T]) -> T:
        """`fn` in one `BEGIN IMMEDIATE` transaction: what it read still holds when it writes."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            result = fn()
            db.execute("COMMIT")
            return result
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _delivery(self, subscription: str) -> DeliveryState | None:
        row = self._db.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM {SUBSCRIPTION_DELIVERY} WHERE subscription = ?",
            (subscription,),
        ).fetchone()
        return DeliveryState(*row) if row is not None else None

    def _put_delivery(self, state: DeliveryState) -> None:
        self._db.execute(
            f"INSERT OR REPLACE INTO {SUBSCRIPTION_DELIVERY} ({_DELIVERY_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            astuple(state),
        )

    async def save_delivery(self, state: DeliveryState, worker: str) -> bool:
        return await self._run(self._save_delivery, state, worker)

    def _save_delivery(self, state: DeliveryState, worker: str) -> bool:
        def save() -> bool:
            held = self._delivery(state.subscription)
            if held is None or held.owner != worker:
                return False
            self._put_delivery(state)
            return True

        return self._immediately(save)

    async def deliveries(self) -> list[DeliveryState]:
        return await self._run(self._deliveries)

    def _deliveries(self) -> list[DeliveryState]:
        rows = self._db.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM {SUBSCRIPTION_DELIVERY} ORDER BY subscription"
        ).fetchall()
        return [DeliveryState(*row) for row in rows]

    # -- asynchronous submissions ---------------------------------------------------------

    async def submit(self, submission: Submission) -> Submission:
        return await self._run(self._submit, submission)

    def _submit(self, sub: Submission) -> Submission:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            key = sub.claim_key
            if key is not None:
                row = db.execute(
                    f"SELECT id FROM {SUBMISSION_KEYS} WHERE key = ?", (key,)
                ).fetchone()
                existing = self._submission(row[0]) if row else None
                if existing is not None:
                    db.execute("COMMIT")
                    return existing
                db.execute(
                    f"INSERT OR REPLACE INTO {SUBMISSION_KEYS} (key, id) VALUES (?, ?)",
                    (key, sub.id),
                )
            doc = sub.to_doc()
            parts = {name: doc.pop(name) for name in _PARTS}
            entries = parts.pop("journal")
            db.execute(
                f"INSERT INTO {SUBMISSIONS} (state, created, not_before, lease_until, expires, "
                "cb_state, cb_next, doc, id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                _state_columns(doc),
            )
            self._put_parts(sub.id, parts, entries, whole=False)
            db.execute("COMMIT")
            return sub
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _put_parts(
        self, id_: str, parts: Mapping[str, Any], entries: Mapping[str, Any], whole: bool
    ) -> None:
        """Write `request` and `result` (None: none) from `parts`, and the journal `entries`
        (`whole`: they replace every entry before)."""
        db = self._db
        rows = [(id_, f"journal.{k}", orjson.dumps(v)) for k, v in entries.items()]
        if whole:
            db.execute(
                f"DELETE FROM {SUBMISSION_PARTS} WHERE id = ? AND key LIKE 'journal.%'", (id_,)
            )
        for name, value in parts.items():
            if value is None:
                db.execute(f"DELETE FROM {SUBMISSION_PARTS} WHERE id = ? AND key = ?", (id_, name))
            else:
                rows.append((id_, name, orjson.dumps(value)))
        db.executemany(
            f"INSERT OR REPLACE INTO {SUBMISSION_PARTS} (id, key, body) VALUES (?, ?, ?)", rows
        )

    async def submission(self, id: str) -> Submission | None:
        return await self._run(self._submission, id)

    def _submission(self, id_: str) -> Submission | None:
        found = self._submissions(f"SELECT id, doc FROM {SUBMISSIONS} WHERE id = ?", id_)
        return found[0] if found else None

    def _submissions(self, select: str, *params: Any) -> list[Submission]:
        """The submissions `select` (their id and state document) finds, whole."""
        rows = self._db.execute(select, params).fetchall()
        parts: dict[str, dict[str, Any]] = {}
        for start in range(0, len(rows), 500):
            ids = [row[0] for row in rows[start : start + 500]]
            for id_, key, body in self._db.execute(
                f"SELECT id, key, body FROM {SUBMISSION_PARTS} "
                f"WHERE id IN ({', '.join('?' * len(ids))})",
                ids,
            ):
                top, _, entry = key.partition(".")
                whole = parts.setdefault(id_, {"result": None, "journal": {}})
                if entry:
                    whole[top][entry] = orjson.loads(body)
                else:
                    whole[top] = orjson.loads(body)
        # a submission of the layout before the parts table holds them in its state document
        return [Submission.from_doc(orjson.loads(doc) | parts.get(id_, {})) for id_, doc in rows]

    async def claim_submission(
        self, id: str, owner: str, now: float, lease_until: float
    ) -> Submission | None:
        changes = {"state": "running", "owner": owner, "lease_until": lease_until, "updated": now}
        return await self._run(self._updated, id, {"state": "queued"}, changes, now)

    async def update_submission(
        self, id: str, expect: Mapping[str, Any], changes: Mapping[str, Any]
    ) -> Submission | None:
        return await self._run(self._updated, id, dict(expect), dict(changes), None)

    async def amend_submission(
        self, id: str, expect: Mapping[str, Any], changes: Mapping[str, Any]
    ) -> bool:
        return await self._run(
            self._immediately, lambda: self._change(id, dict(expect), dict(changes), None)
        )

    def _updated(
        self, id_: str, expect: dict[str, Any], changes: dict[str, Any], due_by: float | None
    ) -> Submission | None:
        def change() -> Submission | None:
            return self._submission(id_) if self._change(id_, expect, changes, due_by) else None

        return self._immediately(change)

    def _change(
        self, id_: str, expect: dict[str, Any], changes: dict[str, Any], due_by: float | None
    ) -> bool:
        """A compare-and-set on the state document (`expect` names state fields), in the
        caller's transaction; changes to the parts are rows of their own."""
        db = self._db
        row = db.execute(f"SELECT doc FROM {SUBMISSIONS} WHERE id = ?", (id_,)).fetchone()
        doc = orjson.loads(row[0]) if row else None
        if (
            doc is None
            or any(doc.get(k) != v for k, v in expect.items())
            or (due_by is not None and doc["not_before"] > due_by)
        ):
            return False
        # the layout before the parts table: moved out now
        parts = {name: doc.pop(name) for name in _PARTS if name in doc}
        entries = dict(parts.pop("journal", None) or {})
        whole = False
        for name, value in changes.items():
            top, _, sub = name.partition(".")
            if top == "journal" and sub:
                entries[sub] = value
            elif top == "journal":
                entries, whole = dict(value), True
            elif top in _PARTS:
                parts[top] = value
            elif sub:
                doc[top] = {**(doc.get(top) or {}), sub: value}
            else:
                doc[name] = value
        db.execute(
            f"UPDATE {SUBMISSIONS} SET state = ?, created = ?, not_before = ?, "
            "lease_until = ?, expires = ?, cb_state = ?, cb_next = ?, doc = ? WHERE id = ?",
            _state_columns(doc),
        )
        self._put_parts(id_, parts, entries, whole)
        return True

    async def due_submissions(self, now: float, limit: int) -> list[Submission]:
        return await self._run(self._due, now, limit)

    def _due(self, now: float, limit: int) -> list[Submission]:
        return self._submissions(
            f"SELECT id, doc FROM {SUBMISSIONS} WHERE (state = 'queued' AND "
            "not_before <= ?) OR (state = 'running' AND lease_until <= ?) ORDER BY created LIMIT ?",
            now,
            now,
            limit,
        )

    async def undelivered_callbacks(self, now: float, limit: int) -> list[Submission]:
        return await self._run(self._undelivered, now, limit)

    def _undelivered(self, now: float, limit: int) -> list[Submission]:
        return self._submissions(
            f"SELECT id, doc FROM {SUBMISSIONS} WHERE cb_state = 'pending' "
            "AND cb_next <= ? ORDER BY cb_next LIMIT ?",
            now,
            limit,
        )

    async def submission_stats(self) -> SubmissionStats:
        return await self._run(self._stats)

    def _stats(self) -> SubmissionStats:
        counts = dict(
            self._db.execute(f"SELECT state, COUNT(*) FROM {SUBMISSIONS} GROUP BY state").fetchall()
        )
        oldest = self._db.execute(
            f"SELECT MIN(created) FROM {SUBMISSIONS} WHERE state = 'queued'"
        ).fetchone()[0]
        callbacks = self._db.execute(
            f"SELECT COUNT(*) FROM {SUBMISSIONS} WHERE cb_state = 'failed'"
        ).fetchone()[0]
        return SubmissionStats(
            queued=counts.get("queued", 0),
            running=counts.get("running", 0),
            failed=counts.get("failed", 0),
            dead=counts.get("dead", 0),
            oldest_waiting=oldest,
            callbacks_failed=callbacks,
        )

    async def purge_submissions(self, before: float) -> int:
        return await self._run(self._purge, before)

    def _purge(self, before: float) -> int:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            expired = f"SELECT id FROM {SUBMISSIONS} WHERE expires IS NOT NULL AND expires < ?"
            db.execute(f"DELETE FROM {SUBMISSION_KEYS} WHERE id IN ({expired})", (before,))
            db.execute(f"DELETE FROM {SUBMISSION_PARTS} WHERE id IN ({expired})", (before,))
            cur = db.execute(f"DELETE FROM {SUBMISSIONS} WHERE id IN ({expired})", (before,))
            db.execute("COMMIT")
            return cur.rowcount
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        if self._conn is not None:
            await self._run(self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)
