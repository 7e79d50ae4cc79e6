"""`settled(seq)` on the MongoDB store: whether every transaction numbered up to `seq` has
finished, read by key from the recovery mark (the log keeps a record per transaction ever
committed, and a filter on its state reads the whole log on FerretDB). A transaction still
committing is simulated by setting its log record back to `pending`, as it is between its
insert and its commit point."""

from __future__ import annotations

import uuid
from typing import Any

from mongomock_motor import AsyncMongoMockClient

from app.records import Transaction, Write
from app.store.mongo import MongoResourceStore
from app.store.names import COUNTERS, TXLOG


def basic(id_: str) -> Transaction:
    return Transaction((Write("Basic", id_, 1, "create", {"resourceType": "Basic"}),))


async def test_a_transaction_still_committing_unsettles_every_number_from_its_own() -> None:
    db: Any = AsyncMongoMockClient()[f"t{uuid.uuid4().hex[:8]}"]
    store = await MongoResourceStore.open(db)
    for n in range(3):
        await store.commit(basic(f"b{n}"))
    assert [await store.settled(s) for s in (1, 2, 3)] == [True, True, True]
    await db[TXLOG].update_one({"_id": f"{2:020d}"}, {"$set": {"state": "pending"}})
    assert [await store.settled(s) for s in (1, 2, 3)] == [True, False, False]
    await db[TXLOG].update_one({"_id": f"{2:020d}"}, {"$set": {"state": "aborting"}})
    assert await store.settled(3) is False
    await db[TXLOG].update_one({"_id": f"{2:020d}"}, {"$set": {"state": "aborted"}})
    assert await store.settled(3) is True


async def test_numbers_below_the_recovery_mark_are_not_read_again() -> None:
    db: Any = AsyncMongoMockClient()[f"t{uuid.uuid4().hex[:8]}"]
    store = await MongoResourceStore.open(db)
    for n in range(1200):  # more than one lookup of 500 keys
        await db[TXLOG].insert_one({"_id": f"{n + 1:020d}", "state": "applied"})
    await db[TXLOG].update_one({"_id": f"{1100:020d}"}, {"$set": {"state": "committed"}})
    assert await store.settled(1099) is True
    assert await store.settled(1200) is False
    # recovery has seen every transaction below 1101 finish: the record is not read again
    await db[COUNTERS].update_one({"_id": "recovered-below"}, {"$set": {"seq": 1101}}, upsert=True)
    assert await store.settled(1200) is True
