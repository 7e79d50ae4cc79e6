"""The parameter numbers of the embedded index (indexing/engines/sqlite/_names.py): a parameter no
resource of the searched types has a value of, and two processes numbering the same file."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from indexing.document import IndexOp, index_document
from indexing.engines.sqlite.adapter import SqliteSearchIndex
from indexing.extract import extract_values
from indexing.plan.plan import Clause, Missing, RefMatch, SearchPlan, StringMatch, TokenMatch
from indexing.registry import SearchParamRegistry

META = {"versionId": "1", "lastUpdated": "2024-06-01T00:00:00Z"}


def op(registry: SearchParamRegistry, resource: dict[str, Any]) -> IndexOp:
    resource = {**resource, "meta": META}
    document = index_document(registry, resource, extract_values(registry, resource))
    return IndexOp(resource["resourceType"], resource["id"], 1, document)


async def ids(index: SqliteSearchIndex, types: tuple[str, ...], *clauses: Clause) -> list[str]:
    page = await index.search(SearchPlan(types=types, clauses=clauses), with_total=True)
    assert page.total == len(page.hits)
    return [hit.id for hit in page.hits]


async def test_a_parameter_without_values_matches_nothing_and_is_missing_everywhere(
    tmp_path: Path, registry: SearchParamRegistry
) -> None:
    index = await SqliteSearchIndex.open(tmp_path / "index.sqlite3", registry)
    try:
        await index.write([op(registry, {"resourceType": "Patient", "id": "p1"})])
        assert await ids(index, ("Patient",), Clause((StringMatch("family", "doe"),))) == []
        assert await ids(index, ("Patient",), Clause((Missing("family", True),))) == ["p1"]
        assert await ids(index, ("Patient",), Clause((Missing("family", False),))) == []
        negated = Clause((TokenMatch("gender", "male", negate=True),))
        assert await ids(index, ("Patient",), negated) == ["p1"]
    finally:
        await index.close()


async def test_a_parameter_shared_by_types_matches_only_the_searched_ones(
    tmp_path: Path, registry: SearchParamRegistry
) -> None:
    """`patient` is a parameter of both types here: each type's values have a number of their
    own, so a search of one type never sees the other's (and a search of none sees both)."""
    index = await SqliteSearchIndex.open(tmp_path / "index.sqlite3", registry)
    subject = {"subject": {"reference": "Patient/p1"}}
    try:
        await index.write(
            [
                op(
                    registry,
                    {
                        "resourceType": "Observation",
                        "id": "o1",
                        "status": "final",
                        "code": {"text": "x"},
                        **subject,
                    },
                ),
                op(
                    registry,
                    {
                        "resourceType": "DiagnosticReport",
                        "id": "r1",
                        "status": "final",
                        "code": {"text": "x"},
                        **subject,
                    },
                ),
            ]
        )
        by_patient = Clause((RefMatch("patient", "Patient/p1"),))
        assert await ids(index, ("DiagnosticReport",), by_patient) == ["r1"]
        assert await ids(index, ("Observation",), by_patient) == ["o1"]
        assert await ids(index, (), by_patient) == ["r1", "o1"]  # (type, id) order
        # a bare id is any of the parameter's target types
        assert await ids(index, ("Observation",), Clause((RefMatch("subject", "p1"),))) == ["o1"]
        assert await ids(index, ("Observation",), Clause((RefMatch("subject", "p2"),))) == []
    finally:
        await index.close()


async def test_a_process_finds_parameters_another_numbered_in_the_same_file(
    tmp_path: Path, registry: SearchParamRegistry
) -> None:
    path = tmp_path / "index.sqlite3"
    first = await SqliteSearchIndex.open(path, registry)
    second = await SqliteSearchIndex.open(path, registry)
    family = Clause((StringMatch("family", "doe"),))
    try:
        await first.write([op(registry, {"resourceType": "Patient", "id": "p1"})])
        assert await ids(second, ("Patient",), family) == []
        # `family` gets its number in the first process, after the second read the numbers
        await first.write(
            [op(registry, {"resourceType": "Patient", "id": "p2", "name": [{"family": "Doe"}]})]
        )
        assert await ids(second, ("Patient",), family) == ["p2"]
        # and the second writes values of it under the same number, not a new one
        await second.write(
            [op(registry, {"resourceType": "Patient", "id": "p3", "name": [{"family": "Doe"}]})]
        )
        assert await ids(first, ("Patient",), family) == ["p2", "p3"]
    finally:
        await first.close()
        await second.close()
    db = sqlite3.connect(path)
    try:
        numbered = db.execute("SELECT type, param FROM idx_name WHERE param = 'family'")
        assert numbered.fetchall() == [("Patient", "family")]
    finally:
        db.close()
