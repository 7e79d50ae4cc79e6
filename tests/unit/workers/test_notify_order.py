"""The evaluation ahead of projection (workers/subscriptions.py) never evaluates past a
transaction still committing: a commit that drew its sequence number first but becomes visible
later must not have its events numbered after those of a later commit. (Seen on the full stack:
a Subscription's status commit, numbered 3, became visible before a report numbered 2; the
report numbered 4 was then evaluated ahead as event 1 and report 2 became event 2.)"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from app.store.port import CommittedTransaction
from workers.subscriptions import _in_order


class Outbox:
    """A store whose transactions up to `unfinished` (but not the visible ones) are still
    committing."""

    def __init__(self, unfinished: set[int]) -> None:
        self.unfinished = unfinished
        self.asked: list[int] = []

    async def settled(self, seq: int) -> bool:
        self.asked.append(seq)
        return not any(s <= seq for s in self.unfinished)


def commits(*seqs: int) -> list[CommittedTransaction]:
    return [CommittedTransaction(s, (("DiagnosticReport", f"r{s}", 1),), "") for s in seqs]


async def in_order(store: Outbox, after: int, seqs: tuple[int, ...]) -> list[int]:
    ctx: Any = SimpleNamespace(store=store)
    return [c.seq for c in await _in_order(ctx, after, commits(*seqs))]


async def test_a_contiguous_run_is_evaluated_without_asking_the_store() -> None:
    store = Outbox(unfinished=set())
    assert await in_order(store, 1, (2, 3, 4)) == [2, 3, 4]
    assert store.asked == []


async def test_it_stops_before_a_number_still_committing() -> None:
    store = Outbox(unfinished={2})
    assert await in_order(store, 1, (3, 4)) == []  # 2 drew first: 3 and 4 wait for it
    assert store.asked == [2]
    store.unfinished = {4}
    assert await in_order(store, 2, (3, 5)) == [3]  # 3 follows 2; 5 waits for 4
    assert store.asked == [2, 4]


async def test_a_gap_that_finished_is_passed() -> None:
    """Aborted, or projected (and so evaluated) already: nothing will fill it."""
    store = Outbox(unfinished=set())
    assert await in_order(store, 0, (57, 58, 60)) == [57, 58, 60]
    assert store.asked == [56, 59]
