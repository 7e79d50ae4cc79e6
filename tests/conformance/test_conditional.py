"""Conditional interactions (http.html#ccreate, #cond-update, #cdelete, #concurrency, #cread):
If-None-Exist create, conditional update and delete by identifier, If-Match, and conditional
read with If-None-Match / If-Modified-Since."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

MRN = "http://hospital.example/mrn"


def patient(value: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "identifier": [{"system": MRN, "value": value}], **extra}


async def test_if_none_exist_creates_when_nothing_matches(client: AsyncTestClient[Any]) -> None:
    response = await client.post(
        "/fhir/Patient", json=patient("1"), headers={"If-None-Exist": f"identifier={MRN}|1"}
    )
    assert response.status_code == 201
    assert response.headers["etag"] == 'W/"1"'


async def test_if_none_exist_answers_200_with_the_existing_match(
    client: AsyncTestClient[Any],
) -> None:
    first = (await client.post("/fhir/Patient", json=patient("1"))).json()
    response = await client.post(
        "/fhir/Patient",
        json=patient("1", gender="male"),
        headers={"If-None-Exist": f"identifier={MRN}|1"},
    )
    assert response.status_code == 200
    assert response.json() == first
    assert response.headers["content-location"] == (
        f"http://micdr.local/fhir/Patient/{first['id']}/_history/1"
    )


async def test_if_none_exist_with_a_leading_type_and_question_mark(
    client: AsyncTestClient[Any],
) -> None:
    first = (await client.post("/fhir/Patient", json=patient("1"))).json()
    response = await client.post(
        "/fhir/Patient", json=patient("1"), headers={"If-None-Exist": f"Patient?identifier={MRN}|1"}
    )
    assert response.status_code == 200
    assert response.json()["id"] == first["id"]


async def test_if_none_exist_matching_several_is_412(client: AsyncTestClient[Any]) -> None:
    await client.post("/fhir/Patient", json=patient("1"))
    await client.post("/fhir/Patient", json=patient("1"))
    response = await client.post(
        "/fhir/Patient", json=patient("1"), headers={"If-None-Exist": f"identifier={MRN}|1"}
    )
    assert response.status_code == 412
    issue = response.json()["issue"][0]
    assert issue["code"] == "multiple-matches"
    assert issue["diagnostics"] == (
        f"Patient?identifier={MRN}|1 matches 2 resources; it must match at most one"
    )


async def test_conditional_update_without_a_match_creates(client: AsyncTestClient[Any]) -> None:
    response = await client.put(f"/fhir/Patient?identifier={MRN}|7", json=patient("7"))
    assert response.status_code == 201
    id_ = response.json()["id"]
    assert (await client.get(f"/fhir/Patient/{id_}")).status_code == 200


async def test_conditional_update_with_one_match_updates_it(client: AsyncTestClient[Any]) -> None:
    id_ = (await client.post("/fhir/Patient", json=patient("7"))).json()["id"]
    response = await client.put(
        f"/fhir/Patient?identifier={MRN}|7", json=patient("7", gender="female")
    )
    assert response.status_code == 200
    assert response.json()["id"] == id_
    assert response.json()["meta"]["versionId"] == "2"
    assert response.json()["gender"] == "female"


async def test_conditional_update_with_several_matches_is_412(
    client: AsyncTestClient[Any],
) -> None:
    await client.post("/fhir/Patient", json=patient("7"))
    await client.post("/fhir/Patient", json=patient("7"))
    response = await client.put(f"/fhir/Patient?identifier={MRN}|7", json=patient("7"))
    assert response.status_code == 412
    assert response.json()["issue"][0]["code"] == "multiple-matches"


async def test_conditional_update_with_a_different_body_id_is_400(
    client: AsyncTestClient[Any],
) -> None:
    id_ = (await client.post("/fhir/Patient", json=patient("7"))).json()["id"]
    response = await client.put(
        f"/fhir/Patient?identifier={MRN}|7", json={**patient("7"), "id": "other"}
    )
    assert response.status_code == 400
    assert response.json()["issue"][0]["diagnostics"] == (
        f"the resource id 'other' differs from the matched {id_!r}"
    )


async def test_conditional_delete_removes_the_one_match(client: AsyncTestClient[Any]) -> None:
    id_ = (await client.post("/fhir/Patient", json=patient("9"))).json()["id"]
    response = await client.delete(f"/fhir/Patient?identifier={MRN}|9")
    assert response.status_code == 204
    assert (await client.get(f"/fhir/Patient/{id_}")).status_code == 410


async def test_conditional_delete_of_nothing_is_204(client: AsyncTestClient[Any]) -> None:
    response = await client.delete(f"/fhir/Patient?identifier={MRN}|none")
    assert response.status_code == 204


async def test_conditional_delete_of_several_is_412(client: AsyncTestClient[Any]) -> None:
    await client.post("/fhir/Patient", json=patient("9"))
    await client.post("/fhir/Patient", json=patient("9"))
    response = await client.delete(f"/fhir/Patient?identifier={MRN}|9")
    assert response.status_code == 412


async def test_if_match_with_an_old_version_is_412(client: AsyncTestClient[Any]) -> None:
    id_ = (await client.post("/fhir/Patient", json=patient("1"))).json()["id"]
    body = {**patient("1"), "id": id_}
    await client.put(f"/fhir/Patient/{id_}", json={**body, "gender": "male"})
    response = await client.put(
        f"/fhir/Patient/{id_}", json={**body, "gender": "female"}, headers={"If-Match": 'W/"1"'}
    )
    assert response.status_code == 412
    assert response.json()["issue"][0]["code"] == "conflict"
    assert (await client.get(f"/fhir/Patient/{id_}")).json()["gender"] == "male"


async def test_if_match_on_a_missing_resource_is_412(client: AsyncTestClient[Any]) -> None:
    response = await client.put(
        "/fhir/Patient/new", json={**patient("1"), "id": "new"}, headers={"If-Match": 'W/"1"'}
    )
    assert response.status_code == 412
    assert response.json()["issue"][0]["diagnostics"] == (
        "If-Match wants version 1 of Patient/new, which has no version"
    )


async def test_if_none_match_with_the_current_etag_is_304(client: AsyncTestClient[Any]) -> None:
    id_ = (await client.post("/fhir/Patient", json=patient("1"))).json()["id"]
    response = await client.get(f"/fhir/Patient/{id_}", headers={"If-None-Match": 'W/"1"'})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == 'W/"1"'


async def test_if_none_match_with_an_old_etag_is_200(client: AsyncTestClient[Any]) -> None:
    id_ = (await client.post("/fhir/Patient", json=patient("1"))).json()["id"]
    await client.put(f"/fhir/Patient/{id_}", json={**patient("1"), "id": id_, "gender": "male"})
    response = await client.get(f"/fhir/Patient/{id_}", headers={"If-None-Match": 'W/"1"'})
    assert response.status_code == 200
    assert response.headers["etag"] == 'W/"2"'


async def test_if_modified_since_after_the_change_is_304(client: AsyncTestClient[Any]) -> None:
    id_ = (await client.post("/fhir/Patient", json=patient("1"))).json()["id"]
    last_modified = (await client.get(f"/fhir/Patient/{id_}")).headers["last-modified"]
    same = await client.get(f"/fhir/Patient/{id_}", headers={"If-Modified-Since": last_modified})
    assert same.status_code == 304
    older = await client.get(
        f"/fhir/Patient/{id_}", headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}
    )
    assert older.status_code == 200
