"""The MongoDB store records a batch of subscription events in a few round trips whatever its
size, and when a number it drew turns out taken (FerretDB's `$inc` is a read then a write, so
two evaluators may draw the same range) it draws again above the last number it gave: no
number is given twice and the batch keeps its order. The lost update is simulated by setting
the counter back, as the losing write of such a race leaves it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mongomock_motor import AsyncMongoMockClient

from app.store.mongo import MongoResourceStore
from app.store.names import COUNTERS, SUBSCRIPTION_EVENTS
from app.store.port import FoundEvent


def found(seq: int) -> FoundEvent:
    return FoundEvent(seq, f"DiagnosticReport/r{seq}", 1, "create", f"t{seq}")


@pytest.fixture
async def database() -> AsyncIterator[Any]:
    yield AsyncMongoMockClient()[f"t{uuid.uuid4().hex[:8]}"]


async def test_a_range_drawn_twice_is_drawn_again_in_order(database: Any) -> None:
    store = await MongoResourceStore.open(database)
    first = await store.record_events("a", [found(1), found(2), found(3)])
    assert [e.number for e in first] == [1, 2, 3]
    # the counter as a lost update leaves it: the next draw gives 2..4 again
    await database[COUNTERS].update_one(
        {"_id": f"{SUBSCRIPTION_EVENTS}|a"}, {"$set": {"n": 1, "last": ""}}
    )
    second = await store.record_events("a", [found(4), found(5), found(6)])
    assert [(e.seq, e.number) for e in second] == [(4, 5), (5, 6), (6, 7)]
    events = await store.subscription_events("a", 1, None, 100)
    assert [(e.number, e.seq) for e in events] == [(1, 1), (2, 2), (3, 3), (5, 4), (6, 5), (7, 6)]
    # recorded again after a crash: the same numbers, nothing added
    again = await store.record_events("a", [found(4), found(5), found(6)])
    assert again == second
    assert len(await store.subscription_events("a", 1, None, 100)) == 6


async def test_a_range_taken_part_way_keeps_the_batch_in_order(database: Any) -> None:
    store = await MongoResourceStore.open(database)
    await store.record_events("a", [found(1), found(2)])
    # the next draw of three gives 2..4: the second of them is taken, the rest free
    await database[COUNTERS].update_one(
        {"_id": f"{SUBSCRIPTION_EVENTS}|a"}, {"$set": {"n": 1, "last": ""}}
    )
    await database[SUBSCRIPTION_EVENTS].delete_one({"_id": "a#1"})  # 1 free again, 2 taken
    recorded = await store.record_events("a", [found(3), found(4), found(5)])
    # drawn again from 5: 3 and 4 were free, but below a number given in this batch
    assert [(e.seq, e.number) for e in recorded] == [(3, 5), (4, 6), (5, 7)]
