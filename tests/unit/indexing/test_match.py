"""indexing/match.py: a search plan evaluated on one resource's index document gives the answer
a search would (plan.py's semantics, R4 search.html), without an engine."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from indexing.document import index_document
from indexing.extract import extract_values
from indexing.match import UnresolvedPredicate, plan_matches
from indexing.plan.parse import parse_search
from indexing.plan.plan import Chain, Predicate, RefIn
from indexing.registry import SearchParamRegistry

NOW = datetime(2026, 1, 1, tzinfo=UTC)

REPORT: dict[str, Any] = {
    "resourceType": "DiagnosticReport",
    "id": "r1",
    "meta": {"versionId": "2", "lastUpdated": "2025-06-01T10:00:00Z"},
    "status": "amended",
    "code": {"coding": [{"system": "http://loinc.org", "code": "36643-5", "display": "XR Chest"}]},
    "subject": {"reference": "Patient/p1"},
    "performer": [{"reference": "Practitioner/dr1"}],
    "effectiveDateTime": "2025-05-30",
    "conclusion": "No acute findings",
}


def _matches(
    registry: SearchParamRegistry, query: str, resource: dict[str, Any] = REPORT, **kw: Any
) -> bool:
    pairs = [tuple(p.split("=", 1)) for p in query.split("&")] if query else []
    plan = parse_search(registry, "DiagnosticReport", pairs)  # type: ignore[arg-type]
    document = index_document(registry, resource, extract_values(registry, resource))
    return plan_matches(plan, document, NOW, **kw)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", True),
        ("status=amended", True),
        ("status=final,amended", True),
        ("status=final", False),
        ("status:not=final", True),
        ("status:not=amended", False),
        ("code=http://loinc.org|36643-5", True),
        ("code=http://snomed.info/sct|36643-5", False),
        ("code=http://loinc.org|", True),
        ("code:text=xr", True),
        ("patient=Patient/p1", True),
        ("patient=p1", True),
        ("patient=Patient/p2", False),
        ("subject:Patient=p1", True),
        ("subject:Group=p1", False),
        ("performer=Practitioner/dr1", True),
        ("date=2025-05", True),
        ("date=gt2025-05-30", False),
        ("date=ge2025-05-30", True),
        ("date=lt2025-06", True),
        ("date=ne2025-05-30", False),
        ("_lastUpdated=gt2025-05-31", True),
        ("_lastUpdated=lt2025-05-31", False),
        ("_id=r1", True),
        ("_id=r2", False),
        ("issued:missing=true", True),
        ("issued:missing=false", False),
        ("status=amended&patient=Patient/p2", False),
        ("status=amended&patient=Patient/p1", True),
    ],
)
def test_a_plan_matches_one_document_as_a_search_would(
    registry: SearchParamRegistry, query: str, expected: bool
) -> None:
    assert _matches(registry, query) is expected


def test_a_resource_of_another_type_never_matches(registry: SearchParamRegistry) -> None:
    plan = parse_search(registry, "ImagingStudy", [])
    document = index_document(registry, REPORT, extract_values(registry, REPORT))
    assert plan_matches(plan, document, NOW) is False


def test_a_chain_is_refused_without_a_resolver(registry: SearchParamRegistry) -> None:
    with pytest.raises(UnresolvedPredicate):
        _matches(registry, "patient.identifier=http://x|1")


@pytest.mark.parametrize(("refs", "expected"), [(("Patient/p1",), True), (("Patient/p9",), False)])
def test_a_chain_matches_through_the_resolvers_answer(
    registry: SearchParamRegistry, refs: tuple[str, ...], expected: bool
) -> None:
    seen: list[Predicate] = []

    def resolve(predicate: Predicate) -> Predicate:
        seen.append(predicate)
        assert isinstance(predicate, Chain)
        return RefIn(predicate.param, refs)

    assert _matches(registry, "patient.identifier=http://x|1", resolve=resolve) is expected
    assert [p.param for p in seen if isinstance(p, Chain)] == ["patient"]
