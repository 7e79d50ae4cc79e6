"""The kick-off parameters (app/bulk/kickoff.py; Bulk Data IG v2.0.0 export.html#query-
parameters): what each one becomes, and the 400 naming it when it cannot be honoured."""

from __future__ import annotations

from typing import Any

import pytest

from app.bulk.kickoff import (
    ExportRequest,
    check_headers,
    lenient,
    normalised_instant,
    parameters_of,
    parse_kickoff,
)
from app.fhir.outcome import FhirError

TYPES = frozenset({"Patient", "Observation", "Organization", "Group"})
COMPARTMENT = ("Patient", "Group", "Observation")


def parse(level: str, pairs: list[tuple[str, Any]], **kw: Any) -> ExportRequest:
    options: dict[str, Any] = {
        "post": False,
        "lenient": False,
        "known_types": TYPES,
        "compartment_types": COMPARTMENT,
    }
    return parse_kickoff(level, pairs, **{**options, **kw})


def test_no_parameter_exports_everything_the_level_reaches() -> None:
    assert parse("system", []) == ExportRequest(level="system")


def test_parameters_become_the_export() -> None:
    request = parse(
        "patient",
        [
            ("_outputFormat", "ndjson"),
            ("_type", "Patient,Observation"),
            ("_type", "Patient"),
            ("_since", "2024-01-01T05:00:00+05:00"),
            ("_elements", "id,Observation.status"),
            ("patient", "Patient/p1"),
            ("patient", "http://x/fhir/Patient/p2"),
            ("_typeFilter", "Observation?status=final&code=x"),
            ("_typeFilter", "Observation?status=amended"),
            ("_format", "json"),
        ],
        post=True,
    )
    assert request == ExportRequest(
        level="patient",
        types=("Patient", "Observation"),
        since="2024-01-01T00:00:00.000Z",
        elements=("id", "Observation.status"),
        patients=("p1", "p2"),
        type_filters=(
            ("Observation", "status=final&code=x"),
            ("Observation", "status=amended"),
        ),
    )
    assert request.filters_of("Observation") == ["status=final&code=x", "status=amended"]
    assert request.filters_of("Patient") == []
    assert ExportRequest.from_json(request.to_json()) == request


@pytest.mark.parametrize(
    ("level", "pairs", "post", "code", "expression"),
    [
        (
            "system",
            [("_outputFormat", "application/json")],
            False,
            "not-supported",
            "_outputFormat",
        ),
        ("system", [("_since", "2024-01-01")], False, "invalid", "_since"),
        (
            "system",
            [("_since", "2024-01-01T00:00:00Z"), ("_since", "2024-01-02T00:00:00Z")],
            False,
            "invalid",
            "_since",
        ),
        ("system", [("_type", "Patient,Nope")], False, "invalid", "_type"),
        ("patient", [("_type", "Organization")], False, "invalid", "_type"),
        ("system", [("_typeFilter", "Patient")], False, "invalid", "_typeFilter"),
        ("patient", [("_typeFilter", "Organization?name=x")], False, "invalid", "_typeFilter"),
        (
            "system",
            [("_type", "Patient"), ("_typeFilter", "Observation?status=final")],
            False,
            "invalid",
            "_typeFilter",
        ),
        (
            "system",
            [("includeAssociatedData", "LatestProvenanceResources")],
            False,
            "not-supported",
            "includeAssociatedData",
        ),
        ("system", [("colour", "red")], False, "invalid", "colour"),
        ("system", [("_type", "")], False, "invalid", "_type"),
        ("system", [("_elements", "name.given")], False, "invalid", "_elements"),
        ("system", [("patient", "Patient/p1")], True, "invalid", "patient"),
        ("group", [("patient", "Patient/p1")], False, "invalid", "patient"),
        ("group", [("patient", "Organization/o1")], True, "invalid", "patient"),
    ],
)
def test_what_cannot_be_honoured_is_a_400_naming_it(
    level: str, pairs: list[tuple[str, Any]], post: bool, code: str, expression: str
) -> None:
    with pytest.raises(FhirError) as caught:
        parse(level, pairs, post=post)
    assert caught.value.status == 400
    (issue,) = caught.value.issues
    assert (issue.code, issue.expression) == (code, (expression,))


def test_lenient_handling_drops_what_it_cannot_honour_and_says_so() -> None:
    request = parse("system", [("_type", "Patient,Nope"), ("colour", "red")], lenient=True)
    assert request.types == ("Patient",)
    assert request.ignored == (
        "unknown kick-off parameter 'colour'",
        "_type names 'Nope', which is not a FHIR R4 resource type",
    )


def test_a_parameters_body_gives_name_value_pairs() -> None:
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "_type", "valueString": "Patient"},
            {"name": "patient", "valueReference": {"reference": "Patient/p1"}},
        ],
    }
    assert parameters_of(body) == [("_type", "Patient"), ("patient", "Patient/p1")]
    with pytest.raises(FhirError):
        parameters_of({"resourceType": "Patient"})
    with pytest.raises(FhirError):
        parameters_of({"resourceType": "Parameters", "parameter": [{"name": "_type"}]})


def test_respond_async_is_required_and_accept_must_allow_fhir_json() -> None:
    assert check_headers({"prefer": "respond-async"}, False) == []
    assert check_headers({"prefer": "handling=lenient, respond-async"}, True) == []
    with pytest.raises(FhirError):
        check_headers({}, False)
    with pytest.raises(FhirError):
        check_headers({"prefer": "respond-async", "accept": "text/csv"}, False)
    (warning,) = check_headers({"prefer": "respond-async", "accept": "text/csv"}, True)
    assert warning.severity == "warning"
    assert lenient({"prefer": "respond-async; handling=lenient"})
    assert not lenient({"prefer": "respond-async"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-01T10:00:00Z", "2024-03-01T10:00:00.000Z"),
        ("2024-03-01T10:00:00.1234-02:00", "2024-03-01T12:00:00.123Z"),
    ],
)
def test_since_is_normalised_to_the_stored_form(text: str, expected: str) -> None:
    assert normalised_instant(text) == expected


@pytest.mark.parametrize("text", ["2024-03-01", "2024-03-01T10:00:00", "now"])
def test_since_needs_a_full_instant(text: str) -> None:
    with pytest.raises(ValueError):
        normalised_instant(text)
