"""delete (http.html#delete): versioned deletes; read then answers 410 Gone, history keeps the
tombstone; deleting again, or a conditional delete of nothing, is a 204."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

PATIENT = {"resourceType": "Patient", "name": [{"family": "Tremblay"}]}


async def created(client: AsyncTestClient[Any]) -> str:
    return str((await client.post("/fhir/Patient", json=PATIENT)).json()["id"])


async def test_delete_answers_204_with_the_tombstone_etag(client: AsyncTestClient[Any]) -> None:
    id_ = await created(client)
    response = await client.delete(f"/fhir/Patient/{id_}")
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["etag"] == 'W/"2"'


async def test_read_after_delete_is_410_gone(client: AsyncTestClient[Any]) -> None:
    id_ = await created(client)
    await client.delete(f"/fhir/Patient/{id_}")
    response = await client.get(f"/fhir/Patient/{id_}")
    assert response.status_code == 410
    assert response.headers["etag"] == 'W/"2"'
    assert response.json()["issue"] == [
        {
            "severity": "error",
            "code": "deleted",
            "diagnostics": f"Patient/{id_} was deleted (version 2)",
        }
    ]


async def test_delete_of_a_deleted_resource_is_204_without_a_new_version(
    client: AsyncTestClient[Any],
) -> None:
    id_ = await created(client)
    await client.delete(f"/fhir/Patient/{id_}")
    response = await client.delete(f"/fhir/Patient/{id_}")
    assert response.status_code == 204
    history = (await client.get(f"/fhir/Patient/{id_}/_history")).json()
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "POST"]


async def test_delete_of_an_unknown_id_is_404(client: AsyncTestClient[Any]) -> None:
    response = await client.delete("/fhir/Patient/nope")
    assert response.status_code == 404
    assert response.json()["issue"][0]["diagnostics"] == "Patient/nope is not known"


async def test_earlier_version_stays_readable_after_delete(client: AsyncTestClient[Any]) -> None:
    id_ = await created(client)
    await client.delete(f"/fhir/Patient/{id_}")
    response = await client.get(f"/fhir/Patient/{id_}/_history/1")
    assert response.status_code == 200
    assert response.json()["name"] == [{"family": "Tremblay"}]


async def test_delete_with_stale_if_match_is_412(client: AsyncTestClient[Any]) -> None:
    id_ = await created(client)
    response = await client.delete(f"/fhir/Patient/{id_}", headers={"If-Match": 'W/"3"'})
    assert response.status_code == 412
    assert (await client.get(f"/fhir/Patient/{id_}")).status_code == 200


async def test_deleting_again_names_the_deleted_version(client: AsyncTestClient[Any]) -> None:
    id_ = await created(client)
    await client.delete(f"/fhir/Patient/{id_}")
    response = await client.delete(f"/fhir/Patient/{id_}")
    assert response.status_code == 204
    assert response.headers["etag"] == 'W/"2"'
