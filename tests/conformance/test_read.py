"""read (http.html#read) and conditional read."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

PATIENT = {"resourceType": "Patient", "name": [{"family": "Tremblay"}], "gender": "female"}


async def test_read_answers_the_created_resource(client: AsyncTestClient[Any]) -> None:
    created = await client.post("/fhir/Patient", json=PATIENT)
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    id_ = created.json()["id"]
    assert location == f"http://micdr.local/fhir/Patient/{id_}/_history/1"
    read = await client.get(f"/fhir/Patient/{id_}")
    assert read.status_code == 200
    assert read.headers["etag"] == 'W/"1"'
    assert read.headers["content-type"] == "application/fhir+json; charset=utf-8"
    body = read.json()
    assert body["name"] == [{"family": "Tremblay"}]
    assert body["meta"]["versionId"] == "1"


async def test_read_of_unknown_id_is_404_operation_outcome(client: AsyncTestClient[Any]) -> None:
    response = await client.get("/fhir/Patient/nope")
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"
    assert response.json()["issue"][0]["code"] == "not-found"


async def test_read_of_unknown_type_is_404(client: AsyncTestClient[Any]) -> None:
    response = await client.get("/fhir/Unicorn/1")
    assert response.status_code == 404
    assert response.json()["issue"][0]["code"] == "not-supported"


async def test_conditional_read_answers_304(client: AsyncTestClient[Any]) -> None:
    id_ = (await client.post("/fhir/Patient", json=PATIENT)).json()["id"]
    same = await client.get(f"/fhir/Patient/{id_}", headers={"If-None-Match": 'W/"1"'})
    assert same.status_code == 304
    other = await client.get(f"/fhir/Patient/{id_}", headers={"If-None-Match": 'W/"2"'})
    assert other.status_code == 200


async def test_metadata_is_a_r4_capability_statement(client: AsyncTestClient[Any]) -> None:
    response = await client.get("/fhir/metadata")
    assert response.status_code == 200
    body = response.json()
    assert body["resourceType"] == "CapabilityStatement"
    assert body["fhirVersion"] == "4.0.1"
    patient = next(r for r in body["rest"][0]["resource"] if r["type"] == "Patient")
    assert {i["code"] for i in patient["interaction"]} >= {"read", "vread", "create", "update"}
