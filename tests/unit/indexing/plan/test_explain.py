"""explain(plan): one line per clause, every predicate type rendered (debugging and docs)."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from indexing.plan.errors import InvalidSearch
from indexing.plan.explain import explain, explain_predicate
from indexing.plan.parse import parse_search
from indexing.plan.plan import (
    Clause,
    IdIn,
    Predicate,
    RefIn,
    SearchPlan,
    TokenMatch,
    UriMatch,
)
from indexing.registry import SearchParamRegistry

HCN = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn"


def test_ig_report_search_renders_one_line_per_clause(registry: SearchParamRegistry) -> None:
    query = parse_qsl(
        f"patient.identifier={HCN}|5566009041&issued=ge2024-01&status=final,amended"
        "&_include=DiagnosticReport:subject&_sort=-issued&_count=10&_total=accurate",
    )
    plan = parse_search(registry, "DiagnosticReport", query)
    assert explain(plan) == "\n".join(
        [
            "search DiagnosticReport",
            f"  where patient -> Patient (identifier = {HCN}|5566009041)",
            "    and issued ge [2024-01-01T00:00:00.000Z, 2024-01-31T23:59:59.999Z]",
            "    and status = final OR status = amended",
            "  sort -issued",
            "  include DiagnosticReport:subject",
            "  count 10",
            "  total accurate",
        ]
    )


def test_system_search_with_results_parameters() -> None:
    plan = SearchPlan(
        types=(),
        clauses=(Clause((IdIn(("a", "b"), negate=True),)),),
        summary="count",
        elements=("id", "meta"),
    )
    assert explain(plan) == (
        "search all types\n  where _id not in (a, b)\n  count 20\n  summary count\n"
        "  elements id, meta"
    )


RENDERINGS = [
    ("Patient?name=Zo%C3%AB", "name starts 'zoe'"),
    ("Patient?name:exact=Zoë", "name exact 'Zoë'"),
    ("Observation?code:text=Heart", "code:text starts 'heart'"),
    ("Observation?code:not=http://loinc.org|1", "code != http://loinc.org|1"),
    ("Patient?identifier:of-type=s|MR|1", "identifier:of-type = s|MR|1"),
    ("RiskAssessment?probability=gt0.8", "probability gt 0.8 [0.75, 0.85]"),
    (
        "Observation?value-quantity=5.4||mg",
        "value-quantity eq 5.4 [5.35, 5.45] *|mg",
    ),
    ("Observation?subject:identifier=s|v", "subject:identifier = s|v"),
    ("Observation?patient=1", "patient -> Patient/1"),
    ("Patient?gender:missing=true", "gender missing"),
    ("Patient?gender:missing=false", "gender present"),
    (
        "Observation?code-value-quantity=1$lt2",
        "code-value-quantity {code = 1 AND value-quantity lt 2 [1.5, 2.5]}",
    ),
    (
        "Patient?_has:Observation:patient:code=1",
        "has Observation.patient (code = 1)",
    ),
    (
        "Observation?subject:Patient.organization.name=acme",
        "subject -> Patient (organization -> Organization (name starts 'acme'))",
    ),
]


@pytest.mark.parametrize(("url", "line"), RENDERINGS)
def test_predicate_rendering(registry: SearchParamRegistry, url: str, line: str) -> None:
    resource_type, _, query = url.partition("?")
    plan = parse_search(registry, resource_type, parse_qsl(query))
    assert explain_predicate(plan.clauses[0].any_of[0]) == line


@pytest.mark.parametrize(
    ("predicate", "line"),
    [
        (RefIn("subject", ("Patient/1", "Patient/2")), "subject in (Patient/1, Patient/2)"),
        (UriMatch("url", "http://x", "below"), "url below http://x"),
        (TokenMatch("code", "a"), "code = a"),
    ],
)
def test_resolved_predicates_render_too(predicate: Predicate, line: str) -> None:
    assert explain_predicate(predicate) == line


def test_invalid_search_carries_what_the_outcome_needs(registry: SearchParamRegistry) -> None:
    with pytest.raises(InvalidSearch) as raised:
        parse_search(registry, "Patient", [("birthdate", "2024-13")])
    error = raised.value
    assert (error.status, error.code, error.expression) == (400, "invalid", ("birthdate",))
    assert "2024-13" in error.diagnostics and "2024-13" in repr(error)
    with pytest.raises(InvalidSearch) as raised:
        parse_search(registry, "Patient", [("foo", "1")], strict=True)
    assert (raised.value.code, raised.value.expression) == ("not-supported", ("foo",))
