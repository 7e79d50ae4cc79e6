"""The `ResourceStore` / `CommitLog` contract (app/store/port.py), run on every adapter."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.records import Claim, Transaction, Write
from app.store.port import ClaimTaken, HistoryQuery, VersionConflict


def patient(id_: str, version: int, at: str, family: str = "Doe") -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": id_,
        "meta": {"versionId": str(version), "lastUpdated": at},
        "name": [{"family": family}],
    }


def put(id_: str, version: int, at: str, family: str = "Doe", **kw: Any) -> Write:
    return Write(
        "Patient",
        id_,
        version,
        "create" if version == 1 else "update",
        patient(id_, version, at, family),
        **kw,
    )


async def test_commit_then_read_answers_the_current_version(store: Any) -> None:
    await store.commit(Transaction((put("a", 1, "2024-01-01T00:00:00.000Z"),)))
    await store.commit(Transaction((put("a", 2, "2024-01-02T00:00:00.000Z", "Roe"),)))
    current = await store.read("Patient", "a")
    assert (current.version, current.deleted) == (2, False)
    assert current.resource["name"] == [{"family": "Roe"}]
    assert (await store.vread("Patient", "a", 1)).resource["name"] == [{"family": "Doe"}]
    assert await store.vread("Patient", "a", 3) is None
    assert await store.read("Patient", "missing") is None


async def test_vread_many_answers_the_committed_versions_asked_for(store: Any) -> None:
    await store.commit(Transaction((put("a", 1, "2024-01-01T00:00:00.000Z"),)))
    await store.commit(Transaction((put("a", 2, "2024-01-02T00:00:00.000Z", "Roe"),)))
    await store.commit(Transaction((put("b", 1, "2024-01-03T00:00:00.000Z", "Poe"),)))
    with pytest.raises(VersionConflict):  # refused: its version must not be answered
        await store.commit(Transaction((put("c", 1, "2024-01-04T00:00:00.000Z"), put("b", 1, "x"))))
    keys = [("Patient", "a", 2), ("Patient", "a", 1), ("Patient", "b", 1), ("Patient", "a", 1)]
    found = await store.vread_many([*keys, ("Patient", "a", 3), ("Patient", "c", 1)])
    assert sorted((s.id, s.version, s.resource["name"][0]["family"]) for s in found) == [
        ("a", 1, "Doe"),
        ("a", 2, "Roe"),
        ("b", 1, "Poe"),
    ]
    assert await store.vread_many([]) == []


async def test_a_version_is_taken_once(store: Any) -> None:
    await store.commit(Transaction((put("a", 1, "2024-01-01T00:00:00.000Z"),)))
    with pytest.raises(VersionConflict):
        await store.commit(Transaction((put("a", 1, "2024-01-01T00:00:01.000Z"),)))
    with pytest.raises(VersionConflict):
        await store.commit(Transaction((put("a", 3, "2024-01-01T00:00:01.000Z"),)))
    assert (await store.read("Patient", "a")).version == 1


async def test_a_failing_write_leaves_nothing_of_its_transaction(store: Any) -> None:
    await store.commit(Transaction((put("a", 1, "2024-01-01T00:00:00.000Z"),)))
    tx = Transaction(
        (put("b", 1, "2024-01-01T00:00:01.000Z"), put("a", 1, "2024-01-01T00:00:01.000Z"))
    )
    with pytest.raises(VersionConflict):
        await store.commit(tx)
    assert await store.read("Patient", "b") is None
    assert await store.vread("Patient", "b", 1) is None
    history = await store.history(HistoryQuery(type="Patient"))
    assert [(h.id, h.version) for h in history] == [("a", 1)]


async def test_concurrent_writers_of_one_version_exactly_one_wins(store: Any) -> None:
    await store.commit(Transaction((put("a", 1, "2024-01-01T00:00:00.000Z"),)))
    results = await asyncio.gather(
        *[
            store.commit(Transaction((put("a", 2, "2024-01-02T00:00:00.000Z", f"F{i}"),)))
            for i in range(20)
        ],
        return_exceptions=True,
    )
    assert sum(1 for r in results if isinstance(r, int)) == 1
    assert sum(1 for r in results if isinstance(r, VersionConflict)) == 19
    assert (await store.read("Patient", "a")).version == 2


async def test_delete_leaves_a_tombstone_in_history(store: Any) -> None:
    await store.commit(Transaction((put("a", 1, "2024-01-01T00:00:00.000Z"),)))
    await store.commit(Transaction((Write("Patient", "a", 2, "delete", None),)))
    current = await store.read("Patient", "a")
    assert (current.version, current.deleted, current.resource) == (2, True, None)
    history = await store.history(HistoryQuery(type="Patient", id="a"))
    assert [(h.version, h.deleted) for h in history] == [(2, True), (1, False)]


async def test_history_orders_newest_first_and_pages_by_keyset(store: Any) -> None:
    for i, at in enumerate(["2024-01-01", "2024-01-03", "2024-01-02"]):
        await store.commit(Transaction((put(f"p{i}", 1, f"{at}T00:00:00.000Z"),)))
    first = await store.history(HistoryQuery(count=2))
    assert [h.id for h in first] == ["p1", "p2"]
    last = first[-1]
    rest = await store.history(
        HistoryQuery(count=2, before=(last.last_updated, last.type, last.id, last.version))
    )
    assert [h.id for h in rest] == ["p0"]
    since = await store.history(HistoryQuery(since="2024-01-02T00:00:00.000Z"))
    assert [h.id for h in since] == ["p1", "p2"]


async def test_history_reaches_past_a_long_run_of_versions(store: Any) -> None:
    # more versions than the MongoDB store reads (and checks the decisions of) in one chunk
    writes = tuple(
        put(f"q{i:03d}", 1, f"2024-03-01T00:{i // 60:02d}:{i % 60:02d}.000Z") for i in range(250)
    )
    await store.commit(Transaction(writes[:130]))
    await store.commit(Transaction(writes[130:]))
    newest_first = [f"q{i:03d}" for i in reversed(range(250))]
    assert [h.id for h in await store.history(HistoryQuery(count=1000))] == newest_first
    assert [h.id for h in await store.history(HistoryQuery(count=205))] == newest_first[:205]


async def test_history_at_includes_the_version_current_then(store: Any) -> None:
    await store.commit(Transaction((put("a", 1, "2024-01-01T00:00:00.000Z"),)))
    await store.commit(Transaction((put("a", 2, "2024-01-05T00:00:00.000Z"),)))
    await store.commit(Transaction((put("a", 3, "2024-01-09T00:00:00.000Z"),)))
    at = await store.history(HistoryQuery(type="Patient", id="a", at="2024-01-06T00:00:00.000Z"))
    assert [h.version for h in at] == [3, 2]


async def test_find_by_identifier_answers_live_resources_per_token(store: Any) -> None:
    await store.commit(
        Transaction(
            (
                put("a", 1, "2024-01-01T00:00:00.000Z", identifiers=("s|1", "1")),
                put("b", 1, "2024-01-01T00:00:00.000Z", identifiers=("s|1", "1", "t|2", "2")),
                put("c", 1, "2024-01-01T00:00:00.000Z", identifiers=("s|3", "3")),
            )
        )
    )
    await store.commit(Transaction((Write("Patient", "c", 2, "delete", None),)))
    found = await store.find_by_identifier("Patient", ["s|1", "2", "s|3", "x|9"])
    assert dict(found) == {"s|1": ["a", "b"], "2": ["b"], "s|3": [], "x|9": []}
    assert dict(await store.find_by_identifier("Observation", ["s|1"])) == {"s|1": []}


async def test_find_by_identifiers_answers_each_type_apart(store: Any) -> None:
    """The same token on resources of two types: each type answers its own; a deleted one and
    a type with none answer nothing."""

    def organization(id_: str, version: int, *identifiers: str) -> Write:
        body = {"resourceType": "Organization", "id": id_, "meta": {"versionId": str(version)}}
        op = "create" if version == 1 else "update"
        return Write("Organization", id_, version, op, body, identifiers=identifiers)

    await store.commit(
        Transaction(
            (
                put("a", 1, "2024-01-01T00:00:00.000Z", identifiers=("s|1",)),
                organization("o1", 1, "s|1", "u|7"),
                organization("o2", 1, "u|7"),
            )
        )
    )
    await store.commit(Transaction((Write("Organization", "o2", 2, "delete", None),)))
    found = await store.find_by_identifiers(
        {"Patient": ["s|1", "u|7"], "Organization": ["u|7", "s|1"], "Observation": ["s|1"]}
    )
    assert {t: dict(by_token) for t, by_token in found.items()} == {
        "Patient": {"s|1": ["a"], "u|7": []},
        "Organization": {"u|7": ["o1"], "s|1": ["o1"]},
        "Observation": {"s|1": []},
    }
    assert dict(await store.find_by_identifiers({})) == {}


async def test_find_by_identifier_follows_identifiers_across_transactions(store: Any) -> None:
    await store.commit(
        Transaction((put("a", 1, "2024-01-01T00:00:00.000Z", identifiers=("s|1",)),))
    )
    await store.commit(
        Transaction((put("b", 1, "2024-01-02T00:00:00.000Z", identifiers=("s|1",)),))
    )
    # `a` drops s|1 for s|2, then takes s|1 back
    await store.commit(
        Transaction((put("a", 2, "2024-01-03T00:00:00.000Z", identifiers=("s|2",)),))
    )
    found = await store.find_by_identifier("Patient", ["s|1", "s|2"])
    assert dict(found) == {"s|1": ["b"], "s|2": ["a"]}
    await store.commit(
        Transaction((put("a", 3, "2024-01-04T00:00:00.000Z", identifiers=("s|1",)),))
    )
    found = await store.find_by_identifier("Patient", ["s|1", "s|2"])
    assert dict(found) == {"s|1": ["a", "b"], "s|2": []}


async def test_a_claim_is_taken_once_and_stale_claims_are_taken_over(store: Any) -> None:
    claim_a = Claim("Patient", "s|1", "Patient/a")
    await store.commit(
        Transaction((put("a", 1, "2024-01-01T00:00:00.000Z", identifiers=("s|1",)),), (claim_a,))
    )
    with pytest.raises(ClaimTaken):
        await store.commit(
            Transaction(
                (put("b", 1, "2024-01-01T00:00:00.000Z"),), (Claim("Patient", "s|1", "Patient/b"),)
            )
        )
    assert await store.read("Patient", "b") is None
    # Once the holder no longer carries the identifier, the claim is stale.
    await store.commit(Transaction((put("a", 2, "2024-01-02T00:00:00.000Z"),)))
    await store.commit(
        Transaction(
            (put("b", 1, "2024-01-03T00:00:00.000Z", identifiers=("s|1",)),),
            (Claim("Patient", "s|1", "Patient/b"),),
        )
    )
    assert dict(await store.find_by_identifier("Patient", ["s|1"])) == {"s|1": ["b"]}


async def test_concurrent_claims_exactly_one_wins(store: Any) -> None:
    results = await asyncio.gather(
        *[
            store.commit(
                Transaction(
                    (put(f"p{i}", 1, "2024-01-01T00:00:00.000Z", identifiers=("s|1",)),),
                    (Claim("Patient", "s|1", f"Patient/p{i}"),),
                )
            )
            for i in range(10)
        ],
        return_exceptions=True,
    )
    assert sum(1 for r in results if isinstance(r, int)) == 1
    assert sum(1 for r in results if isinstance(r, ClaimTaken)) == 9
    assert len((await store.find_by_identifier("Patient", ["s|1"]))["s|1"]) == 1


async def test_commit_log_is_the_indexing_outbox(store: Any) -> None:
    seq1 = await store.commit(Transaction((put("a", 1, "2024-01-01T00:00:00.000Z"),)))
    seq2 = await store.commit(
        Transaction(
            (put("a", 2, "2024-01-02T00:00:00.000Z"), put("b", 1, "2024-01-02T00:00:00.000Z")),
            origin="job-1",
        )
    )
    pending = await store.unindexed(10)
    assert [(c.seq, c.refs) for c in pending] == [
        (seq1, (("Patient", "a", 1),)),
        (seq2, (("Patient", "a", 2), ("Patient", "b", 1))),
    ]
    assert await store.oldest_unindexed() is not None
    assert [c.seq for c in await store.unindexed(10, after=seq1)] == [seq2]
    assert [c.seq for c in await store.unindexed(1)] == [seq1]
    assert await store.unindexed(10, after=seq2) == []
    await store.mark_indexed([seq1])
    assert [c.seq for c in await store.unindexed(10)] == [seq2]
    await store.mark_indexed([seq2])
    assert await store.unindexed(10) == []
    assert await store.oldest_unindexed() is None
    assert await store.committed_origin("job-1") == seq2
    assert await store.committed_origin("job-2") is None


async def test_read_many_answers_current_versions(store: Any) -> None:
    await store.commit(
        Transaction(
            (put("a", 1, "2024-01-01T00:00:00.000Z"), put("b", 1, "2024-01-01T00:00:00.000Z"))
        )
    )
    found = await store.read_many([("Patient", "a"), ("Patient", "b"), ("Patient", "zz")])
    assert sorted(f.id for f in found) == ["a", "b"]
