"""The `ResourceScan` contract (app/store/port.py), run against every store adapter: the paging
read a reindex uses (types present, current versions in id order, live counts)."""

from __future__ import annotations

from typing import Any

from app.records import Transaction, Write


def resource(type_: str, id_: str, version: int) -> dict[str, Any]:
    return {
        "resourceType": type_,
        "id": id_,
        "meta": {"versionId": str(version), "lastUpdated": "2024-01-01T00:00:00.000Z"},
    }


def put(type_: str, id_: str, version: int = 1) -> Write:
    op = "create" if version == 1 else "update"
    return Write(type_, id_, version, op, resource(type_, id_, version))


async def seed(store: Any) -> None:
    await store.commit(
        Transaction(
            (
                *(put("Patient", f"p{n:02d}") for n in range(25)),
                put("Observation", "o1"),
                put("Practitioner", "pr1"),
            )
        )
    )
    await store.commit(Transaction((put("Patient", "p03", 2),)))
    await store.commit(Transaction((Write("Patient", "p04", 2, "delete", None),)))


async def test_resource_types_names_every_type_with_current_documents(store: Any) -> None:
    assert await store.resource_types() == []
    await seed(store)
    assert await store.resource_types() == ["Observation", "Patient", "Practitioner"]


async def test_scan_pages_in_id_order_without_repeats_or_gaps(store: Any) -> None:
    await seed(store)
    seen: list[str] = []
    after: str | None = None
    while page := await store.scan("Patient", after, 7):
        assert len(page) <= 7
        assert all(r.type == "Patient" for r in page)
        seen += [r.id for r in page]
        after = page[-1].id
    assert seen == [f"p{n:02d}" for n in range(25)]


async def test_scan_answers_current_versions_and_tombstones(store: Any) -> None:
    await seed(store)
    page = {r.id: r for r in await store.scan("Patient", "p02", 2)}
    assert sorted(page) == ["p03", "p04"]
    assert page["p03"].version == 2 and page["p03"].resource is not None
    assert page["p03"].resource["meta"]["versionId"] == "2"
    assert page["p04"].deleted and page["p04"].version == 2


async def test_scan_stays_within_its_type(store: Any) -> None:
    await seed(store)
    assert [r.id for r in await store.scan("Practitioner", None, 10)] == ["pr1"]
    assert await store.scan("Pat", None, 10) == []
    assert await store.scan("Patient", "p24", 10) == []


async def test_count_answers_live_resources(store: Any) -> None:
    await seed(store)
    assert await store.count("Patient") == 24
    assert await store.count("Observation") == 1
    assert await store.count("ImagingStudy") == 0


async def test_changes_counts_the_transactions_writing_a_counted_type(store: Any) -> None:
    def parameter(id_: str, version: int = 1) -> Write:
        return put("SearchParameter", id_, version)

    assert await store.changes("SearchParameter") == 0
    await seed(store)
    assert await store.changes("SearchParameter") == 0
    await store.commit(Transaction((parameter("sp1"),)))
    assert await store.changes("SearchParameter") == 1
    await store.commit(Transaction((parameter("sp1", 2), parameter("sp2"), put("Patient", "x"))))
    assert await store.changes("SearchParameter") == 2
    await store.commit(Transaction((put("Patient", "p01", 2),)))
    assert await store.changes("SearchParameter") == 2
    await store.commit(Transaction((Write("SearchParameter", "sp2", 2, "delete", None),)))
    assert await store.changes("SearchParameter") == 3
