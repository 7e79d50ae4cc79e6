"""`SubscriptionDelivery` contract on every store adapter (app/store/port.py): one worker at a
time holds a subscription's delivery (a lease), a save is fenced on holding it, a released or
expired lease can be taken, and the progress saved is what the next holder reads."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from app.store.port import DeliveryState


async def test_a_first_claim_starts_at_nothing_delivered(store: Any) -> None:
    state = await store.claim_delivery("s1", "w1", 100.0, 130.0)
    assert state == DeliveryState("s1", owner="w1", lease_until=130.0, turns=1)
    assert await store.deliveries() == [state]


async def test_a_running_lease_keeps_others_out_until_it_ends(store: Any) -> None:
    await store.claim_delivery("s1", "w1", 100.0, 130.0)
    assert await store.claim_delivery("s1", "w2", 120.0, 150.0) is None
    again = await store.claim_delivery("s1", "w1", 125.0, 155.0)  # the holder renews
    assert again == DeliveryState("s1", owner="w1", lease_until=155.0, turns=1)
    taken = await store.claim_delivery("s1", "w2", 156.0, 186.0)  # expired: taken over
    assert taken == DeliveryState("s1", owner="w2", lease_until=186.0, turns=2)


async def test_progress_is_saved_by_the_holder_only(store: Any) -> None:
    state = await store.claim_delivery("s1", "w1", 100.0, 130.0)
    progress = replace(state, delivered=4, failures=2, retry_at=140.5, last_sent=101.25)
    assert await store.save_delivery(progress, "w1") is True
    assert await store.save_delivery(replace(progress, delivered=9), "w2") is False
    assert await store.deliveries() == [progress]


async def test_a_released_lease_is_taken_at_once_with_its_progress(store: Any) -> None:
    state = await store.claim_delivery("s1", "w1", 100.0, 130.0)
    released = replace(state, delivered=3, last_sent=105.0, owner=None, lease_until=0.0)
    assert await store.save_delivery(released, "w1") is True
    taken = await store.claim_delivery("s1", "w2", 106.0, 136.0)
    assert taken == replace(released, owner="w2", lease_until=136.0, turns=2)
    # the old holder lost it: its late save changes nothing
    assert await store.save_delivery(replace(state, delivered=1), "w1") is False
    assert (await store.deliveries())[0].delivered == 3


async def test_subscriptions_are_delivered_apart(store: Any) -> None:
    a = await store.claim_delivery("a", "w1", 100.0, 130.0)
    b = await store.claim_delivery("b", "w2", 100.0, 130.0)
    assert a is not None and b is not None
    assert [s.subscription for s in await store.deliveries()] == ["a", "b"]


async def test_concurrent_claims_leave_one_holder_able_to_save(store: Any) -> None:
    claims = await asyncio.gather(
        *(store.claim_delivery("s1", f"w{i}", 100.0, 130.0) for i in range(5))
    )
    saved = [
        await store.save_delivery(replace(c, delivered=1), c.owner) for c in claims if c is not None
    ]
    assert saved.count(True) == 1


async def test_a_take_whose_taker_died_half_way_is_free_once_its_lease_ends(store: Any) -> None:
    """A claim may be two writes (MongoDB: the turn, then the record): one that died between
    them holds nothing after its lease, and the subscription is claimable again."""
    state = await store.claim_delivery("s1", "w1", 100.0, 130.0)
    await store.save_delivery(replace(state, owner=None, lease_until=0.0), "w1")
    turns = getattr(store, "_delivery_turns", None)
    if turns is not None:  # the dead taker's first write, as MongoDB's claim makes it
        await turns.insert_one({"_id": "s1|1", "until": 140.0})
        assert await store.claim_delivery("s1", "w2", 139.0, 169.0) is None  # may be alive
    taken = await store.claim_delivery("s1", "w3", 141.0, 171.0)
    taken = taken or await store.claim_delivery("s1", "w3", 141.5, 171.0)
    assert taken is not None and taken.owner == "w3"
