"""`ResourceStore` and `CommitLog` on MongoDB, PyMongo async API (the subset Motor also has).

No multi-document transactions (standalone servers, FerretDB and mongomock have none): the commit
point is one single-document insert, the transaction's decision.

1. take a sequence number, insert the log record `pending`;
2. insert the new version documents (`_id = Type/id/N`: a version is taken once) and the claims
   (`_id` = business key: a claim is taken once); a duplicate key aborts: roll back, raise;
3. note the transaction under its origin (the async job it completes), if any;
4. insert the decision `commit` (`_id` = the transaction): the commit point. Recovery rolling
   back a stale transaction inserts `abort` under the same `_id`; whichever comes first holds;
5. flip the log record to `committed`, then roll forward: post the identifiers, move the current
   documents (only ever to a higher version), flip the record to `applied`.

A version document is committed exactly when its transaction's decision is `commit` (it is never
updated: see `_is_committed`), so decisions are never deleted; nor are log records (on FerretDB a
snapshot's resources are found from them, `_Directory`). A crash before 4 leaves versions nobody
reads and a pending record `recover` rolls back (`pending -> aborting -> aborted`); a crash after
4 leaves a decided or committed record `recover` rolls forward. Both repairs are idempotent, so a
crash during recovery is repaired by the next one. See docs/implementation/write-path.md and
docs/decisions/0002-no-multi-document-transactions.md.

A commit finds, updates and deletes documents by a string `_id` equality or `_id` `$in`: FerretDB
(the MongoDB-wire server the tests and the benchmark run on, patched by scripts/services.sh)
answers only those from an index and reads the whole collection for any other filter
(bench/README.md). Hence the string transaction keys (`_tx_key`), the identifier postings
(`IDENTIFIERS`, `_id = Type|token`) instead of a query on the resources' `ident` field, and
versions found by the ids a log record names rather than by their `tx`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from bisect import bisect_right
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
)

from app.fhir.clock import format_instant, utc_now
from app.records import Claim, StoredResource, Transaction, Write
from app.store.mongo_submission import stored_changes, stored_submission, submission_of
from app.store.names import (
    CLAIMS,
    COUNTERS,
    CURRENT,
    DECISIONS,
    IDENTIFIERS,
    ORIGINS,
    OUTBOX,
    SUBMISSION_KEYS,
    SUBMISSION_STATES,
    SUBMISSIONS,
    SUBSCRIPTION_DELIVERY,
    SUBSCRIPTION_DELIVERY_TURNS,
    SUBSCRIPTION_EVENT_KEYS,
    SUBSCRIPTION_EVENTS,
    TX_SEQUENCE,
    TXLOG,
    TYPE_CHANGES,
    VERSIONS,
)
from app.store.port import (
    COUNTED_TYPES,
    ClaimTaken,
    CommittedTransaction,
    DeliveryState,
    FoundEvent,
    HistoryQuery,
    ServiceStatus,
    SnapshotPage,
    StoreError,
    Submission,
    SubmissionStats,
    SubscriptionEvent,
    VersionConflict,
    idempotency_claim,
)

log = logging.getLogger("micdr.store")

_DUPLICATE_KEY = 11000
_SEQUENCE_ATTEMPTS = 100
# Recovery and the snapshot directory read the log by `_id` (the one filter every MongoDB-wire
# engine answers from its key: FerretDB scans the whole collection for any other), this many
# transactions at a time. Recovery starts from the first one not yet seen finished
# (`_RECOVERED_BELOW`, a counters document), so its cost follows the transactions in flight,
# not every transaction ever made.
_LOG_BATCH = 500
_RECOVERED_BELOW = "recovered-below"
# A claim younger than this whose submission is missing belongs to a submit in progress.
_CLAIM_GRACE_SECONDS = 30.0
_FIELDS = {"type": 1, "id": 1, "version": 1, "op": 1, "last_updated": 1, "resource": 1}
_VERSION_FIELDS = {**_FIELDS, "tx": 1}
# Snapshots whose id directory a process keeps (FerretDB; see `_Directory`): one per export
# running in it at once is enough, an evicted one is read again.
_SNAPSHOT_DIRECTORIES = 4


def _stored(doc: Mapping[str, Any]) -> StoredResource:
    return StoredResource(
        type=doc["type"],
        id=doc["id"],
        version=doc["version"],
        last_updated=doc["last_updated"],
        deleted=doc["op"] == "delete",
        resource=doc.get("resource"),
        op=doc["op"],
    )


def _ref(write: Write) -> dict[str, Any]:
    # objects, not [type, id, version] triples: FerretDB has no nested arrays
    return {"type": write.type, "id": write.id, "version": write.version}


async def _chunks(cursor: Any, size: int = 100) -> AsyncIterator[list[dict[str, Any]]]:
    """The cursor's documents, `size` at a time (the last chunk may be shorter)."""
    chunk: list[dict[str, Any]] = []
    async for doc in cursor:
        chunk.append(doc)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _of_type(type_: str, after_id: str | None = None) -> dict[str, Any]:
    """The `_id` range of the current documents of `type_` with an id after `after_id`: `_id`
    is `Type/id`, '0' follows '/', and resource type names are letters only."""
    return {"$gt": f"{type_}/{after_id or ''}", "$lt": f"{type_}0"}


@dataclass
class _Directory:
    """The ids of the resources a snapshot's transactions wrote, by type, each list sorted: a
    superset of the snapshot's resources (a rolled-back create is not one; the pages skip it).

    For a server that has no ordered range scan on `_id` (FerretDB reads, decodes and sorts the
    whole resources collection for any filter but an `_id` equality or `$in`): the log records
    of the transactions up to the snapshot are read by `_id`, small documents and none after
    it, and the snapshot's pages are then fetched by `_id` `$in`; the resources collection is
    never scanned. A type's list is dropped when a scan reaches its end; a scan of it after
    that reads the log again."""

    types: frozenset[str]
    ids: dict[str, list[str]]

    @classmethod
    def of(cls, refs: Iterable[str]) -> _Directory:
        ids: dict[str, list[str]] = {}
        for ref in refs:
            type_, _, id_ = ref.partition("/")
            ids.setdefault(type_, []).append(id_)
        for listed in ids.values():
            listed.sort()
        return cls(frozenset(ids), ids)

    def holds(self, type_: str) -> bool:
        """Whether the directory still answers for `type_` (not dropped after its end)."""
        return type_ in self.ids or type_ not in self.types


def _next_ids(ids: Sequence[str], after_id: str | None, limit: int) -> tuple[list[str], bool]:
    """The first `limit` of the sorted `ids` after `after_id`, and whether more follow."""
    start = 0 if after_id is None else bisect_right(ids, after_id)
    return list(ids[start : start + limit]), start + limit < len(ids)


def _version_ids(refs: Iterable[Mapping[str, Any]]) -> list[str]:
    return [f"{r['type']}/{r['id']}/{r['version']}" for r in refs]


def _tx_key(seq: int) -> str:
    """The `_id` of transaction `seq`: a string, zero-padded so that keys sort as numbers do."""
    return f"{seq:020d}"


def _version_doc(write: Write, key: str, tx_time: str) -> dict[str, Any]:
    # A resource's own meta.lastUpdated wins; a delete (no resource) takes the transaction's time.
    last_updated = (write.resource or {}).get("meta", {}).get("lastUpdated") or tx_time
    return {
        "_id": f"{write.type}/{write.id}/{write.version}",
        "type": write.type,
        "id": write.id,
        "version": write.version,
        "tx": key,
        "op": write.op,
        "last_updated": last_updated,
        "ident": list(write.identifiers),
        "resource": write.resource,
    }


async def connect(
    url: str, database: str
) -> tuple[MongoResourceStore, Callable[[], Awaitable[None]]]:
    """A store on `database` at `url`, and the close of its client; StoreError if unreachable."""
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, serverSelectionTimeoutMS=5000)
    try:
        await client.admin.command("ping")
        store = await MongoResourceStore.open(client[database])
    except PyMongoError as exc:
        await client.close()
        raise StoreError(f"MongoDB at {url} is unreachable: {exc}") from None
    return store, client.close


# The client's "the server is not there" errors: the API answers them 503 (app/main.py).
UNAVAILABLE: tuple[type[Exception], ...] = (ConnectionFailure,)

_BUSY = "database is locked"
_BUSY_ATTEMPTS = 8
_RETRIED = frozenset(
    {
        "insert_one",
        "update_one",
        "update_many",
        "delete_one",
        "delete_many",
        "find_one",
        "find_one_and_update",
        "find_one_and_delete",
        "count_documents",
        "create_index",
    }
)


class _BusyRetry:
    """A collection whose single-statement calls retry "database is locked".

    FerretDB's SQLite backend answers a write that meets another writer's lock with that error
    instead of waiting; the statement did not run, so running it again is safe. (MongoDB never
    says it.) Multi-document inserts are not retried: part of them may have landed."""

    def __init__(self, collection: Any) -> None:
        self._collection = collection

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._collection, name)
        if name not in _RETRIED:
            return attr

        async def retried(*args: Any, **kwargs: Any) -> Any:
            for attempt in range(_BUSY_ATTEMPTS):
                try:
                    return await attr(*args, **kwargs)
                except OperationFailure as exc:
                    if _BUSY not in str(exc) or attempt == _BUSY_ATTEMPTS - 1:
                        raise
                await asyncio.sleep(0.005 * 2**attempt)
            raise AssertionError("unreachable")

        return retried


async def _insert_new(collection: Any, docs: list[dict[str, Any]]) -> list[int]:
    """Insert `docs` in one round trip (unordered); answers the positions of those whose `_id`
    was taken already. Any other failure is a StoreError."""
    if not docs:
        return []
    try:
        await collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != _DUPLICATE_KEY for e in errors):
            raise StoreError(str(exc)) from exc
        return sorted(e["index"] for e in errors)
    return []


_KEY_FIELDS = {"attempts": 1, "contributor": 1, "idempotency_key": 1}


def _attempt_claim(id: str, attempts: int) -> str:
    """The `submission_keys` document that lets one worker run attempt `attempts`."""
    return f"claim|{id}|{attempts}"


def _submission_keys(doc: Mapping[str, Any]) -> list[str]:
    """The `_id`s of every `submission_keys` document a submission can have written: one claim
    per attempt, and its idempotency claim."""
    keys = [_attempt_claim(doc["_id"], n) for n in range(int(doc.get("attempts") or 0) + 1)]
    claim = idempotency_claim(str(doc.get("contributor", "")), doc.get("idempotency_key"))
    return [*keys, claim] if claim else keys


# The submission fields its state document is made of (`_submission_state`), and the projection
# that reads no more of a submission than that.
_STATE_SOURCES = frozenset({"state", "created", "not_before", "lease_until", "expires", "callback"})
_STATE_FIELDS = dict.fromkeys(_STATE_SOURCES, 1)


def _moves_only_the_lease(changes: Mapping[str, Any]) -> bool:
    """Whether `changes` leave every field of the state document as it is but `lease_until`,
    which only moves forward (a later renewal)."""
    return all(k == "lease_until" or k.split(".", 1)[0] not in _STATE_SOURCES for k in changes)


def _submission_state(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a submission its periodic queries select on."""
    callback = doc.get("callback") or {}
    return {
        "_id": doc["_id"],
        "state": doc.get("state"),
        "created": doc.get("created"),
        "not_before": doc.get("not_before", 0.0),
        "lease_until": doc.get("lease_until", 0.0),
        "expires": doc.get("expires"),
        "callback_state": callback.get("state"),
        "callback_next_at": callback.get("next_at"),
    }


def _is_due(doc: Mapping[str, Any], now: float) -> bool:
    """Queued and past its backoff, or running past its lease."""
    if doc.get("state") == "queued":
        return bool(doc.get("not_before", 0.0) <= now)
    return doc.get("state") == "running" and bool(doc.get("lease_until", 0.0) <= now)


async def _insert_until_taken(collection: Any, docs: list[dict[str, Any]]) -> int:
    """Insert `docs` in order in one round trip, stopping at the first whose `_id` is taken;
    answers how many were inserted. Any other failure is a StoreError."""
    if not docs:
        return 0
    try:
        await collection.insert_many(docs, ordered=True)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if not errors or errors[0].get("code") != _DUPLICATE_KEY:
            raise StoreError(str(exc)) from exc
        return int(errors[0]["index"])
    return len(docs)


def _event_doc(subscription: str, key: str, number: int, event: FoundEvent) -> dict[str, Any]:
    return {
        "_id": f"{subscription}#{number}",
        "key": key,
        "subscription": subscription,
        "number": number,
        "seq": event.seq,
        "focus": event.focus,
        "version": event.version,
        "interaction": event.interaction,
        "timestamp": event.timestamp,
    }


def _current_fields(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The current-document fields of a version document."""
    fields = {k: doc[k] for k in ("type", "id", "version", "op", "last_updated", "resource")}
    fields["ident"] = doc.get("ident", []) if doc["op"] != "delete" else []
    # the transaction that wrote it: a snapshot scan need not look its version up
    fields["tx"] = doc["tx"]
    return fields


def _delivery_state(doc: Mapping[str, Any]) -> DeliveryState:
    return DeliveryState(
        subscription=doc["_id"],
        delivered=int(doc["delivered"]),
        failures=int(doc["failures"]),
        retry_at=float(doc["retry_at"]),
        last_sent=float(doc["last_sent"]),
        owner=doc.get("owner"),
        lease_until=float(doc["lease_until"]),
        turns=int(doc["turns"]),
    )


def _delivery_doc(state: DeliveryState) -> dict[str, Any]:
    doc = asdict(state)
    doc["_id"] = doc.pop("subscription")
    return doc


class MongoResourceStore:
    """Store on a database handle from `pymongo.AsyncMongoClient` (or mongomock-motor in tests).

    `indexed_ranges`: whether the server answers a range on `_id`, sorted and limited, from its
    `_id` index (MongoDB; mongomock) or reads the whole collection for it (FerretDB 1.x), which
    decides how a snapshot is scanned (`scan_as_of`). `open` asks the server."""

    # A submission is one document (at most 16 MB in MongoDB): its request, then its journal
    # (the resources it wrote) and its answer, each about the request's size. A quarter of
    # the limit leaves them room; a larger asynchronous request is refused when sent (413)
    # rather than failing after its commits (docs/api/async.md).
    submission_request_limit: int | None = 4 * 1024 * 1024

    def __init__(self, database: Any, *, indexed_ranges: bool = True) -> None:
        self._indexed_ranges = indexed_ranges
        self._db = database
        self._versions = _BusyRetry(database[VERSIONS])
        self._current = _BusyRetry(database[CURRENT])
        self._txlog = _BusyRetry(database[TXLOG])
        self._claims = _BusyRetry(database[CLAIMS])
        self._decisions = _BusyRetry(database[DECISIONS])
        self._origins = _BusyRetry(database[ORIGINS])
        self._outbox = _BusyRetry(database[OUTBOX])
        self._identifiers = _BusyRetry(database[IDENTIFIERS])
        self._type_changes = _BusyRetry(database[TYPE_CHANGES])
        self._counters = _BusyRetry(database[COUNTERS])
        self._submissions = _BusyRetry(database[SUBMISSIONS])
        self._submission_keys = _BusyRetry(database[SUBMISSION_KEYS])
        self._submission_states = _BusyRetry(database[SUBMISSION_STATES])
        self._events = _BusyRetry(database[SUBSCRIPTION_EVENTS])
        self._event_keys = _BusyRetry(database[SUBSCRIPTION_EVENT_KEYS])
        self._delivery = _BusyRetry(database[SUBSCRIPTION_DELIVERY])
        self._delivery_turns = _BusyRetry(database[SUBSCRIPTION_DELIVERY_TURNS])
        self._directories: dict[int, _Directory] = {}  # by snapshot sequence, oldest first

    @property
    def database(self) -> Any:
        """The database handle (the export files keep their chunks beside the resources)."""
        return self._db

    @classmethod
    async def open(cls, database: Any) -> MongoResourceStore:
        info = await database.command("buildInfo")
        store = cls(database, indexed_ranges="ferretdbVersion" not in info)
        await store._versions.create_index([("last_updated", DESCENDING)])
        await store._versions.create_index([("type", ASCENDING), ("last_updated", DESCENDING)])
        await store._versions.create_index([("type", ASCENDING), ("id", ASCENDING)])
        await store._txlog.create_index([("state", ASCENDING)])
        await store._outbox.create_index([("applied", ASCENDING)])
        states = store._submission_states
        await states.create_index([("state", ASCENDING), ("created", ASCENDING)])
        await states.create_index([("callback_state", ASCENDING), ("callback_next_at", ASCENDING)])
        await states.create_index([("expires", ASCENDING)])
        await store._note_missing_states()
        await store._events.create_index([("subscription", ASCENDING), ("number", ASCENDING)])
        return store

    # -- writes ---------------------------------------------------------------------------

    async def commit(self, tx: Transaction) -> int:
        now = utc_now()
        refs = [_ref(w) for w in tx.writes]
        seq = await self._begin(tx, refs, now)
        key = _tx_key(seq)
        docs = [_version_doc(w, key, tx.last_updated or now) for w in tx.writes]
        try:
            await self._check_versions(tx.writes)
            await self._insert_versions(tx.writes, docs)
            await self._take_claims(tx.claims, key)
            if tx.origin is not None:
                await self._note_origin(tx.origin, key)
            if await self._decide(key, "commit") != "commit":
                raise StoreError(f"transaction {seq} was rolled back by recovery before commit")
        except BaseException:
            await self._roll_back(key, refs)
            raise
        await self._mark_committed(key, refs)
        await self._roll_forward(key, docs)
        return seq

    async def _decide(self, key: str, outcome: str) -> str:
        """Record `outcome` (`commit` or `abort`) as transaction `key`'s decision unless one is
        recorded already; answers the decision that holds."""
        try:
            await self._decisions.insert_one({"_id": key, "outcome": outcome})
            return outcome
        except DuplicateKeyError:
            held = await self._decisions.find_one({"_id": key})
            if held is None:  # decisions are never deleted
                raise StoreError(f"transaction {key}: its decision vanished") from None
            return str(held["outcome"])

    async def _mark_committed(self, key: str, refs: list[dict[str, Any]]) -> None:
        """Put the decided transaction in the outbox, then mark its record `committed`: a record
        that says committed is in the outbox (unless indexed since)."""
        outbox = {"_id": key, "refs": refs, "committed_at": utc_now(), "applied": False}
        await _insert_new(self._outbox, [outbox])
        await self._txlog.update_one({"_id": key}, {"$set": {"state": "committed"}})

    async def _note_origin(self, origin: str, key: str) -> None:
        """Add `key` to the transactions that tried to complete `origin` (before the decision,
        so that a committed one is always found by `committed_origin`)."""
        for _ in range(2):
            try:
                await self._origins.update_one(
                    {"_id": origin}, {"$addToSet": {"txs": key}}, upsert=True
                )
                return
            except DuplicateKeyError:
                continue  # a concurrent first try inserted the document: add to it
        raise StoreError(f"could not note the origin {origin}")

    async def _begin(self, tx: Transaction, refs: list[dict[str, Any]], now: str) -> int:
        """Take a sequence number and insert the `pending` log record (naming `refs`) under it.

        The record's `_id` is what makes a number taken once: an unpatched FerretDB 1.x runs the
        `$inc` as a read then a write, so two concurrent commits can draw the same number (or race
        on the counter's upsert); the loser draws again.
        """
        for _ in range(_SEQUENCE_ATTEMPTS):
            try:
                counter = await self._counters.find_one_and_update(
                    {"_id": TX_SEQUENCE},
                    {"$inc": {"seq": 1}},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
                seq = int(counter["seq"])
                await self._txlog.insert_one(
                    {
                        "_id": _tx_key(seq),
                        "state": "pending",
                        "started": now,
                        "refs": refs,
                        "origin": tx.origin,
                    }
                )
                return seq
            except DuplicateKeyError:
                continue
        raise StoreError(f"no free transaction number after {_SEQUENCE_ATTEMPTS} attempts")

    async def _check_versions(self, writes: Sequence[Write]) -> None:
        # Versions are contiguous: N may only follow a current N-1. (Uniqueness of N, enforced by
        # `_id`, is what makes racing writers safe; this check refuses gaps.) A version 1 needs
        # no look: that its `_id` is free is the check, and versions are never removed once
        # committed.
        later = [w for w in writes if w.version != 1]
        docs = await self._find_ids(self._current, [w.ref for w in later], {"version": 1})
        current = {d["_id"]: d["version"] for d in docs}
        for write in later:
            if current.get(write.ref, 0) != write.version - 1:
                raise VersionConflict(write.ref, write.version)

    async def _insert_versions(self, writes: Sequence[Write], docs: list[dict[str, Any]]) -> None:
        taken = await _insert_new(self._versions, docs)
        if taken:
            write = writes[taken[0]]
            raise VersionConflict(write.ref, write.version)

    async def _take_claims(self, claims: Sequence[Claim], key: str) -> None:
        """All new claims in one round trip; a key already held goes through `_take_over`."""
        docs = [{"_id": c.key, "ref": c.ref, "tx": key} for c in claims]
        for held in await _insert_new(self._claims, docs):
            await self._take_over(claims[held], key)

    async def _take_over(self, claim: Claim, key: str) -> None:
        """Take a held claim if its holder is stale; else the claim is taken (ClaimTaken)."""
        holder = await self._claims.find_one({"_id": claim.key})
        if holder is None:
            raise ClaimTaken(claim.key, "(released meanwhile)")
        if holder["ref"] != claim.ref and await self._claim_is_live(claim, holder):
            raise ClaimTaken(claim.key, holder["ref"])
        taken = await self._claims.update_one(
            {"_id": claim.key, "tx": holder["tx"]}, {"$set": {"ref": claim.ref, "tx": key}}
        )
        if taken.modified_count != 1:
            raise ClaimTaken(claim.key, "(taken over meanwhile)")

    async def _claim_is_live(self, claim: Claim, holder: Mapping[str, Any]) -> bool:
        record = await self._txlog.find_one({"_id": holder["tx"]}, {"state": 1})
        if record is not None and record["state"] in ("pending", "committed"):
            return True  # still being written, or committed and about to be rolled forward
        current = await self._current.find_one(
            {"_id": holder["ref"], "ident": claim.token, "op": {"$ne": "delete"}}, {"_id": 1}
        )
        return current is not None

    async def _roll_back(self, key: str, refs: list[dict[str, Any]]) -> bool:
        """Abort transaction `key` and remove its versions (`refs`, as its log record names them);
        False if its decision was commit (then it is left to roll forward)."""
        # `aborting -> aborted` once the versions are gone; a crash in between leaves `aborting`,
        # which `recover` finishes. Already `aborted` is cleaned again: a writer racing recovery
        # may have inserted after recovery's clean-up, and cleans up after itself here.
        # Its claims stay: a claim of an aborted transaction is stale and taken over by the next
        # claimant. Deleting them by `tx` could delete one taken over meanwhile where a
        # conditional delete is a read then a write (FerretDB), letting two creates through.
        if await self._decide(key, "abort") != "abort":
            return False
        await self._txlog.update_one({"_id": key}, {"$set": {"state": "aborting"}})
        # by `_id`, and only those it inserted: an `_id` it failed to insert is another's
        await self._versions.delete_many({"_id": {"$in": _version_ids(refs)}, "tx": key})
        await self._txlog.update_one({"_id": key}, {"$set": {"state": "aborted"}})
        return True

    async def _roll_forward(
        self, key: str, docs: list[dict[str, Any]] | None = None, refs: Sequence[Any] = ()
    ) -> None:
        # `docs` are the version documents as inserted (the committing process has them);
        # recovery reads them back by the ids its log record names (`refs`). Either way the
        # current documents get the same fields.
        if docs is None:
            found = await self._find_ids(self._versions, _version_ids(refs))
            docs = [d for d in found if d["tx"] == key]
        if docs:
            # Postings first: they may name a resource that does not (yet) carry the identifier,
            # never miss one that does.
            await self._post_identifiers(docs)
            await self._move_current(docs)
            await self._count_changes(key, docs)
        # Ready to index (a no-op if it was indexed after an earlier roll-forward).
        await self._outbox.update_one({"_id": key}, {"$set": {"applied": True}})
        await self._txlog.update_one({"_id": key}, {"$set": {"state": "applied"}})

    async def _count_changes(self, key: str, docs: list[dict[str, Any]]) -> None:
        """One document per (counted type, transaction), after the resources are current; a
        repeated roll-forward adds none. Counting them, not taking the greatest key, notices a
        transaction that finishes after a later one."""
        counted = sorted({d["type"] for d in docs} & COUNTED_TYPES)
        await _insert_new(self._type_changes, [{"_id": f"{t}|{key}"} for t in counted])

    async def _post_identifiers(self, docs: list[dict[str, Any]]) -> None:
        """Add each live version's id to the postings of its identifiers: first uses in one
        insert; a posting that exists already (another version or resource with the
        identifier, or a concurrent first use) is read, and given the ids it lacks."""
        wanted: dict[str, set[str]] = {}
        for doc in docs:
            if doc["op"] != "delete":
                for token in doc.get("ident", []):
                    wanted.setdefault(f"{doc['type']}|{token}", set()).add(doc["id"])
        if not wanted:
            return
        new = [{"_id": k, "ids": sorted(ids)} for k, ids in wanted.items()]
        held = [new[i]["_id"] for i in await _insert_new(self._identifiers, new)]
        postings = await self._find_ids(self._identifiers, held, {"ids": 1})
        missing = {p["_id"]: wanted[p["_id"]] - set(p["ids"]) for p in postings}
        await asyncio.gather(
            *(
                self._identifiers.update_one(
                    {"_id": key}, {"$addToSet": {"ids": {"$each": sorted(ids)}}}
                )
                for key, ids in missing.items()
                if ids
            )
        )

    async def _move_current(self, docs: list[dict[str, Any]]) -> None:
        # First versions become current documents in one insert_many (a Bundle of creates is one
        # round trip); later versions take one update each, sent concurrently: mongomock cannot
        # run pymongo's bulk_write (docs/decisions/0003-pymongo-async-not-motor.md).
        # A duplicate key: that resource is already current at this or a later version (a
        # repeated roll-forward).
        firsts = [_current_fields(d) for d in docs if d["version"] == 1]
        await _insert_new(self._current, [{"_id": f"{f['type']}/{f['id']}", **f} for f in firsts])
        await asyncio.gather(*(self._move_one(doc) for doc in docs if doc["version"] != 1))

    async def _move_one(self, doc: dict[str, Any]) -> None:
        fields = _current_fields(doc)
        # Only ever forward: an older roll-forward arriving late must not move it back (the
        # upsert then hits the newer document's _id: a duplicate key, nothing to do).
        with contextlib.suppress(DuplicateKeyError):
            await self._current.update_one(
                {"_id": f"{doc['type']}/{doc['id']}", "version": {"$lt": doc["version"]}},
                {"$set": fields},
                upsert=True,
            )

    # -- reads ----------------------------------------------------------------------------

    async def read(self, type: str, id: str) -> StoredResource | None:
        doc = await self._current.find_one({"_id": f"{type}/{id}"}, _FIELDS)
        return _stored(doc) if doc else None

    async def read_many(self, refs: Sequence[tuple[str, str]]) -> list[StoredResource]:
        if not refs:
            return []
        docs = await self._find_ids(self._current, [f"{t}/{i}" for t, i in refs], _FIELDS)
        return [_stored(d) for d in docs]

    async def _find_ids(
        self, collection: Any, keys: Sequence[Any], fields: Mapping[str, int] | None = None
    ) -> list[dict[str, Any]]:
        """The documents whose `_id` is one of `keys` (those that exist)."""
        if not keys:
            return []
        found: list[dict[str, Any]] = await collection.find(
            {"_id": {"$in": list(keys)}}, fields
        ).to_list(None)
        return found

    async def vread(self, type: str, id: str, version: int) -> StoredResource | None:
        doc = await self._versions.find_one({"_id": f"{type}/{id}/{version}"}, _VERSION_FIELDS)
        if doc is None or not await self._is_committed(doc["tx"]):
            return None
        return _stored(doc)

    async def vread_many(self, keys: Sequence[tuple[str, str, int]]) -> list[StoredResource]:
        ids = [f"{t}/{i}/{v}" for t, i, v in dict.fromkeys(keys)]
        docs = await self._find_ids(self._versions, ids, _VERSION_FIELDS)
        decided = await self._find_ids(self._decisions, sorted({d["tx"] for d in docs}))
        committed = {d["_id"] for d in decided if d.get("outcome") == "commit"}
        return [_stored(d) for d in docs if d["tx"] in committed]

    async def _is_committed(self, key: str) -> bool:
        """Whether transaction `key` committed (and so its versions exist)."""
        decision = await self._decisions.find_one({"_id": key})
        return decision is not None and decision["outcome"] == "commit"

    async def history(self, query: HistoryQuery) -> list[StoredResource]:
        filt: dict[str, Any] = {}
        if query.type is not None:
            filt["type"] = query.type
        if query.id is not None:
            filt["id"] = query.id
        if query.since is not None:
            filt["last_updated"] = {"$gte": query.since}
        if query.before is not None:
            filt["$or"] = _older_than(query.before)
        order = [
            ("last_updated", DESCENDING),
            ("type", DESCENDING),
            ("id", DESCENDING),
            ("version", DESCENDING),
        ]
        # Scanned newest first, skipping versions of transactions not committed. With `_at`:
        # versions current at some moment from `at` on = newer than `at`, plus each resource's
        # latest version at `at`.
        out: list[StoredResource] = []
        seen_before_at: set[str] = set()
        committed: dict[str, bool] = {}
        async for chunk in _chunks(self._versions.find(filt, _VERSION_FIELDS).sort(order)):
            await self._learn_decisions([d["tx"] for d in chunk], committed)
            for doc in chunk:
                if not committed[doc["tx"]]:
                    continue
                ref = f"{doc['type']}/{doc['id']}"
                if query.at is None or doc["last_updated"] > query.at:
                    out.append(_stored(doc))
                elif ref not in seen_before_at:
                    seen_before_at.add(ref)
                    out.append(_stored(doc))
                if len(out) >= query.count:
                    return out
        return out

    async def _learn_decisions(self, keys: Iterable[str], known: dict[str, bool]) -> None:
        """Add to `known` whether each transaction of `keys` committed, in one lookup."""
        wanted = sorted(set(keys) - known.keys())
        decided = await self._find_ids(self._decisions, wanted)
        outcomes = {d["_id"]: d["outcome"] == "commit" for d in decided}
        known.update((key, outcomes.get(key, False)) for key in wanted)

    async def find_by_identifier(self, type: str, tokens: Sequence[str]) -> Mapping[str, list[str]]:
        return (await self.find_by_identifiers({type: tokens}))[type]

    async def find_by_identifiers(
        self, wanted: Mapping[str, Sequence[str]]
    ) -> Mapping[str, Mapping[str, list[str]]]:
        # The postings (`<type>|<token>`) name every resource that may carry a token; its
        # current document decides. Two round trips, whatever the number of types.
        found: dict[str, dict[str, list[str]]] = {
            type: {t: [] for t in tokens} for type, tokens in wanted.items()
        }
        keys = [f"{type}|{t}" for type, tokens in found.items() for t in tokens]
        postings = await self._find_ids(self._identifiers, keys, {"ids": 1})
        candidates = sorted(
            {f"{p['_id'].split('|', 1)[0]}/{i}" for p in postings for i in p["ids"]}
        )
        fields = {"id": 1, "ident": 1, "op": 1}
        for doc in await self._find_ids(self._current, candidates, fields):
            if doc["op"] == "delete":
                continue
            tokens = found[doc["_id"].split("/", 1)[0]]
            for token in doc.get("ident", []):
                if token in tokens:
                    tokens[token].append(doc["id"])
        for by_token in found.values():
            for ids in by_token.values():
                ids.sort()
        return found

    async def resource_types(self) -> list[str]:
        return sorted(await self._current.distinct("type"))

    async def scan(self, type: str, after_id: str | None, limit: int) -> list[StoredResource]:
        return [_stored(d) for d in await self._current_page(type, after_id, limit, _FIELDS)]

    async def _current_page(
        self, type: str, after_id: str | None, limit: int, fields: Mapping[str, int]
    ) -> list[dict[str, Any]]:
        # `_id` is `Type/id`: on MongoDB a range on it is a walk of the `_id` index (FerretDB
        # reads the whole collection for it, see `_Directory`)
        docs: list[dict[str, Any]] = await (
            self._current.find({"_id": _of_type(type, after_id), "type": type}, fields)
            .sort("_id", ASCENDING)
            .limit(limit)
            .to_list(None)
        )
        return docs

    # -- snapshots ------------------------------------------------------------------------
    # Sequence numbers are taken before a transaction commits, so a lower number may commit
    # after a higher one: a snapshot waits (`settled`) until every transaction up to its number
    # is finished. Then a resource's version in it is its current one when that was written at
    # or below the number, else the latest earlier version that was (looked up by `_id`, version
    # by version: few resources change during an export). The current documents of a type are
    # paged by an `_id` range where the server has ordered range scans (MongoDB: each page is a
    # walk of the `_id` index, and nothing is kept between pages), else by a directory of the
    # ids the snapshot's transactions wrote, read from the log once (`_Directory`: FerretDB).

    async def sequence(self) -> int:
        counter = await self._counters.find_one({"_id": TX_SEQUENCE})
        return int(counter["seq"]) if counter else 0

    async def settled(self, seq: int) -> bool:
        # Every transaction below the recovery mark has finished, so only those from it to
        # `seq` are looked up, by key: the log keeps a record per transaction ever committed,
        # and a range on it is a read of the whole log on FerretDB (and of every key below
        # `seq` on MongoDB). The mark moves at each reconcile, so the keys are few.
        below = await self._recovered_below()
        for start in range(below, seq + 1, _LOG_BATCH):
            keys = [_tx_key(n) for n in range(start, min(start + _LOG_BATCH, seq + 1))]
            unfinished = await self._txlog.find_one(
                {"_id": {"$in": keys}, "state": {"$in": ["pending", "committed", "aborting"]}},
                {"_id": 1},
            )
            if unfinished is not None:
                return False
        return True

    async def snapshot_types(self, seq: int) -> list[str]:
        # FerretDB: the directory the scans then use, not a `distinct` (a read of every resource)
        if self._indexed_ranges:
            return await self.resource_types()
        return sorted((await self._directory(seq)).types)

    async def scan_as_of(
        self, type: str, seq: int, after_id: str | None, limit: int
    ) -> SnapshotPage:
        if self._indexed_ranges:
            docs = await self._current_page(type, after_id, limit, _VERSION_FIELDS)
            after = docs[-1]["id"] if len(docs) == limit else None
        else:
            docs, after = await self._directory_page(type, seq, after_id, limit)
        return SnapshotPage(await self._as_of(docs, _tx_key(seq)), after)

    async def _directory_page(
        self, type: str, seq: int, after_id: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The next `limit` current documents of `type` after `after_id` by the directory of
        snapshot `seq` (in id order), and the id to continue after (None: the type is done)."""
        directory = await self._directory(seq, type)
        ids, more = _next_ids(directory.ids.get(type, []), after_id, limit)
        if not more:
            directory.ids.pop(type, None)  # the type is done: free its ids
        refs = [f"{type}/{i}" for i in ids]
        found = {d["_id"]: d for d in await self._find_ids(self._current, refs, _VERSION_FIELDS)}
        return [found[r] for r in refs if r in found], ids[-1] if more else None

    async def _directory(self, seq: int, type: str | None = None) -> _Directory:
        """The id directory of snapshot `seq`, read now unless kept (and still holding `type`)."""
        kept = self._directories.get(seq)
        if kept is not None and (type is None or kept.holds(type)):
            return kept
        # A transaction's log record names what it writes before it writes it, and is never
        # removed: the records up to `seq` name every resource of the snapshot.
        refs: set[str] = set()
        for start in range(1, seq + 1, _LOG_BATCH):
            keys = [_tx_key(n) for n in range(start, min(start + _LOG_BATCH, seq + 1))]
            for record in await self._find_ids(self._txlog, keys, {"refs": 1}):
                refs.update(f"{r['type']}/{r['id']}" for r in record["refs"])
        directory = self._directories[seq] = _Directory.of(refs)
        while len(self._directories) > _SNAPSHOT_DIRECTORIES:  # the oldest first
            del self._directories[next(iter(self._directories))]
        return directory

    async def _as_of(self, docs: list[dict[str, Any]], key: str) -> list[StoredResource]:
        """Each resource of the current documents `docs` as of transaction `key`: its latest
        version written at or before it (none if the resource was created after)."""
        refs = [f"{d['type']}/{d['id']}" for d in docs]
        # a current document written before it carried `tx`: its version says it
        ids = [f"{r}/{d['version']}" for r, d in zip(refs, docs, strict=True) if "tx" not in d]
        tx_of = {w["_id"]: w["tx"] for w in await self._find_ids(self._versions, ids, {"tx": 1})}
        for ref, doc in zip(refs, docs, strict=True):
            if "tx" in doc:
                tx_of[f"{ref}/{doc['version']}"] = doc["tx"]
        chosen: dict[str, Mapping[str, Any]] = {}
        earlier: dict[str, int] = {}
        for ref, doc in zip(refs, docs, strict=True):
            tx = tx_of.get(f"{ref}/{doc['version']}")
            if tx is not None and tx <= key:
                chosen[ref] = doc
            elif doc["version"] > 1:
                earlier[ref] = doc["version"] - 1
        while earlier:
            found = await self._find_ids(
                self._versions, [f"{r}/{v}" for r, v in earlier.items()], _VERSION_FIELDS
            )
            by_id = {d["_id"]: d for d in found}
            still: dict[str, int] = {}
            for ref, version in earlier.items():
                older = by_id.get(f"{ref}/{version}")
                if older is not None and older["tx"] <= key:
                    chosen[ref] = older
                elif version > 1:
                    still[ref] = version - 1
            earlier = still
        return [_stored(chosen[ref]) for ref in refs if ref in chosen]

    async def count(self, type: str) -> int:
        return int(await self._current.count_documents({"type": type, "op": {"$ne": "delete"}}))

    async def changes(self, type: str) -> int:
        # '}' follows '|': the range is exactly this type's documents
        of_type = {"_id": {"$gt": f"{type}|", "$lt": f"{type}}}"}}
        return int(await self._type_changes.count_documents(of_type))

    async def status(self) -> ServiceStatus:
        try:
            info = await self._db.command("buildInfo")
        except (PyMongoError, OSError) as exc:
            return ServiceStatus("store", False, detail=str(exc))
        name = "FerretDB" if "ferretdb" in str(info).lower() else "MongoDB"
        return ServiceStatus("store", True, f"{name} {info.get('version', '?')}")

    # -- commit log -----------------------------------------------------------------------

    # The outbox holds only what is not indexed yet, so its scans are small on any engine.

    async def unindexed(self, limit: int, after: int = 0) -> list[CommittedTransaction]:
        query = {"applied": True, "_id": {"$gt": _tx_key(after)}}
        docs = await self._outbox.find(query).sort("_id", ASCENDING).limit(limit).to_list(None)
        return [
            CommittedTransaction(
                int(d["_id"]),
                tuple((r["type"], r["id"], r["version"]) for r in d["refs"]),
                d["committed_at"],
            )
            for d in docs
        ]

    async def mark_indexed(self, seqs: Sequence[int]) -> None:
        if seqs:
            await self._outbox.delete_many({"_id": {"$in": [_tx_key(s) for s in seqs]}})

    async def oldest_unindexed(self) -> str | None:
        doc = await self._outbox.find_one({}, {"committed_at": 1}, sort=[("_id", ASCENDING)])
        return doc["committed_at"] if doc else None

    async def committed_origin(self, origin: str) -> int | None:
        noted = await self._origins.find_one({"_id": origin})
        for key in noted["txs"] if noted else []:
            if await self._is_committed(key):
                return int(key)
        return None

    async def recover(self, stale_after_seconds: float) -> tuple[int, int]:
        # Committed (by its record or, after a crash between the two, by its decision): roll
        # forward, however young. Pending and older than the cutoff: abort, unless its decision
        # was commit after all. Aborting: finish the abort.
        # `<=`: with stale_after_seconds=0 a record started this very millisecond is stale too.
        cutoff = format_instant(datetime.now(UTC) - timedelta(seconds=stale_after_seconds))
        forward = back = 0
        below = await self._recovered_below()
        top = await self._last_sequence()
        finished: list[bool | None] = []  # per sequence from `below`; None: no record
        last_stale = 0  # the highest sequence whose record started before the cutoff
        for start in range(below, top + 1, _LOG_BATCH):
            seqs = range(start, min(start + _LOG_BATCH, top + 1))
            found = {
                int(r["_id"]): r
                async for r in self._txlog.find(
                    {"_id": {"$in": [_tx_key(n) for n in seqs]}},
                    {"state": 1, "started": 1, "refs": 1},
                )
            }
            for seq in seqs:
                record = found.get(seq)
                if record is None:
                    finished.append(None)
                    continue
                if record["started"] <= cutoff:
                    last_stale = seq
                outcome: str | None = "done"
                if record["state"] not in ("applied", "aborted"):
                    outcome = await self._recover_one(record, cutoff)
                    forward += outcome == "forward"
                    back += outcome == "back"
                finished.append(outcome is not None)
        await self._advance_recovered(below, finished, last_stale)
        return forward, back

    async def _advance_recovered(
        self, below: int, finished: Sequence[bool | None], last_stale: int
    ) -> None:
        """Move the mark past the leading run of finished transactions. A number drawn whose
        record never came (its writer died in between, or drew again after a clash) is passed
        once a later record is stale: its writer inserts it right after drawing, so it would
        be there by then."""
        mark = below
        for status in finished:
            if status is False or (status is None and mark >= last_stale):
                break
            mark += 1
        if mark > below:
            await self._counters.update_one(
                {"_id": _RECOVERED_BELOW}, {"$max": {"seq": mark}}, upsert=True
            )

    async def _recover_one(self, record: Mapping[str, Any], cutoff: str) -> str | None:
        """Finish one unfinished transaction: `forward`, `back`, or None (pending and young:
        its writer may still be at work)."""
        key, state = record["_id"], record["state"]
        committed = state == "committed" or (state == "pending" and await self._is_committed(key))
        if not committed and (state == "aborting" or record["started"] <= cutoff):
            if await self._roll_back(key, record["refs"]):
                return "back"
            committed = True  # its decision was commit after all
        if not committed:
            return None
        if state != "committed":
            await self._mark_committed(key, record["refs"])
        await self._roll_forward(key, refs=record["refs"])
        return "forward"

    async def _recovered_below(self) -> int:
        """The first transaction recovery has not seen finish (every one before it has)."""
        mark = await self._counters.find_one({"_id": _RECOVERED_BELOW})
        return int(mark["seq"]) if mark else 1

    async def _last_sequence(self) -> int:
        counter = await self._counters.find_one({"_id": TX_SEQUENCE})
        return int(counter["seq"]) if counter else 0

    # -- asynchronous submissions ---------------------------------------------------------
    # One document per submission (`_id` = its id); every change is one single-document
    # update, conditional where it is a state transition. The idempotency claim is a document
    # of its own whose `_id` is the key, taken before the submission exists (so a submission
    # never exists unclaimed); a claim whose submission is gone (a crash in between, or purged)
    # is taken over.

    # -- subscription events --------------------------------------------------------------
    #
    # Single-document writes, no multi-document transaction, a few round trips per batch:
    # the keys (`<subscription>|<seq>|<focus>`, each `_id` taken once) are looked up; those
    # not yet claimed draw their numbers in one `$inc` and claim them in one insert; then the
    # events are inserted in order under `<subscription>#<number>`, their `_id` making each
    # number taken once (a FerretDB `$inc` may draw a range twice). From the first event whose
    # number is taken on, they go one at a time: a replay keeps its number, a number drawn
    # twice is drawn again above the last one given, so the batch keeps its order. A crash
    # after the claims and before the events leaves claims whose events a replay writes; a
    # crash after drawing and before claiming leaves unused numbers.

    async def record_events(
        self, subscription: str, found: Sequence[FoundEvent]
    ) -> list[SubscriptionEvent]:
        keys = [f"{subscription}|{event.seq}|{event.focus}" for event in found]
        numbers = await self._event_numbers(subscription, keys)
        docs = [
            _event_doc(subscription, key, numbers[key], event)
            for key, event in zip(keys, found, strict=True)
        ]
        written = await _insert_until_taken(self._events, docs)
        recorded = [
            event.numbered(subscription, numbers[key])
            for key, event in zip(keys[:written], found[:written], strict=True)
        ]
        for key, event in zip(keys[written:], found[written:], strict=True):
            above = recorded[-1].number if recorded else 0
            number = await self._record_event(subscription, key, event, numbers[key], above)
            recorded.append(event.numbered(subscription, number))
        return recorded

    async def _event_numbers(self, subscription: str, keys: Sequence[str]) -> dict[str, int]:
        """The number each key has claimed, claiming one for each key that has none."""
        claims = await self._find_ids(self._event_keys, keys)
        numbers = {str(d["_id"]): int(d["number"]) for d in claims}
        fresh = [k for k in dict.fromkeys(keys) if k not in numbers]
        if not fresh:
            return numbers
        last = await self._draw_event_numbers(subscription, f"{fresh[0]}+{len(fresh)}", len(fresh))
        drawn = {key: last - len(fresh) + 1 + n for n, key in enumerate(fresh)}
        claimed = [{"_id": key, "number": number} for key, number in drawn.items()]
        taken = [fresh[n] for n in await _insert_new(self._event_keys, claimed)]
        # claimed concurrently (another evaluator of the same commits): those numbers stand
        for doc in await self._find_ids(self._event_keys, taken):
            drawn[str(doc["_id"])] = int(doc["number"])
        return numbers | drawn

    async def _record_event(
        self, subscription: str, key: str, event: FoundEvent, number: int, above: int
    ) -> int:
        """The number of one event whose claimed `number` may be taken: kept for a replay,
        else drawn again (and the claim moved) until it is free and above `above`."""
        for _ in range(_SEQUENCE_ATTEMPTS):
            if number > above:
                try:
                    await self._events.insert_one(_event_doc(subscription, key, number, event))
                    return number  # the number was free: ours
                except DuplicateKeyError:  # written before (a replay), or the number drawn twice
                    pass
            held = await self._events.find_one({"_id": f"{subscription}#{number}"}, {"key": 1})
            if held is not None and held["key"] == key:
                return number
            fresh = await self._draw_event_numbers(subscription, f"{key}#{number}", 1)
            await self._event_keys.update_one(
                {"_id": key, "number": number}, {"$set": {"number": fresh}}
            )
            number = fresh
        raise StoreError(f"no free event number for Subscription/{subscription}")

    async def _draw_event_numbers(self, subscription: str, key: str, count: int) -> int:
        """The last of `count` new numbers, unless the last draw was for this same `key`:
        then its last. Two evaluators of the same commits (at-least-once projection jobs) thus
        draw once, not twice, and leave no unused numbers between them."""
        counter_id = f"{SUBSCRIPTION_EVENTS}|{subscription}"
        try:
            counter = await self._counters.find_one_and_update(
                {"_id": counter_id, "last": {"$ne": key}},
                {"$inc": {"n": count}, "$set": {"last": key}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:  # the counter exists and its last draw was for this key
            counter = None
        if counter is None:
            counter = await self._counters.find_one({"_id": counter_id})
            assert counter is not None
        return int(counter["n"])

    async def subscription_events(
        self, subscription: str, since: int, until: int | None, limit: int
    ) -> list[SubscriptionEvent]:
        # By `_id` (`<subscription>#<number>`), `limit` numbers at a time up to the last one
        # drawn: a filter on the fields would read the events of every subscription ever
        # recorded on FerretDB. A number left unused makes a window answer one fewer.
        top = await self.events_since_start(subscription)
        top = top if until is None else min(top, until)
        docs: list[dict[str, Any]] = []
        start = max(since, 1)
        while start <= top and len(docs) < limit:
            end = min(top, start + limit - 1)
            keys = [f"{subscription}#{n}" for n in range(start, end + 1)]
            docs += sorted(await self._find_ids(self._events, keys), key=lambda d: d["number"])
            start = end + 1
        return [
            SubscriptionEvent(
                subscription,
                int(d["number"]),
                int(d["seq"]),
                d["focus"],
                int(d["version"]),
                d["interaction"],
                d["timestamp"],
            )
            for d in docs[:limit]
        ]

    async def events_since_start(self, subscription: str) -> int:
        counter = await self._counters.find_one({"_id": f"{SUBSCRIPTION_EVENTS}|{subscription}"})
        return int(counter["n"]) if counter else 0

    # -- subscription delivery --------------------------------------------------------------

    async def claim_delivery(
        self, subscription: str, worker: str, now: float, lease_until: float
    ) -> DeliveryState | None:
        # FerretDB runs `find_one_and_update` as a read then a write, so a filter alone would
        # let two workers take one lease. Taking it over is an insert of
        # `<subscription>|<turn>` instead: of the workers that read the same turn, one inserts.
        doc = await self._delivery.find_one({"_id": subscription})
        if doc is None:
            fresh = DeliveryState(subscription, owner=worker, lease_until=lease_until, turns=1)
            try:
                await self._delivery.insert_one(_delivery_doc(fresh))
                return fresh
            except DuplicateKeyError:
                doc = await self._delivery.find_one({"_id": subscription})
                assert doc is not None
        state = _delivery_state(doc)
        if state.owner not in (None, worker) and state.lease_until >= now:
            return None
        if state.owner != worker:
            key = f"{subscription}|{state.turns}"
            try:
                await self._delivery_turns.insert_one({"_id": key, "until": lease_until})
            except DuplicateKeyError:
                # taken, unless its taker died between this insert and its update below:
                # once that take's lease would have ended, the turn is free again
                taken = await self._delivery_turns.find_one({"_id": key})
                if taken is not None and taken["until"] < now:
                    await self._delivery_turns.delete_one({"_id": key, "until": taken["until"]})
                return None
            await self._delivery_turns.delete_one({"_id": f"{subscription}|{state.turns - 1}"})
        taken = replace(
            state,
            owner=worker,
            lease_until=lease_until,
            turns=state.turns + (state.owner != worker),
        )
        result = await self._delivery.update_one(
            {"_id": subscription, "turns": state.turns}, {"$set": _delivery_doc(taken)}
        )
        return taken if result.matched_count else None

    async def save_delivery(self, state: DeliveryState, worker: str) -> bool:
        result = await self._delivery.update_one(
            {"_id": state.subscription, "owner": worker, "turns": state.turns},
            {"$set": _delivery_doc(state)},
        )
        return bool(result.matched_count)

    async def deliveries(self) -> list[DeliveryState]:
        docs = await self._delivery.find({}).sort("_id", ASCENDING).to_list(None)
        return [_delivery_state(d) for d in docs]

    async def submit(self, submission: Submission) -> Submission:
        key = submission.claim_key
        if key is not None:
            for _ in range(_SEQUENCE_ATTEMPTS):
                try:
                    await self._submission_keys.insert_one(
                        {"_id": key, "id": submission.id, "at": time.time()}
                    )
                    break
                except DuplicateKeyError:
                    pass
                held = await self._submission_keys.find_one({"_id": key})
                if held is None:
                    continue
                existing = await self.submission(held["id"])
                if existing is not None:
                    return existing
                if time.time() - held.get("at", 0.0) < _CLAIM_GRACE_SECONDS:
                    # its submitter is (probably) about to insert the submission: look again
                    await asyncio.sleep(0.05)
                    continue
                taken = await self._submission_keys.update_one(
                    {"_id": key, "id": held["id"]},
                    {"$set": {"id": submission.id, "at": time.time()}},
                )
                if taken.modified_count == 1:
                    break
            else:
                raise StoreError(f"could not take the idempotency claim {key}")
        doc = stored_submission(submission)
        # its state first: a submission is never stored without one that the periodic
        # queries find (a state whose submission never came is dropped when found)
        await self._note_state(doc)
        await self._submissions.insert_one(doc)
        return submission

    async def submission(self, id: str) -> Submission | None:
        return submission_of(await self._submissions.find_one({"_id": id}))

    async def claim_submission(
        self, id: str, owner: str, now: float, lease_until: float
    ) -> Submission | None:
        # The claim of one attempt is a document whose `_id` is `<id>:<attempts>`, inserted once:
        # FerretDB runs `find_one_and_update` as a read then a write, so two workers could both
        # pass its filter; a duplicate `_id` cannot. A re-queued submission has more attempts.
        for _ in range(2):
            current = await self._submissions.find_one(
                {"_id": id, "state": "queued", "not_before": {"$lte": now}}, {"attempts": 1}
            )
            if current is None:
                return None
            attempts = int(current["attempts"])
            try:
                await self._submission_keys.insert_one(
                    {"_id": _attempt_claim(id, attempts), "id": id, "at": now}
                )
            except DuplicateKeyError:
                if not await self._requeue_abandoned(id, attempts, now, lease_until - now):
                    return None
                continue  # claim the next attempt
            doc = await self._submissions.find_one_and_update(
                {"_id": id, "state": "queued", "attempts": attempts},
                {
                    "$set": {
                        "state": "running",
                        "owner": owner,
                        "lease_until": lease_until,
                        "updated": now,
                    }
                },
                return_document=ReturnDocument.AFTER,
            )
            if doc is not None:
                await self._note_state(doc)
            return submission_of(doc)
        return None

    async def _requeue_abandoned(self, id: str, attempts: int, now: float, lease: float) -> bool:
        """An attempt claimed more than a lease ago whose submission is still queued: its
        claimer died between the claim and the change of state (kill -9), and no worker
        could ever take that attempt again. Queued again as the next attempt, as when a
        running submission's lease ends; answers whether it was."""
        held = await self._submission_keys.find_one({"_id": _attempt_claim(id, attempts)})
        if held is None or held.get("at", 0.0) + lease > now:
            return False  # its claimer is (probably) about to change the state
        doc = await self._submissions.find_one_and_update(
            {"_id": id, "state": "queued", "attempts": attempts},
            {"$set": {"attempts": attempts + 1, "updated": now}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            return False
        await self._note_state(doc)
        log.warning("submission %s: attempt %d was claimed by a worker that stopped", id, attempts)
        return True

    async def update_submission(
        self, id: str, expect: Mapping[str, Any], changes: Mapping[str, Any]
    ) -> Submission | None:
        doc = await self._submissions.find_one_and_update(
            {"_id": id, **expect},
            {"$set": stored_changes(changes)},
            return_document=ReturnDocument.AFTER,
        )
        if doc is not None:
            await self._note_state(doc)
        return submission_of(doc)

    async def amend_submission(
        self, id: str, expect: Mapping[str, Any], changes: Mapping[str, Any]
    ) -> bool:
        if not _moves_only_the_lease(changes):
            # the state document is written from the submission after the change, and
            # FerretDB's findAndModify has no projection: the whole submission comes back
            return await self.update_submission(id, expect, changes) is not None
        # A journal record, a lease renewal or a checkpoint: nothing comes back. Its state
        # document is behind until the lease is written there too; behind, it selects the
        # submission early, and `_selected` checks the submission and mends the note.
        done = await self._submissions.update_one(
            {"_id": id, **expect}, {"$set": stored_changes(changes)}
        )
        if done.matched_count and "lease_until" in changes:
            await self._submission_states.update_one(
                {"_id": id}, {"$set": {"lease_until": changes["lease_until"]}}
            )
        return bool(done.matched_count)

    # The periodic queries (due submissions, callbacks to retry, counts, expiry) filter on
    # state, not `_id`: on FerretDB a read of every document of the collection. A submission
    # holds its request, journal and result (tens of KB), so they read the small state
    # documents of `submission_states` instead (one per submission, `_submission_state`),
    # written after each change of the submission and before its first insert. The
    # submission stays the truth: what a state document selects is read by `_id` and checked
    # again, and a state document found stale (a crash, or two writers' notes crossing) is
    # written again from it, or dropped when it has none.

    async def due_submissions(self, now: float, limit: int) -> list[Submission]:
        selected = {
            "$or": [
                {"state": "queued", "not_before": {"$lte": now}},
                {"state": "running", "lease_until": {"$lte": now}},
            ]
        }
        docs = await self._selected(selected, [("created", ASCENDING)], limit)
        return [s for d in docs if _is_due(d, now) and (s := submission_of(d))]

    async def undelivered_callbacks(self, now: float, limit: int) -> list[Submission]:
        selected = {"callback_state": "pending", "callback_next_at": {"$lte": now}}
        docs = await self._selected(selected, [("callback_next_at", ASCENDING)], limit)
        return [
            s
            for d in docs
            if (d.get("callback") or {}).get("state") == "pending"
            and d["callback"].get("next_at", math.inf) <= now
            and (s := submission_of(d))
        ]

    async def _selected(
        self, selected: Mapping[str, Any], order: list[tuple[str, int]], limit: int
    ) -> list[dict[str, Any]]:
        """The submissions whose state documents match, in their order; the stale state
        documents met on the way are mended."""
        noted = await self._submission_states.find(selected).sort(order).limit(limit).to_list(None)
        found = {
            d["_id"]: d for d in await self._find_ids(self._submissions, [n["_id"] for n in noted])
        }
        for note in noted:
            doc = found.get(note["_id"])
            if doc is None:
                await self._submission_states.delete_one({"_id": note["_id"]})
            elif _submission_state(doc) != note:
                await self._note_state(doc)
        return [found[n["_id"]] for n in noted if n["_id"] in found]

    async def _note_state(self, doc: Mapping[str, Any]) -> None:
        state = _submission_state(doc)
        await self._submission_states.replace_one({"_id": state["_id"]}, state, upsert=True)

    async def _note_missing_states(self) -> None:
        """A database written before the state documents existed gets them, once."""
        if await self._submission_states.find_one({}) is not None:
            return
        async for doc in self._submissions.find({}):
            await self._note_state(doc)

    async def submission_stats(self) -> SubmissionStats:
        async def count(filt: dict[str, Any]) -> int:
            return int(await self._submission_states.count_documents(filt))

        queued, running, failed, dead, callbacks = await asyncio.gather(
            count({"state": "queued"}),
            count({"state": "running"}),
            count({"state": "failed"}),
            count({"state": "dead"}),
            count({"callback_state": "failed"}),
        )
        oldest = await self._submission_states.find_one(
            {"state": "queued"}, {"created": 1}, sort=[("created", ASCENDING)]
        )
        return SubmissionStats(
            queued, running, failed, dead, oldest["created"] if oldest else None, callbacks
        )

    async def purge_submissions(self, before: float) -> int:
        expired = {"expires": {"$ne": None, "$lt": before}}
        noted = [d["_id"] async for d in self._submission_states.find(expired, {"_id": 1})]
        found = {
            d["_id"]: d
            for d in await self._find_ids(self._submissions, noted, _STATE_FIELDS | _KEY_FIELDS)
        }
        ids = [
            i for i, d in found.items() if d.get("expires") is not None and d["expires"] < before
        ]
        gone = 0
        if ids:
            # by `_id` (a filter on `id` alone reads every claim ever taken on FerretDB); `id`
            # keeps an idempotency key that a later submission has taken over
            keys = [k for i in ids for k in _submission_keys(found[i])]
            await self._submission_keys.delete_many({"_id": {"$in": keys}, "id": {"$in": ids}})
            gone = int((await self._submissions.delete_many({"_id": {"$in": ids}})).deleted_count)
        for stale in found.keys() - set(ids):
            await self._note_state(found[stale])
        # after the submissions: a crash in between leaves states that the next purge finds
        dropped = [i for i in noted if i not in found or i in ids]
        await self._submission_states.delete_many({"_id": {"$in": dropped}})
        return gone

    async def close(self) -> None:
        self._directories.clear()


def _older_than(before: tuple[str, str, str, int]) -> list[dict[str, Any]]:
    """Keyset condition (last_updated, type, id, version) < before, for descending history."""
    lu, type_, id_, version = before
    return [
        {"last_updated": {"$lt": lu}},
        {"last_updated": lu, "type": {"$lt": type_}},
        {"last_updated": lu, "type": type_, "id": {"$lt": id_}},
        {"last_updated": lu, "type": type_, "id": id_, "version": {"$lt": version}},
    ]
