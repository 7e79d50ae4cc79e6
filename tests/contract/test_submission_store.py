"""`SubmissionStore` contract on every store adapter (docs/implementation/async.md): durable
submissions, the idempotency claim, compare-and-set state changes, due and expired work."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from typing import Any

from app.store.port import Submission


def submission(key: str | None = None, at: float = 100.0, who: str = "hospital-a") -> Submission:
    return Submission(
        id=uuid.uuid4().hex,
        contributor=who,
        request={"interaction": "transaction", "method": "POST", "body": {"a": [1, {"b": 2}]}},
        created=at,
        updated=at,
        not_before=at,
        idempotency_key=key,
    )


async def test_a_submission_is_stored_and_read_back_whole(store: Any) -> None:
    sub = submission()
    assert await store.submit(sub) == sub
    assert await store.submission(sub.id) == sub
    assert await store.submission("nope") is None


async def test_the_idempotency_claim_answers_the_first_submission(store: Any) -> None:
    first = await store.submit(submission("k1"))
    again = await store.submit(submission("k1"))
    other_contributor = await store.submit(submission("k1", who="hospital-b"))
    assert again.id == first.id
    assert other_contributor.id != first.id


async def test_concurrent_submissions_with_one_key_store_exactly_one(store: Any) -> None:
    subs = [submission("same") for _ in range(8)]
    answers = await asyncio.gather(*(store.submit(s) for s in subs))
    assert len({a.id for a in answers}) == 1
    stats = await store.submission_stats()
    assert stats.queued == 1


async def test_a_claim_is_taken_once_and_only_when_due(store: Any) -> None:
    sub = await store.submit(submission(at=100.0))
    assert await store.claim_submission(sub.id, "w1", 99.0, 160.0) is None  # not yet due
    claims = await asyncio.gather(
        *(store.claim_submission(sub.id, f"w{i}", 100.0, 160.0) for i in range(5))
    )
    won = [c for c in claims if c is not None]
    assert len(won) == 1
    assert won[0].state == "running" and won[0].lease_until == 160.0


async def test_update_is_compare_and_set(store: Any) -> None:
    sub = await store.submit(submission())
    await store.claim_submission(sub.id, "w1", 100.0, 160.0)
    assert await store.update_submission(sub.id, {"owner": "w2"}, {"state": "done"}) is None
    journal = await store.update_submission(
        sub.id, {"state": "running", "owner": "w1"}, {"journal.e0": [{"index": 0}]}
    )
    assert journal is not None and journal.journal == {"e0": [{"index": 0}]}
    done = await store.update_submission(
        sub.id, {"state": "running", "owner": "w1"}, {"state": "done", "result": {"status": 200}}
    )
    assert done is not None and done.state == "done" and done.journal == {"e0": [{"index": 0}]}


async def test_due_answers_queued_and_lease_expired_ones(store: Any) -> None:
    early, late, running = submission(at=10.0), submission(at=500.0), submission(at=20.0)
    for s in (early, late, running):
        await store.submit(s)
    await store.claim_submission(running.id, "w1", 20.0, 200.0)
    assert [s.id for s in await store.due_submissions(100.0, 10)] == [early.id]
    assert [s.id for s in await store.due_submissions(300.0, 10)] == [early.id, running.id]
    stats = await store.submission_stats()
    assert (stats.queued, stats.running, stats.oldest_waiting) == (2, 1, 10.0)


async def test_callbacks_and_purge(store: Any) -> None:
    sub = await store.submit(submission())
    await store.update_submission(
        sub.id,
        {},
        {
            "state": "done",
            "expires": 300.0,
            "callback": {"state": "pending", "next_at": 150.0, "attempts": 0},
        },
    )
    assert await store.undelivered_callbacks(100.0, 10) == []
    assert [s.id for s in await store.undelivered_callbacks(200.0, 10)] == [sub.id]
    assert await store.purge_submissions(250.0) == 0
    assert await store.purge_submissions(301.0) == 1
    assert await store.submission(sub.id) is None
    # a key whose submission is gone is taken over by the next submission with that key
    keyed = await store.submit(submission("k2"))
    await store.update_submission(keyed.id, {}, {"state": "done", "expires": 1.0})
    await store.purge_submissions(2.0)
    fresh = submission("k2")
    assert (await store.submit(fresh)).id == fresh.id


async def test_every_change_keeps_the_request_the_result_and_each_journal_entry(
    store: Any,
) -> None:
    sub = await store.submit(submission())
    await store.claim_submission(sub.id, "w1", 100.0, 160.0)
    running = {"state": "running", "owner": "w1"}
    await store.update_submission(sub.id, running, {"journal.e0": [{"index": 0}]})
    await store.update_submission(sub.id, running, {"journal.e3": [{"index": 3}], "progress": "3"})
    await store.update_submission(sub.id, running, {"journal.e0": [{"index": 0, "again": 1}]})
    await store.update_submission(
        sub.id,
        running,
        {
            "state": "done",
            "result": {"status": 200, "body": {"entry": [1]}},
            "callback": {"state": "pending", "next_at": 150.0, "attempts": 0},
        },
    )
    await store.update_submission(sub.id, {"state": "done"}, {"callback.attempts": 1})
    expected = replace(
        sub,
        state="done",
        owner="w1",
        lease_until=160.0,
        progress="3",
        result={"status": 200, "body": {"entry": [1]}},
        callback={"state": "pending", "next_at": 150.0, "attempts": 1},
        journal={"e0": [{"index": 0, "again": 1}], "e3": [{"index": 3}]},
    )
    assert await store.submission(sub.id) == expected
    assert await store.undelivered_callbacks(200.0, 10) == [expected]
    replaced = await store.update_submission(sub.id, {}, {"journal": {"bulk": {"at": 7}}})
    assert replaced == replace(expected, journal={"bulk": {"at": 7}})
    assert await store.submission(sub.id) == replaced


async def test_an_amendment_is_the_same_compare_and_set_answering_only_whether_it_took(
    store: Any,
) -> None:
    sub = await store.submit(submission())
    await store.claim_submission(sub.id, "w1", 100.0, 160.0)
    assert await store.amend_submission(sub.id, {"owner": "w2"}, {"progress": "no"}) is False
    assert await store.amend_submission("nope", {}, {"progress": "no"}) is False
    running = {"state": "running", "owner": "w1"}
    assert await store.amend_submission(sub.id, running, {"journal.e0": [1], "lease_until": 170.0})
    assert await store.amend_submission(sub.id, running, {"journal.e1": [2], "progress": "2"})
    assert await store.submission(sub.id) == replace(
        sub,
        state="running",
        owner="w1",
        lease_until=170.0,
        updated=100.0,
        progress="2",
        journal={"e0": [1], "e1": [2]},
    )
    # the lease it renewed is what the due query sees
    assert await store.due_submissions(165.0, 10) == []
    assert [s.id for s in await store.due_submissions(171.0, 10)] == [sub.id]
    # a change of state is what the counts see
    assert await store.amend_submission(sub.id, running, {"state": "dead", "owner": None})
    stats = await store.submission_stats()
    assert (stats.queued, stats.running, stats.dead) == (0, 0, 1)
    assert await store.due_submissions(171.0, 10) == []
