"""Search plan -> Elasticsearch query (indexing/engines/elasticsearch/compile.py).

Exact expected bodies for representative predicates; tests/vectors pin what they answer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from indexing.engines.elasticsearch.compile import compile_query, compile_where, escape_wildcard
from indexing.plan.plan import (
    Chain,
    Clause,
    CompositeMatch,
    DateMatch,
    IdIn,
    Missing,
    NumberMatch,
    Predicate,
    RefIn,
    RefMatch,
    SearchPlan,
    SortKey,
    StringMatch,
    TokenMatch,
    UriMatch,
)
from indexing.registry import SearchParamRegistry

NOT_DELETED = [{"term": {"deleted": True}}]
TIE = [{"resourceType": {"order": "asc"}}, {"id": {"order": "asc"}}]
LOW, HIGH = "2024-03-01T00:00:00.000Z", "2024-03-31T23:59:59.999Z"
DATE = "date.range"


def where(registry: SearchParamRegistry, *predicates: Predicate, type_: str = "Observation") -> Any:
    """The single filter compiled for one clause of `predicates`."""
    plan = SearchPlan(types=(type_,), clauses=(Clause(predicates),))
    query = compile_where(plan, registry, now=datetime(2024, 6, 1, tzinfo=UTC))
    assert query["bool"]["must_not"] == NOT_DELETED
    [only] = query["bool"]["filter"]
    return only


def within(path: str, **bounds: Any) -> dict[str, Any]:
    return {"range": {path: {**bounds, "relation": "within"}}}


def intersects(path: str, **bounds: Any) -> dict[str, Any]:
    return {"range": {path: {**bounds, "relation": "intersects"}}}


def should(*queries: dict[str, Any]) -> dict[str, Any]:
    return {"bool": {"should": list(queries), "minimum_should_match": 1}}


def must_not(query: dict[str, Any]) -> dict[str, Any]:
    return {"bool": {"must_not": [query]}}


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("eq", within(DATE, gte=LOW, lte=HIGH)),
        # ne holds for one value not within the query: a resource without a value never matches
        ("ne", should(intersects(DATE, lt=LOW), intersects(DATE, gt=HIGH))),
        ("gt", intersects(DATE, gt=HIGH)),
        ("lt", intersects(DATE, lt=LOW)),
        ("ge", should(intersects(DATE, gt=HIGH), within(DATE, gte=LOW, lte=HIGH))),
        ("le", should(intersects(DATE, lt=LOW), within(DATE, gte=LOW, lte=HIGH))),
        ("sa", within(DATE, gt=HIGH)),
        ("eb", within(DATE, lt=LOW)),
    ],
)
def test_date_prefixes_are_range_relations(
    registry: SearchParamRegistry, prefix: Any, expected: dict[str, Any]
) -> None:
    assert where(registry, DateMatch("date", prefix, LOW, HIGH)) == expected


def test_date_ap_widens_by_a_tenth_of_the_distance_to_now(registry: SearchParamRegistry) -> None:
    # now = 2024-06-01; the query's middle is 61.5 days before it: 6.15 days (6 d 3 h 36 min)
    # each side (indexing/plan/approximate.py, shared with the SQLite compiler).
    query = where(registry, DateMatch("date", "ap", "2024-03-31T00:00:00.000Z", HIGH))
    assert query == intersects(DATE, gte="2024-03-24T20:23:59.999Z", lte="2024-04-07T03:35:59.999Z")


def test_number_ap_widens_by_a_tenth_of_the_value(registry: SearchParamRegistry) -> None:
    query = where(
        registry, NumberMatch("probability", "ap", 100, 99.5, 100.5), type_="RiskAssessment"
    )
    assert query == intersects("probability.range", gte=90.0, lte=110.0)


def quantity_values(*filters: dict[str, Any]) -> dict[str, Any]:
    """Every filter must hold for one value of `value-quantity` (a nested document)."""
    return {"nested": {"path": "value-quantity", "query": {"bool": {"filter": list(filters)}}}}


def test_quantity_is_nested_with_system_and_code(registry: SearchParamRegistry) -> None:
    match = NumberMatch(
        "value-quantity", "gt", 5.4, 5.35, 5.45, "http://unitsofmeasure.org", "mg", quantity=True
    )
    assert where(registry, match) == quantity_values(
        intersects("value-quantity.range", gt=5.45),
        {"term": {"value-quantity.system": "http://unitsofmeasure.org"}},
        {"term": {"value-quantity.code": "mg"}},
    )


def test_quantity_without_system_matches_code_or_unit(registry: SearchParamRegistry) -> None:
    # `ne` is inside the nested query with the unit: a value in mg that is not 5.4
    match = NumberMatch("value-quantity", "ne", 5.4, 5.35, 5.45, None, "mg", quantity=True)
    assert where(registry, match) == quantity_values(
        should(
            intersects("value-quantity.range", lt=5.35),
            intersects("value-quantity.range", gt=5.45),
        ),
        should(
            {"term": {"value-quantity.code": "mg"}},
            {"term": {"value-quantity.unit": "mg"}},
        ),
    )


@pytest.mark.parametrize(
    ("predicate", "expected"),
    [
        (StringMatch("name", "zoe"), {"prefix": {"name.norm": "zoe"}}),
        (StringMatch("name", "Zoë", "exact"), {"term": {"name.exact": "Zoë"}}),
        (
            StringMatch("name", "a*b?c\\", "contains"),
            {"wildcard": {"name.norm": {"value": "*a\\*b\\?c\\\\*"}}},
        ),
        (TokenMatch("gender", "female"), {"term": {"gender.forms": "female"}}),
        (
            TokenMatch("gender", "female", negate=True),
            must_not({"term": {"gender.forms": "female"}}),
        ),
        (TokenMatch("language", "engl", text=True), {"prefix": {"language.text": "engl"}}),
        (
            TokenMatch("identifier", "http://t|MR|123", of_type=True),
            {"term": {"identifier.of_type": "http://t|MR|123"}},
        ),
        (
            RefMatch("organization", "Organization/o1"),
            {"term": {"organization.ref": "Organization/o1"}},
        ),
        (RefMatch("organization", "o1"), {"term": {"organization.id": "o1"}}),
        (
            RefMatch("general-practitioner", "http://h/fhir/Practitioner/1"),
            should(
                {"term": {"general-practitioner.url": "http://h/fhir/Practitioner/1"}},
                {"term": {"general-practitioner.ref": "http://h/fhir/Practitioner/1"}},
            ),
        ),
        (
            RefMatch("organization", "http://ids|42", identifier=True),
            {"term": {"organization.identifier": "http://ids|42"}},
        ),
        (
            RefIn("organization", ("Organization/a", "Organization/b")),
            {"terms": {"organization.ref": ["Organization/a", "Organization/b"]}},
        ),
        (RefIn("organization", ()), {"match_none": {}}),
        (IdIn(("p1", "p2")), {"terms": {"id": ["p1", "p2"]}}),
        (IdIn(("p1",), negate=True), must_not({"terms": {"id": ["p1"]}})),
        (IdIn(()), {"match_none": {}}),
        (Missing("birthdate", True), must_not({"exists": {"field": "birthdate"}})),
        (Missing("birthdate", False), {"exists": {"field": "birthdate"}}),
        (UriMatch("_profile", "http://p/a"), {"term": {"_profile.uri": "http://p/a"}}),
        (UriMatch("_profile", "http://p", "below"), {"prefix": {"_profile.uri": "http://p"}}),
        (UriMatch("_profile", "abc", "above"), {"terms": {"_profile.uri": ["a", "ab", "abc"]}}),
    ],
)
def test_patient_predicates(
    registry: SearchParamRegistry, predicate: Predicate, expected: dict[str, Any]
) -> None:
    assert where(registry, predicate, type_="Patient") == expected


def test_missing_on_a_nested_parameter_is_nested(registry: SearchParamRegistry) -> None:
    assert where(registry, Missing("value-quantity", False)) == {
        "nested": {"path": "value-quantity", "query": {"exists": {"field": "value-quantity"}}}
    }


def test_composite_parts_hold_within_one_nested_value(registry: SearchParamRegistry) -> None:
    match = CompositeMatch(
        "code-value-quantity",
        (
            TokenMatch("code", "http://loinc.org|8480-6"),
            NumberMatch("value-quantity", "gt", 100, 99.5, 100.5, quantity=True),
        ),
    )
    assert where(registry, match) == {
        "nested": {
            "path": "code-value-quantity",
            "query": {
                "bool": {
                    "filter": [
                        {"term": {"code-value-quantity.code.forms": "http://loinc.org|8480-6"}},
                        intersects("code-value-quantity.value-quantity.range", gt=100.5),
                    ]
                }
            },
        }
    }


def test_or_within_a_clause_and_between_clauses(registry: SearchParamRegistry) -> None:
    plan = SearchPlan(
        types=("Patient",),
        clauses=(
            Clause((TokenMatch("gender", "male"), TokenMatch("gender", "female"))),
            Clause((StringMatch("family", "smi"),)),
        ),
    )
    assert compile_where(plan, registry) == {
        "bool": {
            "filter": [
                should({"term": {"gender.forms": "male"}}, {"term": {"gender.forms": "female"}}),
                {"prefix": {"family.norm": "smi"}},
            ],
            "must_not": NOT_DELETED,
        }
    }


def test_query_body_sort_page_and_total(registry: SearchParamRegistry) -> None:
    plan = SearchPlan(
        types=("Observation",),
        sort=(SortKey("date", descending=True), SortKey("value-quantity"), SortKey("_id")),
        count=10,
    )
    body = compile_query(plan, registry, after=["x", 1], with_total=True)
    assert body == {
        "query": {"bool": {"filter": [], "must_not": NOT_DELETED}},
        "sort": [
            {
                "date.lte": {
                    "order": "desc",
                    "mode": "max",
                    "missing": "_last",
                    "unmapped_type": "date",
                }
            },
            {
                "value-quantity.value": {
                    "order": "asc",
                    "mode": "min",
                    "missing": "_last",
                    "nested": {"path": "value-quantity"},
                    "unmapped_type": "double",
                }
            },
            {"id": {"order": "asc"}},
            *TIE,
        ],
        "size": 10,
        "track_total_hits": True,
        "_source": ["id", "resourceType", "versionId"],
        "search_after": ["x", 1],
    }


def test_date_sort_ascending_uses_interval_start(registry: SearchParamRegistry) -> None:
    body = compile_query(SearchPlan(types=("Observation",), sort=(SortKey("date"),)), registry)
    assert body["sort"][0] == {
        "date.gte": {"order": "asc", "mode": "min", "missing": "_last", "unmapped_type": "date"}
    }
    assert body["track_total_hits"] is False and "search_after" not in body


def test_lastupdated_sort_uses_the_bookkeeping_field(registry: SearchParamRegistry) -> None:
    plan = SearchPlan(types=(), sort=(SortKey("_lastUpdated", descending=True),))
    assert compile_query(plan, registry)["sort"][0] == {
        "lastUpdated": {"order": "desc", "missing": "_last", "unmapped_type": "date"}
    }


def test_composite_sort_is_refused(registry: SearchParamRegistry) -> None:
    plan = SearchPlan(types=("Observation",), sort=(SortKey("code-value-quantity"),))
    with pytest.raises(ValueError, match="cannot sort"):
        compile_query(plan, registry)


def test_unresolved_chain_is_refused(registry: SearchParamRegistry) -> None:
    chain = Chain("subject", ("Patient",), Clause((StringMatch("name", "x"),)))
    with pytest.raises(ValueError, match="unresolved Chain"):
        where(registry, chain)


def test_escape_wildcard() -> None:
    assert escape_wildcard("a*b?c\\d") == "a\\*b\\?c\\\\d"
