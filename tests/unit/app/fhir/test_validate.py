"""Base R4 validation (app/fhir/validate.py): https://hl7.org/fhir/R4/validation.html,
json.html (representation rules), datatypes.html (primitive formats), terminologies.html
(required bindings)."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest

from app.fhir.outcome import FhirError
from app.fhir.validate import resource_types, validate_resource
from tests._data import IG_EPISODES as EPISODES
from tests._data import SYNTHEA


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return data


Found = list[tuple[str, tuple[str, ...]]]


def _issues(resource: object, expected_type: str | None = None) -> Found:
    try:
        validate_resource(resource, expected_type=expected_type)
    except FhirError as exc:
        assert exc.status == 400
        return [(i.code, i.expression) for i in exc.issues]
    return []


def _patient(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", **elements}


def _observation(**elements: Any) -> dict[str, Any]:
    base = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    return {**base, **elements}


def _bundle(*entries: dict[str, Any], type_: str = "transaction") -> dict[str, Any]:
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": type_}
    return {**bundle, "entry": list(entries)} if entries else bundle


def _series(**elements: Any) -> dict[str, Any]:
    base = {
        "uid": "1.2.3",
        "modality": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "MR"},
    }
    return {**base, **elements}


def _imaging_study(**elements: Any) -> dict[str, Any]:
    base = {
        "resourceType": "ImagingStudy",
        "status": "available",
        "subject": {"reference": "Patient/1"},
    }
    return {**base, **elements}


EXT = "http://example.org/ext"

# (case id, resource, expected_type, [(issue code, expression), ...])
INVALID: list[tuple[str, object, str | None, list[tuple[str, tuple[str, ...]]]]] = [
    ("not an object", [], None, [("structure", ())]),
    ("string body", "Patient", None, [("structure", ())]),
    ("missing resourceType", {"id": "1"}, None, [("required", ())]),
    ("unknown resourceType", {"resourceType": "Foo"}, None, [("code-invalid", ())]),
    ("resourceType not a string", {"resourceType": 1}, None, [("code-invalid", ())]),
    ("R4B-only resourceType", {"resourceType": "Citation"}, None, [("code-invalid", ())]),
    ("mismatched resourceType", _patient(), "Observation", [("invalid", ())]),
    ("id with a space", _patient(id="a b"), None, [("value", ("Patient.id",))]),
    ("id too long", _patient(id="a" * 65), None, [("value", ("Patient.id",))]),
    ("id not a string", _patient(id=12), None, [("value", ("Patient.id",))]),
    ("unknown element", _patient(foo=1), None, [("structure", ("Patient.foo",))]),
    (
        "fhir_comments not R4 JSON",
        _patient(fhir_comments=["x"]),
        None,
        [("structure", ("Patient.fhir_comments",))],
    ),
    (
        "R4B-only element",
        {"resourceType": "ActivityDefinition", "status": "draft", "subjectCanonical": "http://x"},
        None,
        [("structure", ("ActivityDefinition.subjectCanonical",))],
    ),
    ("unknown _element", _patient(_foo={"id": "x"}), None, [("structure", ("Patient._foo",))]),
    (
        "_ on a complex element",
        _patient(_name={"id": "x"}),
        None,
        [("structure", ("Patient._name",))],
    ),
    (
        "gender not in value set",
        _patient(gender="mal"),
        None,
        [("code-invalid", ("Patient.gender",))],
    ),
    ("gender wrong case", _patient(gender="Male"), None, [("code-invalid", ("Patient.gender",))]),
    ("gender repeated", _patient(gender=["male"]), None, [("structure", ("Patient.gender",))]),
    (
        "birthDate month 13",
        _patient(birthDate="1990-13-01"),
        None,
        [("value", ("Patient.birthDate",))],
    ),
    (
        "birthDate February 30",
        _patient(birthDate="2023-02-30"),
        None,
        [("value", ("Patient.birthDate",))],
    ),
    (
        "birthDate with time",
        _patient(birthDate="1990-01-01T00:00:00Z"),
        None,
        [("value", ("Patient.birthDate",))],
    ),
    ("active as a string", _patient(active="true"), None, [("value", ("Patient.active",))]),
    ("active as a number", _patient(active=1), None, [("value", ("Patient.active",))]),
    ("name not an array", _patient(name={"family": "X"}), None, [("structure", ("Patient.name",))]),
    ("empty array", _patient(name=[]), None, [("structure", ("Patient.name",))]),
    ("empty object", _patient(name=[{}]), None, [("structure", ("Patient.name[0]",))]),
    (
        "empty string",
        _patient(name=[{"family": ""}]),
        None,
        [("value", ("Patient.name[0].family",))],
    ),
    (
        "U+0000 in a string",
        _patient(name=[{"family": "Ab\u0000c"}]),
        None,
        [("value", ("Patient.name[0].family",))],
    ),
    (
        "escape character in markdown",
        _observation(note=[{"text": "\u001b[1mbold"}]),
        None,
        [("value", ("Observation.note[0].text",))],
    ),
    ("complex as a string", _patient(name=["Luc"]), None, [("structure", ("Patient.name[0]",))]),
    (
        "null in array without extension",
        _patient(name=[{"given": [None]}]),
        None,
        [("structure", ("Patient.name[0].given[0]",))],
    ),
    ("single null", _patient(gender=None), None, [("structure", ("Patient.gender",))]),
    (
        "_given length differs",
        _patient(name=[{"given": ["A", "B"], "_given": [None]}]),
        None,
        [("structure", ("Patient.name[0].given",))],
    ),
    (
        "primitive extension bad value",
        _patient(_birthDate={"extension": [{"url": EXT, "valueDate": "1990-1-1"}]}),
        None,
        [("value", ("Patient.birthDate.extension[0].valueDate",))],
    ),
    (
        "primitive extension empty",
        _patient(_birthDate={}),
        None,
        [("structure", ("Patient.birthDate",))],
    ),
    (
        "extension without url",
        _patient(extension=[{"valueString": "x"}]),
        None,
        [("required", ("Patient.extension[0].url",))],
    ),
    (
        "extension with value and extensions",
        _patient(
            extension=[
                {"url": EXT, "valueString": "x", "extension": [{"url": EXT, "valueCode": "y"}]}
            ]
        ),
        None,
        [("invariant", ("Patient.extension[0]",))],
    ),
    (
        "extension with neither",
        _patient(extension=[{"url": EXT}]),
        None,
        [("invariant", ("Patient.extension[0]",))],
    ),
    (
        "extension unknown value type",
        _patient(extension=[{"url": EXT, "valueFoo": "x"}]),
        None,
        [("structure", ("Patient.extension[0].valueFoo",))],
    ),
    (
        "narrative not a div",
        _patient(text={"status": "generated", "div": "<p>x</p>"}),
        None,
        [("value", ("Patient.text.div",))],
    ),
    (
        "narrative malformed",
        _patient(
            text={
                "status": "generated",
                "div": '<div xmlns="http://www.w3.org/1999/xhtml"><b></div>',
            }
        ),
        None,
        [("value", ("Patient.text.div",))],
    ),
    (
        "narrative without namespace",
        _patient(text={"status": "generated", "div": "<div>x</div>"}),
        None,
        [("value", ("Patient.text.div",))],
    ),
    (
        "narrative status invalid",
        _patient(
            text={"status": "auto", "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'}
        ),
        None,
        [("code-invalid", ("Patient.text.status",))],
    ),
    ("code with leading space", _patient(language=" en"), None, [("value", ("Patient.language",))]),
    (
        "uri with a space",
        _patient(implicitRules="http://a b"),
        None,
        [("value", ("Patient.implicitRules",))],
    ),
    (
        "missing required elements",
        {"resourceType": "Observation"},
        None,
        [("required", ("Observation.status",)), ("required", ("Observation.code",))],
    ),
    (
        "two choice variants",
        _observation(valueString="a", valueBoolean=True),
        None,
        [("structure", ("Observation.valueBoolean",))],
    ),
    ("choice base name", _observation(value="a"), None, [("structure", ("Observation.value",))]),
    (
        "decimal as a string",
        _observation(valueQuantity={"value": "5"}),
        None,
        [("value", ("Observation.valueQuantity.value",))],
    ),
    (
        "decimal as a boolean",
        _observation(valueQuantity={"value": True}),
        None,
        [("value", ("Observation.valueQuantity.value",))],
    ),
    (
        "quantity comparator invalid",
        _observation(valueQuantity={"value": 5, "comparator": "~"}),
        None,
        [("code-invalid", ("Observation.valueQuantity.comparator",))],
    ),
    (
        "instant without zone",
        _observation(issued="2020-01-01T00:00:00"),
        None,
        [("value", ("Observation.issued",))],
    ),
    (
        "instant date only",
        _observation(issued="2020-01-01"),
        None,
        [("value", ("Observation.issued",))],
    ),
    (
        "dateTime with time but no zone",
        _observation(effectiveDateTime="2020-01-01T10:00:00"),
        None,
        [("value", ("Observation.effectiveDateTime",))],
    ),
    (
        "dateTime hour 24",
        _observation(effectiveDateTime="2020-01-01T24:00:00Z"),
        None,
        [("value", ("Observation.effectiveDateTime",))],
    ),
    (
        "time with zone",
        _observation(valueTime="10:00:00Z"),
        None,
        [("value", ("Observation.valueTime",))],
    ),
    (
        "integer as a float",
        _observation(valueInteger=1.5),
        None,
        [("value", ("Observation.valueInteger",))],
    ),
    (
        "integer as a boolean",
        _observation(valueInteger=True),
        None,
        [("value", ("Observation.valueInteger",))],
    ),
    (
        "integer above 32 bits",
        _observation(valueInteger=2**31),
        None,
        [("value", ("Observation.valueInteger",))],
    ),
    (
        "observation status invalid",
        _observation(status="done"),
        None,
        [("code-invalid", ("Observation.status",))],
    ),
    (
        "unsignedInt negative",
        _imaging_study(numberOfSeries=-1),
        None,
        [("value", ("ImagingStudy.numberOfSeries",))],
    ),
    (
        "imaging study status invalid",
        _imaging_study(status="final"),
        None,
        [("code-invalid", ("ImagingStudy.status",))],
    ),
    (
        "imaging study missing subject",
        {"resourceType": "ImagingStudy", "status": "available"},
        None,
        [("required", ("ImagingStudy.subject",))],
    ),
    (
        "series missing uid and modality",
        _imaging_study(series=[_series(), {"number": 2}]),
        None,
        [
            ("required", ("ImagingStudy.series[1].uid",)),
            ("required", ("ImagingStudy.series[1].modality",)),
        ],
    ),
    (
        "oid invalid",
        _patient(extension=[{"url": EXT, "valueOid": "urn:oid:1.2.x"}]),
        None,
        [("value", ("Patient.extension[0].valueOid",))],
    ),
    (
        "uuid upper case",
        _patient(
            extension=[
                {"url": EXT, "valueUuid": "urn:uuid:" + "A" * 8 + "-aaaa-aaaa-aaaa-aaaaaaaaaaaa"}
            ]
        ),
        None,
        [("value", ("Patient.extension[0].valueUuid",))],
    ),
    (
        "diagnostic report status invalid",
        {"resourceType": "DiagnosticReport", "status": "done", "code": {"text": "x"}},
        None,
        [("code-invalid", ("DiagnosticReport.status",))],
    ),
    (
        "service request intent and status invalid",
        {
            "resourceType": "ServiceRequest",
            "status": "open",
            "intent": "ordered",
            "subject": {"reference": "Patient/1"},
        },
        None,
        [
            ("code-invalid", ("ServiceRequest.status",)),
            ("code-invalid", ("ServiceRequest.intent",)),
        ],
    ),
    (
        "binary base64 invalid",
        {"resourceType": "Binary", "contentType": "text/plain", "data": "abc"},
        None,
        [("value", ("Binary.data",))],
    ),
    (
        "binary missing contentType",
        {"resourceType": "Binary"},
        None,
        [("required", ("Binary.contentType",))],
    ),
    ("bundle type invalid", _bundle(type_="bulk"), None, [("code-invalid", ("Bundle.type",))]),
    (
        "bundle HTTP verb invalid",
        _bundle(
            {"resource": _patient(), "request": {"method": "PUT", "url": "Patient/1"}},
            {"resource": _patient(), "request": {"method": "FETCH", "url": "Patient"}},
        ),
        None,
        [("code-invalid", ("Bundle.entry[1].request.method",))],
    ),
    (
        "bundle request missing url",
        _bundle({"request": {"method": "GET"}}),
        None,
        [("required", ("Bundle.entry[0].request.url",))],
    ),
    (
        "bundle entry resource invalid",
        _bundle(
            {"resource": _patient()},
            {"resource": _patient()},
            {"resource": _observation(status="bogus")},
        ),
        None,
        [("code-invalid", ("Bundle.entry[2].resource.status",))],
    ),
    (
        "bundle entry resource without resourceType",
        _bundle({"resource": {"id": "1"}}),
        None,
        [("required", ("Bundle.entry[0].resource",))],
    ),
    (
        "bundle entry resource not an object",
        _bundle({"resource": "Patient/1"}),
        None,
        [("structure", ("Bundle.entry[0].resource",))],
    ),
    (
        "bundle in bundle",
        _bundle({"resource": _bundle({"resource": _patient(gender="x")}, type_="collection")}),
        None,
        [("code-invalid", ("Bundle.entry[0].resource.entry[0].resource.gender",))],
    ),
    (
        "contained resource invalid",
        _patient(contained=[_observation(status="x")]),
        None,
        [("code-invalid", ("Patient.contained[0].status",))],
    ),
    (
        "contained resource with versionId",
        _patient(contained=[_observation(meta={"versionId": "1"})]),
        None,
        [("invariant", ("Patient.contained[0].meta",))],
    ),
    (
        "contained resource containing resources",
        _patient(contained=[_observation(contained=[_patient()])]),
        None,
        [("invariant", ("Patient.contained[0]",))],
    ),
    (
        "contained not an array",
        _patient(contained=_observation()),
        None,
        [("structure", ("Patient.contained",))],
    ),
    (
        "meta.lastUpdated invalid",
        _patient(meta={"lastUpdated": "yesterday"}),
        None,
        [("value", ("Patient.meta.lastUpdated",))],
    ),
    (
        "all issues reported",
        _patient(
            id="no spaces allowed", gender="x", birthDate="x", foo=1, name=[{"given": ["", "B"]}]
        ),
        None,
        [
            ("value", ("Patient.id",)),
            ("code-invalid", ("Patient.gender",)),
            ("value", ("Patient.birthDate",)),
            ("structure", ("Patient.foo",)),
            ("value", ("Patient.name[0].given[0]",)),
        ],
    ),
]


@pytest.mark.parametrize(
    ("resource", "expected_type", "expected"),
    [pytest.param(r, t, e, id=i) for i, r, t, e in INVALID],
)
def test_invalid_resources_report_each_issue_with_code_and_location(
    resource: object, expected_type: str | None, expected: list[tuple[str, tuple[str, ...]]]
) -> None:
    assert _issues(resource, expected_type) == expected


VALID: list[tuple[str, dict[str, Any]]] = [
    ("minimal patient", _patient()),
    ("tab, line feed and carriage return", _observation(note=[{"text": "a\tb\nc\r\nd"}])),
    ("expected type matches", _patient(id="a-b.C1")),
    (
        "primitive with only an extension",
        _patient(_birthDate={"extension": [{"url": EXT, "valueCode": "unknown"}]}),
    ),
    (
        "required element given by its extension",
        {
            "resourceType": "Observation",
            "code": {"text": "x"},
            "_status": {"extension": [{"url": EXT, "valueCode": "unknown"}]},
        },
    ),
    (
        "null aligned with an extension",
        _patient(
            name=[
                {
                    "given": [None, "B"],
                    "_given": [{"extension": [{"url": EXT, "valueString": "A"}]}, None],
                }
            ]
        ),
    ),
    ("partial dates", _patient(birthDate="1990-05", deceasedDateTime="2020")),
    ("leap day", _patient(birthDate="2024-02-29")),
    ("leap second and offset", _observation(effectiveDateTime="2016-12-31T23:59:60.123+14:00")),
    (
        "decimal as integer and exponent",
        _observation(valueQuantity={"value": 10}),
    ),
    (
        "nested extensions",
        _patient(
            extension=[
                {
                    "url": EXT,
                    "extension": [
                        {"url": "a", "valueString": "x"},
                        {"url": "b", "valueBoolean": False},
                    ],
                }
            ]
        ),
    ),
    (
        "questionnaire item recursion (contentReference)",
        {
            "resourceType": "Questionnaire",
            "status": "draft",
            "item": [
                {"linkId": "1", "type": "group", "item": [{"linkId": "1.1", "type": "string"}]}
            ],
        },
    ),
    (
        "base64 with whitespace",
        {"resourceType": "Binary", "contentType": "text/plain", "data": "aGVs\nbG8="},
    ),
]


@pytest.mark.parametrize("resource", [pytest.param(r, id=i) for i, r in VALID])
def test_valid_resources_pass(resource: dict[str, Any]) -> None:
    assert _issues(resource, resource["resourceType"]) == []


def _episode_resources() -> list[Any]:
    params = []
    for path in EPISODES:
        bundle = _load(path)
        params.append(pytest.param(bundle, id=f"{path.stem}:Bundle"))
        for i, entry in enumerate(bundle["entry"]):
            resource = entry["resource"]
            params.append(pytest.param(resource, id=f"{path.stem}:{i}:{resource['resourceType']}"))
    return params


@pytest.mark.parametrize("resource", _episode_resources())
def test_ig_example_resources_are_valid(resource: dict[str, Any]) -> None:
    assert _issues(resource, resource["resourceType"]) == []


@pytest.mark.parametrize("path", SYNTHEA, ids=[p.stem.split("_")[0] for p in SYNTHEA])
def test_synthea_bundles_and_all_their_resources_are_valid(path: Path) -> None:
    bundle = _load(path)
    started = time.perf_counter()
    assert _issues(bundle) == []
    for entry in bundle["entry"]:
        assert _issues(entry["resource"], entry["resource"]["resourceType"]) == []
    # ~120 resources per bundle, validated twice: well within the 1,000 resources/s budget.
    assert time.perf_counter() - started < 1.0


def test_validation_does_not_modify_the_input() -> None:
    bundle = _load(SYNTHEA[0])
    before = copy.deepcopy(bundle)
    validate_resource(bundle)
    broken = _patient(name=[{"given": [None]}], _gender={}, gender="x")
    snapshot = copy.deepcopy(broken)
    with pytest.raises(FhirError):
        validate_resource(broken)
    assert bundle == before and broken == snapshot


def test_hostile_nesting_is_a_400_not_a_crash() -> None:
    ext: dict[str, Any] = {"url": EXT, "valueString": "x"}
    for _ in range(2000):
        ext = {"url": EXT, "extension": [ext]}
    issues = _issues(_patient(extension=[ext]))
    assert [code for code, _ in issues] == ["structure"]


def test_a_control_character_is_named_in_the_diagnostics() -> None:
    with pytest.raises(FhirError) as caught:
        validate_resource(_patient(name=[{"family": "Ab\u0000c"}]))
    assert caught.value.issues[0].diagnostics == (
        "control character U+0000 in a string (below U+0020 only tab, line feed and carriage "
        "return are allowed)"
    )


def test_issue_diagnostics_name_the_allowed_codes() -> None:
    with pytest.raises(FhirError) as caught:
        validate_resource(_patient(gender="mal"))
    assert caught.value.issues[0].diagnostics == (
        "invalid code 'mal': expected one of female, male, other, unknown"
    )


@pytest.mark.parametrize(
    ("name", "known"),
    [
        ("Patient", True),
        ("ImagingStudy", True),
        ("Bundle", True),
        ("Parameters", True),
        ("MedicinalProduct", True),
        ("EffectEvidenceSynthesis", True),
        ("Resource", False),
        ("DomainResource", False),
        ("Citation", False),
        ("SubscriptionStatus", False),
        ("patient", False),
    ],
)
def test_resource_types_are_the_concrete_r4_types(name: str, known: bool) -> None:
    assert (name in resource_types()) is known


def test_there_are_146_r4_resource_types() -> None:
    assert len(resource_types()) == 146
