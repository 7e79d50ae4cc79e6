"""`SubscriptionEventLog` contract on every store adapter (app/store/port.py): events numbered
1, 2, ... per subscription in the order recorded, a repeated recording keeps its number (a
commit evaluated again after a crash repeats nothing), numbers never reused, ranges by
number."""

from __future__ import annotations

import asyncio
from typing import Any

from app.store.port import FoundEvent, SubscriptionEvent


def found(seq: int, focus: str = "DiagnosticReport/r1", version: int = 1) -> FoundEvent:
    return FoundEvent(seq, focus, version, "create" if version == 1 else "update", f"t{seq}")


def event(subscription: str, number: int, f: FoundEvent) -> SubscriptionEvent:
    return SubscriptionEvent(
        subscription, number, f.seq, f.focus, f.version, f.interaction, f.timestamp
    )


async def test_events_are_numbered_per_subscription_in_order(store: Any) -> None:
    a1, a2 = found(5), found(7, version=2)
    b1 = found(5)
    assert await store.events_since_start("a") == 0
    assert await store.record_events("a", [a1, a2]) == [event("a", 1, a1), event("a", 2, a2)]
    assert await store.record_events("b", [b1]) == [event("b", 1, b1)]
    a3 = found(9, "ImagingStudy/s1")
    assert await store.record_events("a", [a3]) == [event("a", 3, a3)]
    assert await store.events_since_start("a") == 3
    assert await store.events_since_start("b") == 1


async def test_recording_again_keeps_the_numbers_and_adds_nothing(store: Any) -> None:
    first = await store.record_events("a", [found(5), found(6)])
    again = await store.record_events("a", [found(5), found(6), found(8)])
    assert again[:2] == first
    assert again[2].number == 3
    assert [e.number for e in await store.subscription_events("a", 1, None, 100)] == [1, 2, 3]
    assert await store.events_since_start("a") == 3


async def test_events_are_read_by_number_range(store: Any) -> None:
    recorded = await store.record_events("a", [found(s) for s in range(1, 8)])
    assert await store.subscription_events("a", 3, 5, 100) == recorded[2:5]
    assert await store.subscription_events("a", 6, None, 100) == recorded[5:]
    assert await store.subscription_events("a", 2, None, 2) == recorded[1:3]
    assert await store.subscription_events("a", 8, None, 100) == []
    assert await store.subscription_events("other", 1, None, 100) == []


async def test_concurrent_recordings_give_each_event_one_number(store: Any) -> None:
    batches = [[found(s, f"Observation/{s}-{i}") for i in range(3)] for s in range(1, 6)]
    await asyncio.gather(*(store.record_events("a", batch) for batch in batches))
    await asyncio.gather(*(store.record_events("a", batch) for batch in batches))  # again
    events = await store.subscription_events("a", 1, None, 100)
    assert sorted((e.seq, e.focus) for e in events) == sorted(
        (f.seq, f.focus) for batch in batches for f in batch
    )
    numbers = [e.number for e in events]
    assert len(set(numbers)) == len(numbers) == 15
    assert await store.events_since_start("a") == 15


async def test_two_evaluators_of_the_same_commits_leave_no_gap(store: Any) -> None:
    """At-least-once projection jobs may evaluate the same commits at the same time."""
    batch = [found(s, f"DiagnosticReport/{s}") for s in range(1, 6)]
    first, second = await asyncio.gather(
        store.record_events("a", batch), store.record_events("a", batch)
    )
    assert first == second
    assert [e.number for e in await store.subscription_events("a", 1, None, 100)] == [1, 2, 3, 4, 5]
    assert await store.events_since_start("a") == 5
