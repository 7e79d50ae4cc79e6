"""Errors (http.html#summary "Each interaction can fail"; operationoutcome.html): every
failure is an OperationOutcome with the right status, issue.code, diagnostics and expression;
never a 500 or a stack trace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.main import create_app
from app.settings import load_settings
from tests.conformance._clients import strict_client

PATIENT = {"resourceType": "Patient", "name": [{"family": "Tremblay"}]}


def only_issue(response: Any) -> dict[str, Any]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert response.headers["content-type"] == "application/fhir+json; charset=utf-8"
    assert "Traceback" not in response.text
    (issue,) = body["issue"]
    assert issue["severity"] == "error"
    return dict(issue)


async def test_malformed_json_is_400_structure(client: AsyncTestClient[Any]) -> None:
    response = await client.post(
        "/fhir/Patient",
        content=b'{"resourceType": "Patient",',
        headers={"Content-Type": "application/fhir+json"},
    )
    assert response.status_code == 400
    issue = only_issue(response)
    assert issue["code"] == "structure"
    assert issue["diagnostics"].startswith("the body is not valid JSON: ")


async def test_json_that_is_not_an_object_is_400(client: AsyncTestClient[Any]) -> None:
    response = await client.post("/fhir/Patient", json=["Patient"])
    assert response.status_code == 400
    assert only_issue(response) == {
        "severity": "error",
        "code": "structure",
        "diagnostics": "the resource must be a JSON object",
        "expression": ["Patient"],
    }


async def test_empty_body_is_400_required(client: AsyncTestClient[Any]) -> None:
    response = await client.post("/fhir/Patient", content=b"")
    assert response.status_code == 400
    assert only_issue(response) == {
        "severity": "error",
        "code": "required",
        "diagnostics": "POST needs a request body",
    }


async def test_unknown_element_is_400_with_its_expression(client: AsyncTestClient[Any]) -> None:
    response = await client.post("/fhir/Patient", json={**PATIENT, "colour": "blue"})
    assert response.status_code == 400
    issue = only_issue(response)
    assert issue["code"] == "structure"
    assert issue["expression"] == ["Patient.colour"]


async def test_every_validation_problem_is_reported(client: AsyncTestClient[Any]) -> None:
    response = await client.post(
        "/fhir/Patient", json={**PATIENT, "gender": "purple", "birthDate": "yesterday"}
    )
    assert response.status_code == 400
    expressions = sorted(e for i in response.json()["issue"] for e in i["expression"])
    assert expressions == ["Patient.birthDate", "Patient.gender"]


async def test_id_mismatch_on_update_is_400(client: AsyncTestClient[Any]) -> None:
    response = await client.put("/fhir/Patient/a", json={**PATIENT, "id": "b"})
    assert response.status_code == 400
    assert only_issue(response) == {
        "severity": "error",
        "code": "invalid",
        "diagnostics": "the resource id 'b' must equal the id in the URL ('a')",
        "expression": ["Patient.id"],
    }


async def test_unknown_type_is_404(client: AsyncTestClient[Any]) -> None:
    response = await client.post("/fhir/Unicorn", json={"resourceType": "Unicorn"})
    assert response.status_code == 404
    assert only_issue(response)["diagnostics"] == "'Unicorn' is not a FHIR R4 resource type"


async def test_unknown_id_is_404_not_found(client: AsyncTestClient[Any]) -> None:
    response = await client.get("/fhir/Patient/nope")
    assert response.status_code == 404
    assert only_issue(response) == {
        "severity": "error",
        "code": "not-found",
        "diagnostics": "Patient/nope is not known",
    }


async def test_unknown_path_is_404(client: AsyncTestClient[Any]) -> None:
    response = await client.get("/fhir/Patient/1/_history/1/extra")
    assert response.status_code == 404
    assert only_issue(response)["code"] == "not-found"


async def test_wrong_method_on_a_path_is_405(client: AsyncTestClient[Any]) -> None:
    response = await client.post("/fhir/Patient/1", json=PATIENT)
    assert response.status_code == 405
    assert only_issue(response) == {
        "severity": "error",
        "code": "not-supported",
        "diagnostics": "POST is not supported on /fhir/Patient/1",
    }


async def test_deleted_resource_is_410(client: AsyncTestClient[Any]) -> None:
    id_ = (await client.post("/fhir/Patient", json=PATIENT)).json()["id"]
    await client.delete(f"/fhir/Patient/{id_}")
    response = await client.get(f"/fhir/Patient/{id_}")
    assert response.status_code == 410
    assert only_issue(response)["code"] == "deleted"


async def test_stale_if_match_is_412_conflict(client: AsyncTestClient[Any]) -> None:
    id_ = (await client.post("/fhir/Patient", json=PATIENT)).json()["id"]
    response = await client.put(
        f"/fhir/Patient/{id_}", json={**PATIENT, "id": id_}, headers={"If-Match": 'W/"2"'}
    )
    assert response.status_code == 412
    assert only_issue(response)["diagnostics"] == (
        f"If-Match wants version 2 of Patient/{id_}, which has version 1"
    )


async def test_malformed_if_match_is_400(client: AsyncTestClient[Any]) -> None:
    response = await client.put(
        "/fhir/Patient/a", json={**PATIENT, "id": "a"}, headers={"If-Match": "yesterday"}
    )
    assert response.status_code == 400
    assert only_issue(response)["diagnostics"] == (
        "If-Match must be a version ETag like W/\"3\", not 'yesterday'"
    )


async def test_conditional_update_on_unsupported_criteria_is_412(
    client: AsyncTestClient[Any],
) -> None:
    response = await client.put("/fhir/Patient?name=Tremblay", json=PATIENT)
    assert response.status_code == 412
    assert only_issue(response)["code"] == "not-supported"


async def test_unsupported_content_type_is_415(client: AsyncTestClient[Any]) -> None:
    response = await client.post(
        "/fhir/Patient", content=b"<html/>", headers={"Content-Type": "text/html"}
    )
    assert response.status_code == 415
    assert only_issue(response)["code"] == "not-supported"


async def test_json_patch_that_does_not_apply_is_422(client: AsyncTestClient[Any]) -> None:
    id_ = (await client.post("/fhir/Patient", json=PATIENT)).json()["id"]
    response = await client.patch(
        f"/fhir/Patient/{id_}",
        content=b'[{"op": "remove", "path": "/birthDate"}]',
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert response.status_code == 422
    assert only_issue(response)["code"] == "processing"


async def test_malformed_json_patch_is_400(client: AsyncTestClient[Any]) -> None:
    id_ = (await client.post("/fhir/Patient", json=PATIENT)).json()["id"]
    response = await client.patch(
        f"/fhir/Patient/{id_}",
        content=b'{"op": "remove"}',
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert response.status_code == 400
    assert only_issue(response)["code"] == "structure"


async def test_too_large_body_is_413(tmp_path: Path) -> None:
    settings = load_settings({"MICDR_DATA_DIR": str(tmp_path), "MICDR_MAX_BODY_BYTES": "200"})
    async with strict_client(create_app(settings)) as c:
        big = {**PATIENT, "name": [{"family": "x" * 500}]}
        response = await c.post("/fhir/Patient", json=big)
        small = await c.post("/fhir/Patient", json=PATIENT)
    assert response.status_code == 413
    assert only_issue(response) == {
        "severity": "error",
        "code": "too-costly",
        "diagnostics": "the request body is larger than this server accepts (MICDR_MAX_BODY_BYTES)",
    }
    assert small.status_code == 201


async def test_xml_that_is_not_fhir_is_400(client: AsyncTestClient[Any]) -> None:
    response = await client.post(
        "/fhir/Patient", content=b"<Patient><oops", headers={"Content-Type": "application/fhir+xml"}
    )
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    ("query", "code", "expression"),
    [
        ("Patient?birthdate=notadate", "invalid", "birthdate"),
        ("Observation?subject:Patient.birthdate=notadate", "invalid", "subject:Patient.birthdate"),
        ("Observation?patient.nosuch=1", "not-supported", "patient.nosuch"),
        ("Patient?_has:Observation:subject:date=xx", "invalid", "_has:Observation:subject:date"),
    ],
)
async def test_a_search_error_names_its_parameter_as_one_string(
    client: AsyncTestClient[Any], query: str, code: str, expression: str
) -> None:
    # R4 OperationOutcome.issue.expression is a list of strings (issue 16: it was a list of lists)
    response = await client.get(f"/fhir/{query}", headers={"Prefer": "handling=strict"})
    assert response.status_code == 400
    issue = only_issue(response)
    assert (issue["code"], issue["expression"]) == (code, [expression])


async def test_a_header_failure_has_no_empty_location(client: AsyncTestClient[Any]) -> None:
    # A request alone has no FHIRPath location for its If-Match header; R4 allows no "" there
    id_ = (await client.post("/fhir/Patient", json=PATIENT)).json()["id"]
    response = await client.put(
        f"/fhir/Patient/{id_}", json={**PATIENT, "id": id_}, headers={"If-Match": 'W/"2"'}
    )
    assert response.status_code == 412
    assert "expression" not in only_issue(response)
