"""The MongoDB store answers its periodic submission queries (due, callbacks, counts, expiry)
from small state documents beside the submissions, never from the submissions themselves (on
FerretDB a filter on state reads every document, each with its request and result). The
submission stays the truth: a state document left stale or orphaned by a crash between the two
writes is mended when a query meets it, and a database from before the state documents gets
them when it is opened."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from typing import Any

from mongomock_motor import AsyncMongoMockClient

from app.store.mongo import MongoResourceStore
from app.store.names import SUBMISSION_KEYS, SUBMISSION_STATES, SUBMISSIONS
from app.store.port import Submission


def database() -> Any:
    return AsyncMongoMockClient()[f"t{uuid.uuid4().hex[:8]}"]


def submission(id_: str, created: float) -> Submission:
    return Submission(
        id_, "c", {"interaction": "transaction", "body": {"big": "x" * 1000}}, created
    )


async def test_the_queries_read_the_state_documents_and_check_the_submission() -> None:
    db = database()
    store = await MongoResourceStore.open(db)
    now = time.time()
    for n in range(3):
        await store.submit(submission(f"s{n}", now - 10 + n))
    claimed = await store.claim_submission("s0", "w", now, now + 60)
    assert claimed is not None
    states = {d["_id"]: d["state"] async for d in db[SUBMISSION_STATES].find({})}
    assert states == {"s0": "running", "s1": "queued", "s2": "queued"}
    assert [s.id for s in await store.due_submissions(now, 10)] == ["s1", "s2"]
    stats = await store.submission_stats()
    assert (stats.queued, stats.running, stats.oldest_waiting) == (2, 1, now - 9)


async def test_a_stale_or_orphaned_state_is_mended_when_met() -> None:
    db = database()
    store = await MongoResourceStore.open(db)
    now = time.time()
    await store.submit(submission("done", now - 5))
    await store.submit(submission("gone", now - 4))
    # a crash between the writes: the submission finished, its state still says queued ...
    await db[SUBMISSIONS].update_one({"_id": "done"}, {"$set": {"state": "done"}})
    # ... and a state whose submission never came
    await db[SUBMISSIONS].delete_one({"_id": "gone"})
    assert await store.due_submissions(now, 10) == []
    states = {d["_id"]: d["state"] async for d in db[SUBMISSION_STATES].find({})}
    assert states == {"done": "done"}
    assert (await store.submission_stats()).queued == 0


async def test_a_purge_drops_expired_submissions_and_mends_a_stale_expiry() -> None:
    db = database()
    store = await MongoResourceStore.open(db)
    now = time.time()
    for id_ in ("old", "kept"):
        await store.submit(submission(id_, now - 100))
        await store.update_submission(id_, {"state": "queued"}, {"state": "done", "expires": 1.0})
    # the submission was given a later expiry; its state document missed it
    await db[SUBMISSIONS].update_one({"_id": "kept"}, {"$set": {"expires": now + 3600}})
    assert await store.purge_submissions(now) == 1
    assert await store.submission("old") is None and await store.submission("kept") is not None
    kept = await db[SUBMISSION_STATES].find_one({"_id": "kept"})
    assert [d["_id"] async for d in db[SUBMISSION_STATES].find({})] == ["kept"]
    assert kept is not None and kept["expires"] == now + 3600


async def test_a_purge_drops_the_claims_of_its_submissions_but_not_a_key_taken_over() -> None:
    db = database()
    store = await MongoResourceStore.open(db)
    now = time.time()
    for id_, key in (("old", "k1"), ("gone", "k2"), ("live", None)):
        await store.submit(replace(submission(id_, now - 100), idempotency_key=key))
        assert await store.claim_submission(id_, "w", now, now + 60) is not None
    # `gone`'s key was taken over by a later submission (its own was thought lost)
    await db[SUBMISSION_KEYS].update_one({"_id": "c|k2"}, {"$set": {"id": "later"}})
    for id_ in ("old", "gone"):
        await store.update_submission(id_, {"state": "running"}, {"state": "done", "expires": 1.0})
    assert await store.purge_submissions(now) == 2
    left = {d["_id"]: d["id"] async for d in db[SUBMISSION_KEYS].find({})}
    assert left == {"c|k2": "later", "claim|live|0": "live"}


async def test_a_database_from_before_the_state_documents_gets_them_on_open() -> None:
    db = database()
    store = await MongoResourceStore.open(db)
    now = time.time()
    await store.submit(submission("s0", now - 1))
    await db[SUBMISSION_STATES].delete_many({})  # as written by the earlier version
    reopened = await MongoResourceStore.open(db)
    assert [s.id for s in await reopened.due_submissions(now, 10)] == ["s0"]
