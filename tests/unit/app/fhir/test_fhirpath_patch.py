"""FHIRPath Patch (fhirpatch.html): the operations on the spec's examples, and its failures."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from app.fhir.fhirpath_patch import apply_fhirpath_patch
from app.fhir.outcome import FhirError

PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "example",
    "identifier": [{"system": "http://a", "value": "1"}, {"system": "http://b", "value": "2"}],
    "name": [{"family": "Chalmers", "given": ["Peter", "James"]}],
    "birthDate": "1974-12-25",
}
OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "status": "final",
    "code": {"text": "weight"},
    "valueQuantity": {"value": 70, "unit": "kg"},
    "extension": [{"url": "http://ext/u", "valueString": "s"}],
}


def patch(type_: str, path: str, *extra: dict[str, Any]) -> dict[str, Any]:
    parts = [{"name": "type", "valueCode": type_}, {"name": "path", "valueString": path}]
    return {
        "resourceType": "Parameters",
        "parameter": [{"name": "operation", "part": parts + list(extra)}],
    }


def value(key: str, v: Any) -> dict[str, Any]:
    return {"name": "value", key: v}


def named(name: str) -> dict[str, Any]:
    return {"name": "name", "valueString": name}


def integer(name: str, v: int) -> dict[str, Any]:
    return {"name": name, "valueInteger": v}


def changed(resource: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(resource)
    for k, v in changes.items():
        if v is None:
            out.pop(k)
        else:
            out[k] = v
    return out


CASES = [
    (  # fhirpatch.html "Add": a birthDate to a Patient
        "add_sets_an_absent_single_element",
        PATIENT,
        patch("add", "Patient", named("gender"), value("valueCode", "male")),
        changed(PATIENT, gender="male"),
    ),
    (
        "add_appends_to_a_repeating_element",
        PATIENT,
        patch("add", "Patient.name[0]", named("given"), value("valueString", "Jim")),
        changed(PATIENT, name=[{"family": "Chalmers", "given": ["Peter", "James", "Jim"]}]),
    ),
    (
        "add_composes_a_complex_value_from_parts",
        PATIENT,
        patch(
            "add",
            "Patient",
            named("telecom"),
            {
                "name": "value",
                "part": [
                    {"name": "system", "valueCode": "phone"},
                    {"name": "value", "valueString": "555-0100"},
                ],
            },
        ),
        changed(PATIENT, telecom=[{"system": "phone", "value": "555-0100"}]),
    ),
    (
        "add_names_a_choice_element_by_its_value_type",
        OBSERVATION,
        patch("add", "Observation", named("effective"), value("valueDateTime", "2020-01-02")),
        changed(OBSERVATION, effectiveDateTime="2020-01-02"),
    ),
    (  # fhirpatch.html "Insert": an identifier at index 0
        "insert_puts_a_complex_value_at_the_index",
        PATIENT,
        patch(
            "insert",
            "Patient.identifier",
            integer("index", 0),
            value("valueIdentifier", {"system": "http://z", "value": "9"}),
        ),
        changed(PATIENT, identifier=[{"system": "http://z", "value": "9"}, *PATIENT["identifier"]]),
    ),
    (
        "insert_at_the_end_appends",
        PATIENT,
        patch("insert", "Patient.name[0].given", integer("index", 2), value("valueString", "X")),
        changed(PATIENT, name=[{"family": "Chalmers", "given": ["Peter", "James", "X"]}]),
    ),
    (
        "insert_into_an_absent_list_creates_it",
        PATIENT,
        patch(
            "insert",
            "Patient.telecom",
            integer("index", 0),
            value("valueContactPoint", {"system": "email", "value": "p@x.org"}),
        ),
        changed(PATIENT, telecom=[{"system": "email", "value": "p@x.org"}]),
    ),
    (  # fhirpatch.html "Delete": the birthDate
        "delete_removes_a_single_element",
        PATIENT,
        patch("delete", "Patient.birthDate"),
        changed(PATIENT, birthDate=None),
    ),
    (
        "delete_removes_the_list_item_a_where_selects",
        PATIENT,
        patch("delete", "Patient.identifier.where(system = 'http://b')"),
        changed(PATIENT, identifier=[{"system": "http://a", "value": "1"}]),
    ),
    (
        "delete_removes_an_indexed_primitive",
        PATIENT,
        patch("delete", "Patient.name.given[0]"),
        changed(PATIENT, name=[{"family": "Chalmers", "given": ["James"]}]),
    ),
    (
        "delete_drops_a_list_it_empties",
        OBSERVATION,
        patch("delete", "Observation.extension('http://ext/u')"),
        changed(OBSERVATION, extension=None),
    ),
    (
        "delete_of_nothing_is_no_change",
        PATIENT,
        patch("delete", "Patient.gender"),
        PATIENT,
    ),
    (  # fhirpatch.html "Replace": the birthDate
        "replace_sets_a_new_value",
        PATIENT,
        patch("replace", "Patient.birthDate", value("valueDate", "1930-01-01")),
        changed(PATIENT, birthDate="1930-01-01"),
    ),
    (
        "replace_changes_the_primitive_a_where_selects",
        PATIENT,
        patch("replace", "Patient.name.given.where($this = 'James')", value("valueString", "Jim")),
        changed(PATIENT, name=[{"family": "Chalmers", "given": ["Peter", "Jim"]}]),
    ),
    (
        "replace_of_a_choice_element_may_change_its_type",
        OBSERVATION,
        patch("replace", "Observation.value", value("valueString", "heavy")),
        changed(OBSERVATION, valueQuantity=None, valueString="heavy"),
    ),
    (
        "replace_inside_a_filtered_extension",
        OBSERVATION,
        patch(
            "replace",
            "Observation.extension.where(url = 'http://ext/u').value",
            value("valueString", "t"),
        ),
        changed(OBSERVATION, extension=[{"url": "http://ext/u", "valueString": "t"}]),
    ),
    (  # fhirpatch.html "Move": identifier 1 to position 0
        "move_reorders_a_list",
        PATIENT,
        patch("move", "Patient.identifier", integer("source", 1), integer("destination", 0)),
        changed(PATIENT, identifier=list(reversed(PATIENT["identifier"]))),
    ),
]


@pytest.mark.parametrize(
    ("resource", "parameters", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_operation_gives_exact_result(
    resource: dict[str, Any], parameters: dict[str, Any], expected: dict[str, Any]
) -> None:
    before = copy.deepcopy(resource)
    assert apply_fhirpath_patch(resource, parameters) == expected
    assert resource == before  # the input is never modified


def test_operations_apply_in_order() -> None:
    parameters = patch("add", "Patient", named("gender"), value("valueCode", "male"))
    parameters["parameter"].append(
        patch("replace", "Patient.gender", value("valueCode", "female"))["parameter"][0]
    )
    assert apply_fhirpath_patch(PATIENT, parameters)["gender"] == "female"


def test_primitive_extension_list_stays_aligned_on_move() -> None:
    resource = {
        "resourceType": "Patient",
        "name": [
            {"given": ["A", "B"], "_given": [None, {"extension": [{"url": "u", "valueCode": "x"}]}]}
        ],
    }
    out = apply_fhirpath_patch(
        resource,
        patch("move", "Patient.name[0].given", integer("source", 1), integer("destination", 0)),
    )
    assert out["name"][0] == {
        "given": ["B", "A"],
        "_given": [{"extension": [{"url": "u", "valueCode": "x"}]}, None],
    }


UNAPPLICABLE = [
    (
        "delete_of_several_elements",
        patch("delete", "Patient.identifier"),
        "delete: path 'Patient.identifier' selects 2 elements; it must select one",
    ),
    (
        "replace_of_nothing",
        patch("replace", "Patient.gender", value("valueCode", "male")),
        "replace: path 'Patient.gender' selects nothing in this resource",
    ),
    (
        "add_over_a_present_single_element",
        patch("add", "Patient", named("birthDate"), value("valueDate", "2000-01-01")),
        "add: Patient.birthDate already has a value; use replace",
    ),
    (
        "add_of_an_unknown_element",
        patch("add", "Patient", named("colour"), value("valueString", "x")),
        "add: Patient has no element 'colour'",
    ),
    (
        "insert_beyond_the_end",
        patch("insert", "Patient.identifier", integer("index", 5), value("valueString", "x")),
        "insert: index 5 is beyond the 2 elements of identifier",
    ),
    (
        "insert_into_a_single_element",
        patch("insert", "Patient.birthDate", integer("index", 0), value("valueDate", "2000-01-01")),
        "insert: Patient.birthDate is not a repeating element",
    ),
    (
        "move_beyond_the_end",
        patch("move", "Patient.identifier", integer("source", 0), integer("destination", 2)),
        "move: destination 2 is beyond the 2 elements of identifier",
    ),
]


@pytest.mark.parametrize(
    ("parameters", "diagnostics"), [c[1:] for c in UNAPPLICABLE], ids=[c[0] for c in UNAPPLICABLE]
)
def test_patch_that_does_not_apply_is_422_processing(
    parameters: dict[str, Any], diagnostics: str
) -> None:
    with pytest.raises(FhirError) as caught:
        apply_fhirpath_patch(PATIENT, parameters)
    assert caught.value.status == 422
    (issue,) = caught.value.issues
    assert (issue.code, issue.diagnostics, issue.expression) == (
        "processing",
        diagnostics,
        ("Parameters.parameter[0]",),
    )


MALFORMED = [
    (
        "no_operations",
        {"resourceType": "Parameters"},
        "a FHIRPath Patch needs at least one operation parameter",
    ),
    (
        "unknown_type",
        patch("frobnicate", "Patient"),
        "operation type must be one of add, insert, delete, replace, move, not 'frobnicate'",
    ),
    (
        "add_without_name",
        patch("add", "Patient", value("valueCode", "male")),
        "add needs the name part",
    ),
    (
        "insert_without_index",
        patch("insert", "Patient.identifier", value("valueString", "x")),
        "insert needs the index part",
    ),
    (
        "negative_index",
        patch("insert", "Patient.identifier", integer("index", -1), value("valueString", "x")),
        "the index part must be a non-negative integer, not -1",
    ),
    (
        "value_with_two_types",
        patch(
            "replace",
            "Patient.birthDate",
            {"name": "value", "valueDate": "2000", "valueString": "x"},
        ),
        "the value part needs exactly one value[x], or parts",
    ),
    (
        "unknown_function",
        patch("delete", "Patient.name.frobnicate()"),
        "path 'Patient.name.frobnicate()' is not a FHIRPath expression this server evaluates: "
        "Not implemented: frobnicate",
    ),
]


@pytest.mark.parametrize(
    ("parameters", "diagnostics"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED]
)
def test_malformed_patch_is_400_invalid(parameters: dict[str, Any], diagnostics: str) -> None:
    with pytest.raises(FhirError) as caught:
        apply_fhirpath_patch(PATIENT, parameters)
    assert caught.value.status == 400
    (issue,) = caught.value.issues
    assert (issue.code, issue.diagnostics) == ("invalid", diagnostics)
