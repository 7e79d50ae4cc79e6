"""A crash between any two steps of a write leaves, after `recover`, the whole write or nothing.

The MongoDB store (mongomock-motor always, FerretDB when MICDR_TEST_MONGO_URL is set) is driven
through `FaultyDatabase`, a proxy around the real database handle that numbers every database
call and, at call N, simulates a crash: the call fails (`before`: not performed; `after`:
performed, its answer lost) and every later call of that process fails too. For every N from 1
to the number of calls the commit makes, a fresh store on the same database then runs
`recover(stale_after_seconds=0)` and the outcome must be one of exactly two snapshots: the one a
clean commit produces (everything) or the one before the commit (nothing); the commit point (the
log record flipping to `committed`) decides which. A `transient` mode fails call N alone, so the
committing process itself cleans up. Crashes during recovery are injected the same way.

SQLite's commit point is SQLite's own COMMIT; its kill -9 test is in
tests/integration/test_store_kill.py. Mechanism: docs/implementation/write-path.md.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import pytest

from app.records import Claim, Operation, Transaction, Write
from app.store.mongo import MongoResourceStore
from app.store.names import CLAIMS, COUNTERS, CURRENT, DECISIONS, OUTBOX, TXLOG, VERSIONS
from app.store.port import HistoryQuery, VersionConflict

T = TypeVar("T")
Mode = Literal["before", "after", "transient"]
AT = "2024-02-01T00:00:00.000Z"
ORIGIN = "job-crash"


# -- the fault-injecting proxy --------------------------------------------------------------


class Crashed(Exception):
    """The simulated crash: the process died at (or before answering) this database call."""


@dataclass
class Faults:
    """Numbers the database calls; call `crash_at` (1-based) fails as `mode` says."""

    crash_at: int | None = None
    mode: Mode = "before"
    calls: list[str] = field(default_factory=list)
    dead: bool = False

    async def call(self, label: str, run: Callable[[], Awaitable[T]]) -> T:
        if self.dead:
            raise Crashed(f"process is dead ({label})")
        self.calls.append(label)
        if len(self.calls) != self.crash_at:
            return await run()
        if self.mode == "after":
            with contextlib.suppress(Exception):  # performed; its answer (or error) is lost
                await run()
        if self.mode != "transient":
            self.dead = True
        raise Crashed(f"crash at call {len(self.calls)}: {label} ({self.mode})")


class FaultyCursor:
    """A find() cursor: building it is free, fetching it (to_list, iteration) is one call."""

    def __init__(self, inner: Any, label: str, faults: Faults) -> None:
        self._inner = inner
        self._label = label
        self._faults = faults

    def sort(self, *args: Any, **kwargs: Any) -> FaultyCursor:
        return FaultyCursor(self._inner.sort(*args, **kwargs), self._label, self._faults)

    def limit(self, n: int) -> FaultyCursor:
        return FaultyCursor(self._inner.limit(n), self._label, self._faults)

    async def to_list(self, length: int | None = None) -> list[Any]:
        docs: list[Any] = await self._faults.call(self._label, lambda: self._inner.to_list(length))
        return docs

    async def __aiter__(self) -> AsyncIterator[Any]:
        for doc in await self.to_list(None):
            yield doc


class FaultyCollection:
    def __init__(self, inner: Any, name: str, faults: Faults) -> None:
        self._inner = inner
        self._name = name
        self._faults = faults

    def find(self, *args: Any, **kwargs: Any) -> FaultyCursor:
        return FaultyCursor(self._inner.find(*args, **kwargs), f"{self._name}.find", self._faults)

    def __getattr__(self, method: str) -> Callable[..., Awaitable[Any]]:
        target = getattr(self._inner, method)
        label = f"{self._name}.{method}"

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await self._faults.call(label, lambda: target(*args, **kwargs))

        return call


class FaultyDatabase:
    """The database handle a `MongoResourceStore` sees; the real one stays untouched."""

    def __init__(self, inner: Any, faults: Faults) -> None:
        self._inner = inner
        self._faults = faults

    def __getitem__(self, name: str) -> FaultyCollection:
        return FaultyCollection(self._inner[name], name, self._faults)


# -- the databases --------------------------------------------------------------------------


@dataclass
class Backend:
    kind: str
    client: Any
    names: list[str] = field(default_factory=list)

    def database(self) -> Any:
        name = f"micdr_crash_{uuid.uuid4().hex[:10]}"
        self.names.append(name)
        return self.client[name]


@pytest.fixture(params=["mongomock", "ferretdb"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "mongomock":
        from mongomock_motor import AsyncMongoMockClient

        yield Backend("mongomock", AsyncMongoMockClient())
        return
    url = os.environ.get("MICDR_TEST_MONGO_URL")
    if not url:
        if os.environ.get("MICDR_REQUIRE_SERVICES") == "1":
            pytest.fail("MICDR_REQUIRE_SERVICES=1 but MICDR_TEST_MONGO_URL is not set")
        pytest.skip("FerretDB not configured (MICDR_TEST_MONGO_URL unset)")
    from pymongo import AsyncMongoClient

    client: Any = AsyncMongoClient(url, serverSelectionTimeoutMS=5000)
    backend = Backend("ferretdb", client)
    try:
        yield backend
    finally:
        for name in backend.names:
            await client.drop_database(name)
        await client.close()


# -- the transaction under test -------------------------------------------------------------


def resource(type_: str, id_: str, version: int, at: str, *idents: str) -> dict[str, Any]:
    systems = [{"system": t.split("|")[0], "value": t.split("|")[1]} for t in idents]
    out: dict[str, Any] = {
        "resourceType": type_,
        "id": id_,
        "meta": {"versionId": str(version), "lastUpdated": at},
    }
    if systems:
        out["identifier"] = systems
    return out


def write(type_: str, id_: str, version: int, at: str, *idents: str) -> Write:
    op: Operation = "create" if version == 1 else "update"
    return Write(type_, id_, version, op, resource(type_, id_, version, at, *idents), idents)


SEED = (
    Transaction(
        (
            write("Patient", "a", 1, "2024-01-01T00:00:00.000Z", "s|a"),
            write("Patient", "d", 1, "2024-01-01T00:00:00.000Z"),
            write("Patient", "e", 1, "2024-01-01T00:00:00.000Z", "s|e"),
        ),
        (Claim("Patient", "s|a", "Patient/a"), Claim("Patient", "s|e", "Patient/e")),
    ),
    # Patient/e drops its identifier: its claim on s|e is now stale, to be taken over.
    Transaction((write("Patient", "e", 2, "2024-01-02T00:00:00.000Z"),)),
)

# Five writes (update, creates, delete) and three claims (two new, one stale takeover).
TX = Transaction(
    (
        write("Patient", "a", 2, AT, "s|a"),
        write("Patient", "b", 1, AT, "s|b"),
        write("ServiceRequest", "c", 1, AT, "o|c"),
        Write("Patient", "d", 2, "delete", None),
        write("Patient", "f", 1, AT, "s|e"),
        write("SearchParameter", "g", 1, AT),  # counted by `changes`
    ),
    (
        Claim("Patient", "s|b", "Patient/b"),
        Claim("ServiceRequest", "o|c", "ServiceRequest/c"),
        Claim("Patient", "s|e", "Patient/f"),
    ),
    last_updated=AT,
    origin=ORIGIN,
)
TOKENS = {"Patient": ["s|a", "s|b", "s|e"], "ServiceRequest": ["o|c"]}


async def seeded(db: Any) -> MongoResourceStore:
    store = await MongoResourceStore.open(db)
    for tx in SEED:
        await store.commit(tx)
    return store


async def snapshot(store: MongoResourceStore, db: Any) -> dict[str, Any]:
    """Everything a reader can observe of the resources `TX` touches, plus the live claims."""
    out: dict[str, Any] = {}
    for w in TX.writes:
        out[f"read {w.ref}"] = await store.read(w.type, w.id)
        out[f"vread {w.ref}/{w.version}"] = await store.vread(w.type, w.id, w.version)
        out[f"history {w.ref}"] = await store.history(HistoryQuery(type=w.type, id=w.id))
    out["history"] = await store.history(HistoryQuery(count=100))
    for type_, tokens in TOKENS.items():
        out[f"identifier {type_}"] = dict(await store.find_by_identifier(type_, tokens))
    out["commit log"] = [c.refs for c in await store.unindexed(100)]
    out["origin"] = await store.committed_origin(ORIGIN) is not None
    out["claims"] = await live_claims(db)
    out["SearchParameter changes"] = await store.changes("SearchParameter")
    return out


async def live_claims(db: Any) -> dict[str, str]:
    """Claims whose holder is a current, undeleted resource carrying the identifier."""
    live: dict[str, str] = {}
    async for claim in db[CLAIMS].find({}):
        type_, _, token = claim["_id"].partition("|")
        holder = await db[CURRENT].find_one(
            {"_id": claim["ref"], "ident": token, "op": {"$ne": "delete"}}
        )
        if holder is not None and holder["type"] == type_:
            live[claim["_id"]] = claim["ref"]
    return live


@dataclass
class Expected:
    before: dict[str, Any]
    after: dict[str, Any]
    seed_seqs: set[int]


async def expected(backend: Backend) -> Expected:
    db = backend.database()
    store = await seeded(db)
    before = await snapshot(store, db)
    await store.commit(TX)
    after = await snapshot(store, db)
    assert before != after
    seqs = {d["_id"] async for d in db[TXLOG].find({}, {"_id": 1})}
    return Expected(before, after, seqs - {max(seqs)})


async def assert_whole_or_nothing(db: Any, exp: Expected, context: str) -> bool:
    """After recovery: the state is exactly `after` (True) or exactly `before` (False), with no
    leftovers; a retry then succeeds (nothing) or is refused as already done (everything)."""
    store = MongoResourceStore(db)
    state = await snapshot(store, db)
    records = [d async for d in db[TXLOG].find({"_id": {"$nin": list(exp.seed_seqs)}})]
    committed = [r for r in records if r["state"] in ("committed", "applied")]
    if state["origin"]:
        assert state == exp.after, context
        assert [r["state"] for r in committed] == ["applied"], context
        with pytest.raises(VersionConflict):
            await store.commit(TX)
        return True
    assert state == exp.before, context
    assert committed == [], context
    for record in records:
        assert record["state"] == "aborted", f"{context}: {record}"
        assert await db[VERSIONS].count_documents({"tx": record["_id"]}) == 0, context
    await store.commit(TX)
    assert await snapshot(store, db) == exp.after, f"{context}: retry"
    return False


async def commit_calls(backend: Backend) -> list[str]:
    """The database calls a clean commit of `TX` makes, in order."""
    db = backend.database()
    await seeded(db)
    faults = Faults()
    await MongoResourceStore(FaultyDatabase(db, faults)).commit(TX)
    return faults.calls


def commit_point(calls: list[str]) -> int:
    """1-based number of the call that inserts the decision to commit."""
    return calls.index(f"{DECISIONS}.insert_one") + 1


# -- the tests ------------------------------------------------------------------------------


async def test_the_commit_under_test_makes_many_calls(backend: Backend) -> None:
    calls = await commit_calls(backend)
    assert len(calls) >= 15, calls
    after = calls[commit_point(calls) :]
    assert after[:2] == [f"{OUTBOX}.insert_many", f"{TXLOG}.update_one"], after  # committed
    assert after[-2:] == [f"{OUTBOX}.update_one", f"{TXLOG}.update_one"], after  # applied
    assert f"{CLAIMS}.update_one" in calls  # the stale claim is taken over


@pytest.mark.parametrize("mode", ["before", "after", "transient"])
async def test_a_crash_at_any_call_of_a_commit_recovers_to_all_or_nothing(
    backend: Backend, mode: Mode
) -> None:
    calls = await commit_calls(backend)
    point = commit_point(calls)
    exp = await expected(backend)
    for n in range(1, len(calls) + 1):
        db = backend.database()
        await seeded(db)
        faults = Faults(crash_at=n, mode=mode)
        with pytest.raises(Crashed):
            await MongoResourceStore(FaultyDatabase(db, faults)).commit(TX)
        await MongoResourceStore(db).recover(stale_after_seconds=0)
        context = f"{mode} crash at call {n}/{len(calls)} ({calls[n - 1]})"
        whole = await assert_whole_or_nothing(db, exp, context)
        # The commit point decides: a decision that reached the database is rolled forward.
        assert whole == (n > point or (n == point and mode == "after")), context


async def test_a_crash_after_the_commit_point_is_rolled_forward(backend: Backend) -> None:
    calls = await commit_calls(backend)
    exp = await expected(backend)
    db = backend.database()
    await seeded(db)
    faults = Faults(crash_at=commit_point(calls) + 1)
    with pytest.raises(Crashed):
        await MongoResourceStore(FaultyDatabase(db, faults)).commit(TX)
    # Before recovery the versions are committed (vread answers) but not yet current.
    store = MongoResourceStore(db)
    assert await store.vread("Patient", "b", 1) is not None
    assert await store.read("Patient", "b") is None
    assert await store.recover(stale_after_seconds=3600) == (1, 0)
    assert await assert_whole_or_nothing(db, exp, "crash after the commit point")


async def test_recovery_leaves_a_young_pending_transaction_alone(backend: Backend) -> None:
    calls = await commit_calls(backend)
    exp = await expected(backend)
    db = backend.database()
    await seeded(db)
    # Crash once the versions are in, before the commit point: a pending, unfinished record.
    faults = Faults(crash_at=calls.index(f"{VERSIONS}.insert_many") + 2)
    with pytest.raises(Crashed):
        await MongoResourceStore(FaultyDatabase(db, faults)).commit(TX)
    store = MongoResourceStore(db)
    assert await store.recover(stale_after_seconds=3600) == (0, 0)
    assert await db[TXLOG].count_documents({"state": "pending"}) == 1
    assert await db[VERSIONS].count_documents({"tx": {"$nin": list(exp.seed_seqs)}}) == len(
        TX.writes
    )
    assert await snapshot(store, db) == exp.before  # pending versions are invisible
    assert await store.recover(stale_after_seconds=0) == (0, 1)
    assert not await assert_whole_or_nothing(db, exp, "stale pending")


@pytest.mark.parametrize("mode", ["before", "after"])
async def test_a_crash_during_recovery_is_repaired_by_the_next_recovery(
    backend: Backend, mode: Mode
) -> None:
    calls = await commit_calls(backend)
    point = commit_point(calls)
    exp = await expected(backend)

    async def crashed(n: int) -> Any:
        db = backend.database()
        await seeded(db)
        with pytest.raises(Crashed):
            await MongoResourceStore(FaultyDatabase(db, Faults(crash_at=n))).commit(TX)
        return db

    # A crash among the writes (to roll back) and one between flip and applied (to roll forward).
    for n in (calls.index(f"{VERSIONS}.insert_many") + 2, point + 2):
        probe = Faults()
        await MongoResourceStore(FaultyDatabase(await crashed(n), probe)).recover(0)
        assert len(probe.calls) >= 3, probe.calls
        for m in range(1, len(probe.calls) + 1):
            db = await crashed(n)
            with pytest.raises(Crashed):
                await MongoResourceStore(FaultyDatabase(db, Faults(m, mode))).recover(0)
            await MongoResourceStore(db).recover(stale_after_seconds=0)
            context = f"commit crash at {n}, {mode} recovery crash at {m}/{len(probe.calls)}"
            assert await assert_whole_or_nothing(db, exp, context) == (n > point), context


# -- what recovery reads ----------------------------------------------------------------------


def a_create(n: int) -> Transaction:
    return Transaction((write("Observation", f"o{n}", 1, AT),), last_updated=AT)


async def recovery_reads(db: Any, stale_after_seconds: float) -> tuple[tuple[int, int], list[str]]:
    """What `recover` answers, and the database calls it makes."""
    faults = Faults()
    outcome = await MongoResourceStore(FaultyDatabase(db, faults)).recover(stale_after_seconds)
    return outcome, faults.calls


async def test_recovery_reads_only_what_has_not_finished(backend: Backend) -> None:
    # FerretDB answers only `_id` filters without scanning: a recovery that filtered the
    # log on its state read every transaction ever made, every 15 s, in every worker.
    db = backend.database()
    store = await seeded(db)
    for n in range(30):
        await store.commit(a_create(n))
    log_read = f"{TXLOG}.find"
    # the first reads the log by key (one batch) and moves its mark past what finished
    assert await recovery_reads(db, 3600) == (
        (0, 0),
        [f"{COUNTERS}.find_one", f"{COUNTERS}.find_one", log_read, f"{COUNTERS}.update_one"],
    )
    # everything has finished: the next recovery does not read the log at all
    assert await recovery_reads(db, 3600) == ((0, 0), [f"{COUNTERS}.find_one"] * 2)

    # a writer dies before its commit point, then others commit after it
    calls = await commit_calls(backend)
    faults = Faults(crash_at=calls.index(f"{VERSIONS}.insert_many") + 2)
    with pytest.raises(Crashed):
        await MongoResourceStore(FaultyDatabase(db, faults)).commit(TX)
    for n in range(30, 33):
        await store.commit(a_create(n))
    # young: left alone, and every recovery reads from it on (one batch)
    for _ in range(2):
        outcome, reads = await recovery_reads(db, 3600)
        assert (outcome, reads.count(log_read)) == ((0, 0), 1)
    # stale: rolled back, and nothing is left to read
    assert (await recovery_reads(db, 0))[0] == (0, 1)
    assert await recovery_reads(db, 0) == ((0, 0), [f"{COUNTERS}.find_one"] * 2)


async def test_a_number_drawn_without_a_record_holds_recovery_only_while_young(
    backend: Backend,
) -> None:
    db = backend.database()
    store = await seeded(db)
    # the writer dies between drawing its number and inserting its record
    faults = Faults(crash_at=2)
    with pytest.raises(Crashed):
        await MongoResourceStore(FaultyDatabase(db, faults)).commit(a_create(1))
    assert faults.calls == [f"{COUNTERS}.find_one_and_update", f"{TXLOG}.insert_one"]
    await store.commit(a_create(2))
    log_read = f"{TXLOG}.find"
    # its record could still be on its way while the later one is young
    for _ in range(2):
        assert (await recovery_reads(db, 3600))[1].count(log_read) == 1
    # once a later record is stale, the missing one is past too
    assert (await recovery_reads(db, 0))[1].count(log_read) == 1
    assert await recovery_reads(db, 0) == ((0, 0), [f"{COUNTERS}.find_one"] * 2)
