"""A MongoDB claim of a submission is two writes: the attempt's claim document, then the change
of state (app/store/mongo.py `claim_submission`). A worker killed between the two leaves a
queued submission whose attempt nobody can claim again. Once that claim is older than a lease,
the next claimer queues the submission again as the next attempt, and takes that; a younger
claim is left to its claimer. On mongomock and FerretDB (SQLite claims in one transaction);
tests/integration/test_async_faults.py kills real workers mid-job."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.store.mongo import MongoResourceStore
from app.store.names import SUBMISSION_KEYS
from app.store.port import Submission
from tests._full_stack import unique_name
from tests._services import engine_url

REQUEST = {"interaction": "transaction", "base": "http://x/fhir", "body": {"entry": []}}
LEASE = 60.0


@pytest.fixture(params=["mongomock", "ferretdb"])
async def database(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    if request.param == "mongomock":
        from mongomock_motor import AsyncMongoMockClient

        yield AsyncMongoMockClient()[f"t{uuid.uuid4().hex[:8]}"]
        return
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        engine_url("mongo"), serverSelectionTimeoutMS=5000
    )
    name = unique_name().replace("-", "_")
    try:
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()


async def with_claim_left_at(database: Any, at: float) -> MongoResourceStore:
    """A queued submission, and the claim of its first attempt as a killed worker left it."""
    store = await MongoResourceStore.open(database)
    await store.submit(Submission(id="s1", contributor="c", request=REQUEST, created=0.0))
    await database[SUBMISSION_KEYS].insert_one({"_id": "claim|s1|0", "id": "s1", "at": at})
    return store


async def test_a_claim_older_than_the_lease_is_abandoned_and_the_next_attempt_claimed(
    database: Any,
) -> None:
    store = await with_claim_left_at(database, at=100.0)
    now = 100.0 + LEASE + 1
    claimed = await store.claim_submission("s1", "w2", now, now + LEASE)
    assert claimed is not None
    assert (claimed.state, claimed.attempts, claimed.owner) == ("running", 1, "w2")
    assert (await store.submission_stats()).running == 1
    # taken: a second claimer (the late job of the abandoned attempt) finds nothing to run
    assert await store.claim_submission("s1", "w3", now, now + LEASE) is None


async def test_a_younger_claim_is_left_to_its_claimer(database: Any) -> None:
    store = await with_claim_left_at(database, at=100.0)
    now = 100.0 + LEASE - 1
    assert await store.claim_submission("s1", "w2", now, now + LEASE) is None
    sub = await store.submission("s1")
    assert sub is not None and (sub.state, sub.attempts) == ("queued", 0)
