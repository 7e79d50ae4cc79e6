"""The `SnapshotScan` contract (app/store/port.py), run on every store: a scan as of a commit
sequence answers each resource's version as of that commit, whatever was committed after it,
and pages without repeating or skipping a resource.

The MongoDB store scans in one of two ways (`MongoResourceStore.scan_as_of`), chosen by the
server: by `_id` ranges (MongoDB, mongomock) or by an id directory (FerretDB); `mongomock-directory`
runs the directory on mongomock, so that both are tested without the services."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.records import Transaction, Write
from app.store.mongo import MongoResourceStore
from app.store.port import VersionConflict
from tests.contract.conftest import STORES, open_store


@pytest.fixture(params=[*STORES, "mongomock-directory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    if request.param == "mongomock-directory":
        from mongomock_motor import AsyncMongoMockClient

        database = AsyncMongoMockClient()[f"t{uuid.uuid4().hex[:8]}"]
        yield MongoResourceStore(database, indexed_ranges=False)
        return
    opened, cleanup = await open_store(request.param, tmp_path)
    try:
        yield opened
    finally:
        await cleanup()


def write(id_: str, version: int, op: str = "update", family: str = "Doe") -> Write:
    resource = None
    if op != "delete":
        resource = {
            "resourceType": "Patient",
            "id": id_,
            "meta": {"versionId": str(version), "lastUpdated": f"2024-01-0{version}T00:00:00.000Z"},
            "name": [{"family": family}],
        }
    return Write("Patient", id_, version, op, resource)  # type: ignore[arg-type]


async def scan_all(
    store: Any, seq: int, limit: int, after: str | None = None
) -> list[tuple[str, int, bool]]:
    out: list[tuple[str, int, bool]] = []
    for _ in range(20):
        page = await store.scan_as_of("Patient", seq, after, limit)
        assert len(page.resources) <= limit
        out += [(r.id, r.version, r.deleted) for r in page.resources]
        if page.after is None:
            return out
        after = page.after
    raise AssertionError("the scan did not end")


async def test_a_scan_as_of_a_sequence_ignores_later_commits(store: Any) -> None:
    assert await store.sequence() == 0
    await store.commit(Transaction((write("a", 1, "create"), write("b", 1, "create"))))
    await store.commit(Transaction((write("c", 1, "create"), write("e", 1, "create"))))
    await store.commit(Transaction((write("e", 2, "delete"),)))
    seq = await store.sequence()
    assert seq >= 3
    assert await store.settled(seq)
    # after the snapshot: a changed, b deleted, d created
    await store.commit(Transaction((write("a", 2, family="Roe"),)))
    await store.commit(Transaction((write("b", 2, "delete"),)))
    await store.commit(Transaction((write("d", 1, "create"),)))
    assert await store.sequence() > seq
    expected = [("a", 1, False), ("b", 1, False), ("c", 1, False), ("e", 2, True)]
    for limit in (1, 2, 3, 10):
        assert await scan_all(store, seq, limit) == expected
    page = await store.scan_as_of("Patient", seq, None, 10)
    assert page.resources[0].resource["name"] == [{"family": "Doe"}]
    now = await store.sequence()
    assert await scan_all(store, now, 2) == [
        ("a", 2, False),
        ("b", 2, True),
        ("c", 1, False),
        ("d", 1, False),
        ("e", 2, True),
    ]


async def test_a_scan_of_a_type_sees_no_other_type(store: Any) -> None:
    await store.commit(Transaction((write("a", 1, "create"),)))
    seq = await store.sequence()
    page = await store.scan_as_of("Observation", seq, None, 10)
    assert (page.resources, page.after) == ([], None)


async def test_commits_between_pages_do_not_change_the_snapshot(store: Any) -> None:
    """A scan continued after later commits still answers the snapshot: a resource created
    after it in the range still to come is not there, one changed or deleted is as it was."""
    await store.commit(Transaction(tuple(write(i, 1, "create") for i in "acegik")))
    seq = await store.sequence()
    first = await store.scan_as_of("Patient", seq, None, 2)
    assert [(r.id, r.version) for r in first.resources] == [("a", 1), ("c", 1)]
    assert first.after == "c"
    await store.commit(Transaction((write("d", 1, "create"), write("h", 1, "create"))))
    await store.commit(Transaction((write("e", 2, family="Roe"), write("k", 2, "delete"))))
    await store.commit(Transaction((write("b", 1, "create"), write("z", 1, "create"))))
    rest = await scan_all(store, seq, 2, after=first.after)
    assert rest == [("e", 1, False), ("g", 1, False), ("i", 1, False), ("k", 1, False)]
    page = await store.scan_as_of("Patient", seq, "d", 1)
    assert page.resources[0].resource["name"] == [{"family": "Doe"}]


async def test_a_scan_continues_after_any_id(store: Any) -> None:
    """`after` need not be an id the scan answered (a checkpoint from another process, or a
    resource not in the snapshot): the scan goes on from the next greater id."""
    await store.commit(Transaction(tuple(write(i, 1, "create") for i in ("a1", "b1", "c1"))))
    seq = await store.sequence()
    assert await scan_all(store, seq, 10, after="b") == [("b1", 1, False), ("c1", 1, False)]
    assert await scan_all(store, seq, 10, after="c1") == []
    assert await scan_all(store, seq, 10, after="zz") == []


async def test_the_snapshot_types_include_every_type_it_holds(store: Any) -> None:
    """Every type with a resource in the snapshot, a deleted one too; a type first written
    after it may be named as well (it scans empty)."""
    assert await store.snapshot_types(await store.sequence()) == []
    organization = Write("Organization", "o", 1, "create", {"resourceType": "Organization"})
    await store.commit(Transaction((write("a", 1, "create"), organization)))
    await store.commit(Transaction((Write("Organization", "o", 2, "delete", None),)))
    seq = await store.sequence()
    await store.commit(Transaction((Write("Basic", "b", 1, "create", {"resourceType": "Basic"}),)))
    assert set(await store.snapshot_types(seq)) - {"Basic"} == {"Organization", "Patient"}
    assert await scan_all(store, seq, 10) == [("a", 1, False)]
    page = await store.scan_as_of("Basic", seq, None, 10)
    assert (page.resources, page.after) == ([], None)


async def test_a_rolled_back_transaction_adds_nothing(store: Any) -> None:
    await store.commit(Transaction((write("a", 1, "create"),)))
    basic = Write("Basic", "x", 1, "create", {"resourceType": "Basic"})
    with pytest.raises(VersionConflict):
        await store.commit(Transaction((basic, write("a", 3))))  # a is at version 1
    seq = await store.sequence()
    assert await store.settled(seq)
    assert set(await store.snapshot_types(seq)) - {"Basic"} == {"Patient"}
    assert await scan_all(store, seq, 10) == [("a", 1, False)]
    page = await store.scan_as_of("Basic", seq, None, 10)
    assert (page.resources, page.after) == ([], None)
