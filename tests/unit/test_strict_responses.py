"""The conformance tier's strict response check (tests/conformance/_strict.py) refuses what a
strict R4 client refuses, so its passing means something; and every conformance-tier client
goes through it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from app.fhir.xml import to_xml
from tests.conformance._strict import NotStrictFhir, check_body

ROOT = Path(__file__).resolve().parents[2]
JSON = "application/fhir+json; charset=utf-8"
XML = "application/fhir+xml; charset=utf-8"


def outcome(**issue: Any) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "invalid", **issue}],
    }


def in_bundle(resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [{"response": {"status": "400 Bad Request", "outcome": resource}}],
    }


def refusal(resource: Any, content_type: str = JSON, path: str = "/fhir/Patient") -> str:
    with pytest.raises(NotStrictFhir) as caught:
        check_body(orjson.dumps(resource), content_type, path)
    return str(caught.value)


def test_a_well_formed_outcome_passes_as_json_and_as_xml() -> None:
    good = outcome(diagnostics="bad date", expression=["Patient.birthDate"])
    check_body(orjson.dumps(good), JSON, "/fhir/Patient")
    check_body(to_xml(good), XML, "/fhir/Patient")
    check_body(orjson.dumps(in_bundle(good)), JSON, "/fhir")


def test_expression_as_a_list_of_lists_is_refused_by_both_parsers() -> None:
    message = refusal(outcome(expression=[["birthdate"]]))
    assert "R4: OperationOutcome.issue[0].expression[0]" in message
    assert "R4B: issue.0.expression.0: Input should be a valid string" in message


def test_a_list_of_lists_inside_a_bundle_entry_is_refused() -> None:
    message = refusal(in_bundle(outcome(expression=[["birthdate"]])), path="/fhir")
    assert "R4B: entry.0.response.outcome.issue.0.expression.0" in message


def test_an_unknown_element_is_refused_at_any_depth() -> None:
    assert "R4B: issue.0.colour: Extra inputs are not permitted" in refusal(outcome(colour="red"))
    bundle = in_bundle(outcome())
    bundle["entry"][0]["response"]["colour"] = "red"
    assert "R4B: entry.0.response.colour: Extra inputs are not permitted" in refusal(bundle)


def test_what_r4b_lets_through_r4_refuses() -> None:
    # R4B models accept a string for a boolean and an unknown code; the R4 table does not
    patient = {"resourceType": "Patient", "active": "true", "gender": "mal"}
    message = refusal(patient)
    assert "R4: Patient.active" in message
    assert "R4: Patient.gender" in message


def test_an_empty_expression_string_is_refused() -> None:
    assert "R4: OperationOutcome.issue[0].expression[0]" in refusal(outcome(expression=[""]))


def test_a_fhir_endpoint_must_answer_a_fhir_content_type() -> None:
    message = refusal(outcome(), content_type="application/json")
    assert "a FHIR endpoint answered Content-Type 'application/json'" in message


def test_plain_json_endpoints_and_empty_bodies_are_exempt() -> None:
    check_body(b'{"status": "up"}', "application/json", "/health")
    check_body(b'{"openapi": "3.1.0"}', "application/json", "/openapi.json")
    check_body(b"", None, "/fhir/Patient/1")


def test_xml_that_the_codec_cannot_read_is_refused() -> None:
    body = b'<OperationOutcome xmlns="http://hl7.org/fhir"><colour value="red"/></OperationOutcome>'
    with pytest.raises(NotStrictFhir, match="not FHIR XML"):
        check_body(body, XML, "/fhir/Patient")


def test_every_conformance_client_is_built_by_the_strict_helpers() -> None:
    """A client built elsewhere would bypass the check: only `_clients.strict_client` makes
    test clients, and every fhirclient server comes from `_strict.strict_fhir_server`."""
    conformance = ROOT / "tests" / "conformance"
    bypassing = [
        f"{path.name}:{n}"
        for path in sorted(conformance.glob("*.py"))
        if path.name not in ("_clients.py", "_strict.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"AsyncTestClient\(|FHIRServer\(|httpx\.(Async)?Client\(", line)
    ]
    assert bypassing == []
