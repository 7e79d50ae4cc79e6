"""history (http.html#history): instance, type and system level; a `history` Bundle, newest
first, with request/response per entry, `_count` paging and `_since`."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

PATIENT = {"resourceType": "Patient", "gender": "female"}


async def three_versions(client: AsyncTestClient[Any]) -> str:
    id_ = str((await client.post("/fhir/Patient", json=PATIENT)).json()["id"])
    await client.put(f"/fhir/Patient/{id_}", json={**PATIENT, "id": id_, "gender": "male"})
    await client.delete(f"/fhir/Patient/{id_}")
    return id_


async def test_instance_history_lists_every_version_newest_first(
    client: AsyncTestClient[Any],
) -> None:
    id_ = await three_versions(client)
    response = await client.get(f"/fhir/Patient/{id_}/_history")
    assert response.status_code == 200
    body = response.json()
    assert (body["resourceType"], body["type"]) == ("Bundle", "history")
    entries = body["entry"]
    assert [e["request"] for e in entries] == [
        {"method": "DELETE", "url": f"Patient/{id_}"},
        {"method": "PUT", "url": f"Patient/{id_}"},
        {"method": "POST", "url": "Patient"},
    ]
    assert [e["response"]["status"] for e in entries] == ["204 No Content", "200 OK", "201 Created"]
    assert [e["response"]["etag"] for e in entries] == ['W/"3"', 'W/"2"', 'W/"1"']
    assert "resource" not in entries[0]
    assert [e["resource"]["gender"] for e in entries[1:]] == ["male", "female"]
    assert all(e["fullUrl"] == f"http://micdr.local/fhir/Patient/{id_}" for e in entries)


async def test_type_history_holds_only_that_type(client: AsyncTestClient[Any]) -> None:
    await three_versions(client)
    await client.post(
        "/fhir/Observation",
        json={"resourceType": "Observation", "status": "final", "code": {"text": "x"}},
    )
    patients = (await client.get("/fhir/Patient/_history")).json()["entry"]
    assert len(patients) == 3
    assert {e["fullUrl"].split("/")[-2] for e in patients} == {"Patient"}


async def test_system_history_holds_every_type(client: AsyncTestClient[Any]) -> None:
    await three_versions(client)
    await client.post(
        "/fhir/Observation",
        json={"resourceType": "Observation", "status": "final", "code": {"text": "x"}},
    )
    entries = (await client.get("/fhir/_history")).json()["entry"]
    assert len(entries) == 4
    assert entries[0]["request"] == {"method": "POST", "url": "Observation"}


async def test_count_pages_without_repeating_or_skipping(client: AsyncTestClient[Any]) -> None:
    id_ = await three_versions(client)
    first = (await client.get(f"/fhir/Patient/{id_}/_history", params={"_count": "2"})).json()
    assert [e["response"]["etag"] for e in first["entry"]] == ['W/"3"', 'W/"2"']
    next_url = next(lk["url"] for lk in first["link"] if lk["relation"] == "next")
    second = (await client.get(next_url.removeprefix("http://micdr.local"))).json()
    assert [e["response"]["etag"] for e in second["entry"]] == ['W/"1"']
    assert [lk["relation"] for lk in second["link"]] == ["self"]


async def test_since_in_the_future_gives_an_empty_history(client: AsyncTestClient[Any]) -> None:
    id_ = await three_versions(client)
    response = await client.get(
        f"/fhir/Patient/{id_}/_history", params={"_since": "2999-01-01T00:00:00Z"}
    )
    assert response.status_code == 200
    assert "entry" not in response.json()  # R4 JSON has no empty arrays


async def test_malformed_since_is_400(client: AsyncTestClient[Any]) -> None:
    id_ = await three_versions(client)
    response = await client.get(f"/fhir/Patient/{id_}/_history", params={"_since": "yesterday"})
    assert response.status_code == 400
    assert response.json()["issue"][0]["diagnostics"] == (
        "_since must be a FHIR instant, not 'yesterday'"
    )


async def test_history_of_an_unknown_id_is_404(client: AsyncTestClient[Any]) -> None:
    response = await client.get("/fhir/Patient/nope/_history")
    assert response.status_code == 404
