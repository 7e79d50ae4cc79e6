"""The `SnapshotScan` contract (app/store/port.py), run on every store: a scan as of a commit
sequence answers each resource's version as of that commit, whatever was committed after it,
and pages without repeating or skipping a resource."""

from __future__ import annotations

from typing import Any

from app.records import Transaction, Write


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


async def scan_all(store: Any, seq: int, limit: int) -> list[tuple[str, int, bool]]:
    out: list[tuple[str, int, bool]] = []
    after = None
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
