"""The embedded store keeps a submission's request, result and journal entries apart from its
state, so that a change of state rewrites only the small state document. A data dir of the
layout before (everything in one document) is read as it is, and each of its submissions is
split the first time it changes."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import orjson

from app.store.names import SUBMISSION_PARTS, SUBMISSIONS
from app.store.port import Submission
from app.store.sqlite import SqliteResourceStore

OLD_TABLE = f"""
CREATE TABLE {SUBMISSIONS} (
  id TEXT PRIMARY KEY, state TEXT NOT NULL, created REAL NOT NULL, not_before REAL NOT NULL,
  lease_until REAL NOT NULL, expires REAL, cb_state TEXT, cb_next REAL, doc BLOB NOT NULL
) WITHOUT ROWID
"""
REQUEST = {"interaction": "transaction", "base": "http://x/fhir", "body": {"entry": [1, 2]}}


def old_submission() -> Submission:
    return Submission(
        id="s1",
        contributor="c",
        request=REQUEST,
        created=10.0,
        journal={"e0": [{"index": 0}]},
        result=None,
    )


def write_old_layout(path: Path, sub: Submission) -> None:
    db = sqlite3.connect(path)
    db.execute(OLD_TABLE)
    db.execute(
        f"INSERT INTO {SUBMISSIONS} VALUES (?, ?, ?, ?, ?, NULL, NULL, NULL, ?)",
        (
            sub.id,
            sub.state,
            sub.created,
            sub.not_before,
            sub.lease_until,
            orjson.dumps(sub.to_doc()),
        ),
    )
    db.commit()
    db.close()


def stored_rows(path: Path) -> tuple[dict[str, object], dict[str, bytes]]:
    """The state document, and the parts by key."""
    db = sqlite3.connect(path)
    (doc,) = db.execute(f"SELECT doc FROM {SUBMISSIONS}").fetchone()
    parts = dict(db.execute(f"SELECT key, body FROM {SUBMISSION_PARTS}").fetchall())
    db.close()
    return orjson.loads(doc), parts


async def test_a_change_of_state_leaves_the_request_where_it_was_written(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    store = await SqliteResourceStore.open(path)
    sub = replace(old_submission(), journal={})
    await store.submit(sub)
    written = stored_rows(path)[1]["request"]
    await store.claim_submission("s1", "w", 10.0, 70.0)
    await store.update_submission("s1", {"owner": "w"}, {"journal.e0": [{"index": 0}]})
    doc, parts = stored_rows(path)
    await store.close()
    assert set(doc) & {"request", "result", "journal"} == set()
    assert sorted(parts) == ["journal.e0", "request"]
    assert parts["request"] == written and orjson.loads(written) == REQUEST


async def test_a_submission_of_the_older_layout_is_read_whole_and_split_when_it_changes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.sqlite3"
    sub = old_submission()
    write_old_layout(path, sub)
    store = await SqliteResourceStore.open(path)
    assert await store.submission("s1") == sub
    claimed = await store.claim_submission("s1", "w", 10.0, 70.0)
    assert claimed == replace(sub, state="running", owner="w", lease_until=70.0, updated=10.0)
    doc, parts = stored_rows(path)
    assert set(doc) & {"request", "result", "journal"} == set()
    assert sorted(parts) == ["journal.e0", "request"]
    assert orjson.loads(parts["request"]) == REQUEST
    done = await store.update_submission(
        "s1", {"owner": "w"}, {"state": "done", "result": {"status": 200}}
    )
    assert (
        await store.submission("s1")
        == done
        == replace(claimed, state="done", result={"status": 200})
    )
    await store.close()
