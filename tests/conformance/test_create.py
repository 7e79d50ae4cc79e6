"""create (http.html#create): `POST [base]/[type]` answers 201 with Location, ETag and
Last-Modified; the server assigns id, versionId 1 and lastUpdated."""

from __future__ import annotations

import re
from typing import Any

from litestar.testing import AsyncTestClient

PATIENT = {"resourceType": "Patient", "name": [{"family": "Tremblay"}], "gender": "female"}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


async def test_create_answers_201_with_location_etag_and_the_stored_resource(
    client: AsyncTestClient[Any],
) -> None:
    response = await client.post("/fhir/Patient", json=PATIENT)
    assert response.status_code == 201
    body = response.json()
    assert UUID.match(body["id"])
    assert response.headers["location"] == (
        f"http://micdr.local/fhir/Patient/{body['id']}/_history/1"
    )
    assert response.headers["etag"] == 'W/"1"'
    assert response.headers["last-modified"].endswith(" GMT")
    assert body["meta"]["versionId"] == "1"
    assert {k: v for k, v in body.items() if k not in ("id", "meta")} == PATIENT


async def test_create_ignores_a_client_id_in_the_body(client: AsyncTestClient[Any]) -> None:
    response = await client.post("/fhir/Patient", json={**PATIENT, "id": "chosen"})
    assert response.status_code == 201
    assert response.json()["id"] != "chosen"
    assert (await client.get("/fhir/Patient/chosen")).status_code == 404


async def test_create_replaces_client_version_and_last_updated_but_keeps_profile(
    client: AsyncTestClient[Any],
) -> None:
    meta = {"versionId": "7", "lastUpdated": "2001-01-01T00:00:00Z", "profile": ["http://p"]}
    body = (await client.post("/fhir/Patient", json={**PATIENT, "meta": meta})).json()
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["lastUpdated"] != "2001-01-01T00:00:00Z"
    assert body["meta"]["profile"] == ["http://p"]


async def test_create_twice_gives_two_distinct_resources(client: AsyncTestClient[Any]) -> None:
    first = (await client.post("/fhir/Patient", json=PATIENT)).json()["id"]
    second = (await client.post("/fhir/Patient", json=PATIENT)).json()["id"]
    assert first != second


async def test_created_resource_is_readable_at_its_location(client: AsyncTestClient[Any]) -> None:
    created = await client.post("/fhir/Patient", json=PATIENT)
    path = created.headers["location"].removeprefix("http://micdr.local")
    read = await client.get(path)
    assert read.status_code == 200
    assert read.json() == created.json()


async def test_create_with_a_body_of_another_type_is_400(client: AsyncTestClient[Any]) -> None:
    response = await client.post("/fhir/Observation", json=PATIENT)
    assert response.status_code == 400
    assert response.json()["issue"][0]["code"] == "invalid"
    assert response.json()["issue"][0]["expression"] == ["Observation.resourceType"]


async def test_create_of_an_invalid_resource_is_400_naming_the_element(
    client: AsyncTestClient[Any],
) -> None:
    response = await client.post("/fhir/Patient", json={**PATIENT, "gender": "purple"})
    assert response.status_code == 400
    issue = response.json()["issue"][0]
    assert issue["code"] in ("code-invalid", "value")
    assert issue["expression"] == ["Patient.gender"]
