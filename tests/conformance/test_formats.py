"""Content negotiation (http.html#mime-type, #general): JSON by default, `_format` over
`Accept`, XML in and out, `_pretty`, `_summary`/`_elements` on read, `Prefer: return=`
(http.html#ops), 415 for an unsupported Content-Type and 406 for an unsupported `_format`."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from app.fhir.xml import parse_xml

PATIENT = {
    "resourceType": "Patient",
    "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">T</div>'},
    "name": [{"family": "Tremblay"}],
    "gender": "female",
    "birthDate": "1970-01-01",
}
JSON = "application/fhir+json; charset=utf-8"
XML = "application/fhir+xml; charset=utf-8"
SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
}


async def created(client: AsyncTestClient[Any]) -> str:
    return str((await client.post("/fhir/Patient", json=PATIENT)).json()["id"])


async def test_json_is_the_default(client: AsyncTestClient[Any]) -> None:
    id_ = await created(client)
    response = await client.get(f"/fhir/Patient/{id_}", headers={"Accept": "*/*"})
    assert response.headers["content-type"] == JSON
    assert b"\n" not in response.content


async def test_accept_xml_answers_xml(client: AsyncTestClient[Any]) -> None:
    id_ = await created(client)
    response = await client.get(f"/fhir/Patient/{id_}", headers={"Accept": "application/fhir+xml"})
    assert response.headers["content-type"] == XML
    assert parse_xml(response.content)["name"] == [{"family": "Tremblay"}]


async def test_format_parameter_wins_over_accept(client: AsyncTestClient[Any]) -> None:
    id_ = await created(client)
    response = await client.get(
        f"/fhir/Patient/{id_}",
        params={"_format": "json"},
        headers={"Accept": "application/fhir+xml"},
    )
    assert response.headers["content-type"] == JSON
    xml = await client.get(
        f"/fhir/Patient/{id_}", params={"_format": "application/fhir+xml"}, headers={"Accept": JSON}
    )
    assert xml.headers["content-type"] == XML


async def test_xml_body_is_accepted_and_stored_as_json(client: AsyncTestClient[Any]) -> None:
    body = (
        b'<Patient xmlns="http://hl7.org/fhir"><name><family value="Roy"/></name>'
        b'<gender value="male"/></Patient>'
    )
    response = await client.post(
        "/fhir/Patient", content=body, headers={"Content-Type": "application/fhir+xml"}
    )
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == JSON
    stored = (await client.get(f"/fhir/Patient/{response.json()['id']}")).json()
    assert (stored["name"], stored["gender"]) == ([{"family": "Roy"}], "male")


async def test_pretty_json_is_indented(client: AsyncTestClient[Any]) -> None:
    id_ = await created(client)
    response = await client.get(f"/fhir/Patient/{id_}", params={"_pretty": "true"})
    assert response.text.startswith('{\n  "resourceType": "Patient"')


async def test_summary_true_keeps_summary_elements_and_tags_subsetted(
    client: AsyncTestClient[Any],
) -> None:
    id_ = await created(client)
    body = (await client.get(f"/fhir/Patient/{id_}", params={"_summary": "true"})).json()
    assert set(body) == {"resourceType", "id", "meta", "name", "gender", "birthDate"}
    assert body["meta"]["tag"] == [SUBSETTED]


async def test_summary_text_keeps_only_the_narrative(client: AsyncTestClient[Any]) -> None:
    id_ = await created(client)
    body = (await client.get(f"/fhir/Patient/{id_}", params={"_summary": "text"})).json()
    assert set(body) == {"resourceType", "id", "meta", "text"}


async def test_elements_keeps_the_listed_elements(client: AsyncTestClient[Any]) -> None:
    id_ = await created(client)
    body = (await client.get(f"/fhir/Patient/{id_}", params={"_elements": "gender"})).json()
    assert set(body) == {"resourceType", "id", "meta", "gender"}
    assert body["meta"]["tag"] == [SUBSETTED]


async def test_unknown_summary_mode_is_400(client: AsyncTestClient[Any]) -> None:
    id_ = await created(client)
    response = await client.get(f"/fhir/Patient/{id_}", params={"_summary": "maybe"})
    assert response.status_code == 400
    assert response.json()["issue"][0]["code"] == "invalid"


async def test_prefer_return_minimal_answers_no_body(client: AsyncTestClient[Any]) -> None:
    response = await client.post(
        "/fhir/Patient", json=PATIENT, headers={"Prefer": "return=minimal"}
    )
    assert response.status_code == 201
    assert response.content == b""
    assert response.headers["location"].endswith("/_history/1")


async def test_prefer_return_representation_answers_the_resource(
    client: AsyncTestClient[Any],
) -> None:
    response = await client.post(
        "/fhir/Patient", json=PATIENT, headers={"Prefer": "return=representation"}
    )
    assert response.json()["resourceType"] == "Patient"


async def test_prefer_return_operation_outcome_answers_an_outcome(
    client: AsyncTestClient[Any],
) -> None:
    response = await client.post(
        "/fhir/Patient", json=PATIENT, headers={"Prefer": "return=OperationOutcome"}
    )
    assert response.status_code == 201
    assert response.json() == {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "information",
                "code": "informational",
                "diagnostics": "POST succeeded with status 201",
            }
        ],
    }


async def test_unsupported_content_type_is_415(client: AsyncTestClient[Any]) -> None:
    response = await client.post(
        "/fhir/Patient", content=b"name=x", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    assert response.json()["issue"][0]["code"] == "not-supported"


async def test_unsupported_format_is_406(client: AsyncTestClient[Any]) -> None:
    id_ = await created(client)
    response = await client.get(f"/fhir/Patient/{id_}", params={"_format": "text/turtle"})
    assert response.status_code == 406
    assert response.headers["content-type"] == JSON
    assert response.json()["issue"] == [
        {
            "severity": "error",
            "code": "not-supported",
            "diagnostics": "_format 'text/turtle' is not supported (json or xml)",
        }
    ]


async def test_errors_follow_the_requested_format(client: AsyncTestClient[Any]) -> None:
    response = await client.get("/fhir/Patient/nope", params={"_format": "xml"})
    assert response.status_code == 404
    assert response.headers["content-type"] == XML
    assert parse_xml(response.content)["issue"][0]["code"] == "not-found"
