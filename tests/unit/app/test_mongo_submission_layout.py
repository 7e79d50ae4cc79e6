"""The MongoDB store keeps a submission's request, result and journal entries as JSON text in its
document (app/store/mongo_submission.py). A document of the layout before (all of them nested)
is read as it is, and what changes in it is written in the new layout."""

from __future__ import annotations

import uuid
from typing import Any

from mongomock_motor import AsyncMongoMockClient

from app.store.mongo import MongoResourceStore
from app.store.names import SUBMISSIONS
from app.store.port import Submission

REQUEST = {"interaction": "transaction", "base": "http://x/fhir", "body": {"entry": [1, 2]}}
RUNNING = {"state": "running", "owner": "w"}


async def opened() -> tuple[MongoResourceStore, Any]:
    database = AsyncMongoMockClient()[f"t{uuid.uuid4().hex[:8]}"]
    return await MongoResourceStore.open(database), database[SUBMISSIONS]


async def test_the_request_and_each_journal_entry_are_stored_as_text() -> None:
    store, submissions = await opened()
    await store.submit(Submission(id="s1", contributor="c", request=REQUEST, created=10.0))
    await store.claim_submission("s1", "w", 10.0, 70.0)
    assert await store.amend_submission("s1", RUNNING, {"journal.e0": [{"index": 0}]})
    await store.update_submission("s1", RUNNING, {"state": "done", "result": {"status": 200}})
    doc = await submissions.find_one({"_id": "s1"})
    assert (doc["request"], doc["result"], doc["journal"]) == (None, None, {})
    assert doc["request_text"] == '{"interaction":"transaction","base":"http://x/fhir",' + (
        '"body":{"entry":[1,2]}}'
    )
    assert doc["journal_text"] == {"e0": '[{"index":0}]'}
    assert doc["result_text"] == '{"status":200}'
    sub = await store.submission("s1")
    assert sub is not None
    assert (sub.request, sub.journal, sub.result) == (
        REQUEST,
        {"e0": [{"index": 0}]},
        {"status": 200},
    )


async def test_a_submission_of_the_older_layout_is_read_whole_and_changed_in_the_new_one() -> None:
    store, submissions = await opened()
    older = Submission(
        id="s1", contributor="c", request=REQUEST, created=10.0, journal={"e0": [{"index": 0}]}
    ).to_doc()
    older["_id"] = older.pop("id")
    await submissions.insert_one(older)
    sub = await store.submission("s1")
    assert sub is not None and (sub.request, sub.journal) == (REQUEST, {"e0": [{"index": 0}]})

    await store.claim_submission("s1", "w", 10.0, 70.0)
    assert await store.amend_submission("s1", RUNNING, {"journal.e1": [{"index": 1}]})
    sub = await store.submission("s1")
    assert sub is not None
    assert sub.journal == {"e0": [{"index": 0}], "e1": [{"index": 1}]}
    assert sub.request == REQUEST

    # a whole journal replaces the older entries too
    await store.update_submission("s1", RUNNING, {"journal": {"e2": [{"index": 2}]}})
    sub = await store.submission("s1")
    assert sub is not None and sub.journal == {"e2": [{"index": 2}]}
