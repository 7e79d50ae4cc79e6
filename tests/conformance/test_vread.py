"""vread (http.html#vread): `GET [base]/[type]/[id]/_history/[vid]` answers that version."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

PATIENT = {"resourceType": "Patient", "gender": "female"}


async def two_versions(client: AsyncTestClient[Any]) -> str:
    id_ = str((await client.post("/fhir/Patient", json=PATIENT)).json()["id"])
    await client.put(f"/fhir/Patient/{id_}", json={**PATIENT, "id": id_, "gender": "male"})
    return id_


async def test_vread_answers_each_version_with_its_etag(client: AsyncTestClient[Any]) -> None:
    id_ = await two_versions(client)
    first = await client.get(f"/fhir/Patient/{id_}/_history/1")
    second = await client.get(f"/fhir/Patient/{id_}/_history/2")
    assert (first.status_code, second.status_code) == (200, 200)
    assert (first.headers["etag"], second.headers["etag"]) == ('W/"1"', 'W/"2"')
    assert (first.json()["gender"], second.json()["gender"]) == ("female", "male")
    assert first.json()["meta"]["versionId"] == "1"
    assert "last-modified" in first.headers


async def test_vread_of_a_version_not_yet_written_is_404(client: AsyncTestClient[Any]) -> None:
    id_ = await two_versions(client)
    response = await client.get(f"/fhir/Patient/{id_}/_history/3")
    assert response.status_code == 404
    assert response.json()["issue"][0]["diagnostics"] == f"Patient/{id_} has no version 3"


async def test_vread_of_a_non_numeric_version_is_404(client: AsyncTestClient[Any]) -> None:
    id_ = await two_versions(client)
    response = await client.get(f"/fhir/Patient/{id_}/_history/abc")
    assert response.status_code == 404
    assert response.json()["issue"][0]["code"] == "not-found"


async def test_vread_of_the_delete_version_is_410(client: AsyncTestClient[Any]) -> None:
    id_ = await two_versions(client)
    await client.delete(f"/fhir/Patient/{id_}")
    response = await client.get(f"/fhir/Patient/{id_}/_history/3")
    assert response.status_code == 410
    assert response.json()["issue"][0]["code"] == "deleted"


async def test_vread_of_an_unknown_id_is_404(client: AsyncTestClient[Any]) -> None:
    response = await client.get("/fhir/Patient/nope/_history/1")
    assert response.status_code == 404


async def test_vread_of_a_version_beyond_64_bits_is_404(client: AsyncTestClient[Any]) -> None:
    id_ = await two_versions(client)
    response = await client.get(f"/fhir/Patient/{id_}/_history/99999999999999999999999")
    assert response.status_code == 404
    assert response.json()["issue"][0]["diagnostics"] == (
        "version '99999999999999999999999' is not a version number"
    )


async def test_vread_of_a_non_ascii_digit_version_is_404(client: AsyncTestClient[Any]) -> None:
    id_ = await two_versions(client)
    response = await client.get(f"/fhir/Patient/{id_}/_history/\u00b2")
    assert response.status_code == 404
    assert response.json()["issue"][0]["code"] == "not-found"
