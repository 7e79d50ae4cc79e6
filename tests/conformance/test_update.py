"""update (http.html#update): `PUT [base]/[type]/[id]`, versioned (http.html#versioning),
update-as-create, and the id rules (the body's id must equal the URL's)."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from app.main import create_app
from app.settings import load_settings
from tests.conformance._clients import strict_client

PATIENT = {"resourceType": "Patient", "name": [{"family": "Tremblay"}], "gender": "female"}


async def created(client: AsyncTestClient[Any]) -> str:
    response = await client.post("/fhir/Patient", json=PATIENT)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_update_writes_version_2_and_answers_200(client: AsyncTestClient[Any]) -> None:
    id_ = await created(client)
    response = await client.put(
        f"/fhir/Patient/{id_}", json={**PATIENT, "id": id_, "gender": "male"}
    )
    assert response.status_code == 200
    assert response.headers["etag"] == 'W/"2"'
    assert response.headers["content-location"] == (
        f"http://micdr.local/fhir/Patient/{id_}/_history/2"
    )
    assert "location" not in response.headers
    assert response.json()["meta"]["versionId"] == "2"
    assert response.json()["gender"] == "male"
    assert (await client.get(f"/fhir/Patient/{id_}")).json()["gender"] == "male"


async def test_update_of_an_unknown_id_creates_it_with_201(client: AsyncTestClient[Any]) -> None:
    response = await client.put("/fhir/Patient/p-1", json={**PATIENT, "id": "p-1"})
    assert response.status_code == 201
    assert response.headers["location"] == "http://micdr.local/fhir/Patient/p-1/_history/1"
    assert response.json()["id"] == "p-1"


async def test_update_with_identical_content_writes_no_new_version(
    client: AsyncTestClient[Any],
) -> None:
    id_ = await created(client)
    response = await client.put(f"/fhir/Patient/{id_}", json={**PATIENT, "id": id_})
    assert response.status_code == 200
    assert response.headers["etag"] == 'W/"1"'
    history = (await client.get(f"/fhir/Patient/{id_}/_history")).json()
    assert len(history["entry"]) == 1


async def test_update_without_id_in_body_is_400(client: AsyncTestClient[Any]) -> None:
    id_ = await created(client)
    response = await client.put(f"/fhir/Patient/{id_}", json=PATIENT)
    assert response.status_code == 400
    issue = response.json()["issue"][0]
    assert issue["code"] == "invalid"
    assert issue["expression"] == ["Patient.id"]
    assert issue["diagnostics"] == f"the resource id None must equal the id in the URL ({id_!r})"


async def test_update_with_a_different_id_in_body_is_400(client: AsyncTestClient[Any]) -> None:
    id_ = await created(client)
    response = await client.put(f"/fhir/Patient/{id_}", json={**PATIENT, "id": "other"})
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["Patient.id"]


async def test_update_with_an_invalid_id_in_the_url_is_400(client: AsyncTestClient[Any]) -> None:
    response = await client.put("/fhir/Patient/bad_id!", json={**PATIENT, "id": "bad_id!"})
    assert response.status_code == 400
    assert response.json()["issue"][0]["code"] == "invalid"


async def test_update_of_a_deleted_resource_recreates_it_with_201(
    client: AsyncTestClient[Any],
) -> None:
    id_ = await created(client)
    assert (await client.delete(f"/fhir/Patient/{id_}")).status_code == 204
    response = await client.put(f"/fhir/Patient/{id_}", json={**PATIENT, "id": id_})
    assert response.status_code == 201
    assert response.json()["meta"]["versionId"] == "3"


async def test_update_with_matching_if_match_succeeds(client: AsyncTestClient[Any]) -> None:
    id_ = await created(client)
    response = await client.put(
        f"/fhir/Patient/{id_}",
        json={**PATIENT, "id": id_, "gender": "male"},
        headers={"If-Match": 'W/"1"'},
    )
    assert response.status_code == 200
    assert response.headers["etag"] == 'W/"2"'


async def test_update_create_is_405_when_disabled(tmp_path: Any) -> None:
    settings = load_settings({"MICDR_DATA_DIR": str(tmp_path), "MICDR_ALLOW_UPDATE_CREATE": "0"})
    async with strict_client(create_app(settings)) as c:
        response = await c.put("/fhir/Patient/p-1", json={**PATIENT, "id": "p-1"})
    assert response.status_code == 405
    assert response.json()["issue"][0]["code"] == "not-supported"
