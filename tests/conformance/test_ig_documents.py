"""The longitudinal index (Ontario MI IG R30, R31): every stored ServiceRequest, DiagnosticReport
and ImagingStudy has a server-maintained DocumentReference whose attachment URL resolves to it,
kept in step in the same transaction (app/ig/documents.py)."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.ig.documents import index_id
from tests.conformance import _clients
from tests.conformance.conftest import episode

Client = AsyncTestClient[Any]
plain_client = _clients.plain_client  # a fixture: IG mode off
MAIN = ("ServiceRequest", "ImagingStudy", "DiagnosticReport")


def refs_of(response_bundle: dict[str, Any]) -> dict[str, str]:
    """Type -> Type/id of each entry of a transaction response."""
    out = {}
    for e in response_bundle["entry"]:
        ref = e["fullUrl"].split("/fhir/", 1)[1]
        out[ref.split("/")[0]] = ref
    return out


async def index_entries(client: Client) -> list[dict[str, Any]]:
    """The current version of every DocumentReference (live or deleted: None)."""
    history = await client.get("/fhir/DocumentReference/_history", params={"_count": "1000"})
    assert history.status_code == 200
    urls = {e["fullUrl"].split("/fhir/", 1)[1] for e in history.json().get("entry", [])}
    found = []
    for url in sorted(urls):
        response = await client.get(f"/fhir/{url}")
        if response.status_code == 200:
            found.append(response.json())
    return found


async def index_entry_of(client: Client, ref: str) -> Any:
    return await client.get(f"/fhir/DocumentReference/{index_id(ref)}")


@pytest.mark.parametrize("n", [1, 2, 3])
async def test_r30_r31_each_episode_gets_three_entries_that_resolve(client: Client, n: int) -> None:
    response = await client.post("/fhir", json=episode(n))
    assert response.status_code == 200, response.text
    refs = refs_of(response.json())
    docs = await index_entries(client)
    assert len(docs) == 3
    targets = set()
    for doc in docs:
        assert doc["status"] == "current"
        assert doc["meta"]["versionId"] == "1"
        attachment = doc["content"][0]["attachment"]
        assert attachment["contentType"] == "application/fhir+json"
        main = await client.get(f"/fhir/{attachment['url']}")  # R31: relative to the base
        assert main.status_code == 200
        body = main.json()
        targets.add(f"{body['resourceType']}/{body['id']}")
        assert doc["subject"] == body["subject"] == {"reference": refs["Patient"]}
        assert doc["identifier"] == body["identifier"]
        assert doc["context"]["related"] == [{"reference": attachment["url"]}]
        assert doc["id"] == index_id(attachment["url"])
    assert targets == {refs[t] for t in MAIN}


async def test_r30_the_entry_carries_type_category_and_clinical_period(client: Client) -> None:
    refs = refs_of((await client.post("/fhir", json=episode(1))).json())
    report = (await index_entry_of(client, refs["DiagnosticReport"])).json()
    source = next(
        e["resource"]
        for e in episode(1)["entry"]
        if e["resource"]["resourceType"] == "DiagnosticReport"
    )
    assert report["type"] == source["code"]
    assert report["category"][1:] == source["category"]
    assert report["context"]["period"] == {
        "start": source["effectiveDateTime"],
        "end": source["effectiveDateTime"],
    }
    study = (await index_entry_of(client, refs["ImagingStudy"])).json()
    assert study["category"][1] == {
        "coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "DX"}]
    }


async def test_r30_reloading_an_episode_leaves_the_entries_at_version_one(client: Client) -> None:
    await client.post("/fhir", json=episode(2))
    again = await client.post("/fhir", json=episode(2))
    assert again.status_code == 200
    docs = await index_entries(client)
    assert [d["meta"]["versionId"] for d in docs] == ["1", "1", "1"]


async def test_r30_a_changed_report_bumps_only_its_entry(client: Client) -> None:
    refs = refs_of((await client.post("/fhir", json=episode(3))).json())
    changed = episode(3)
    report = next(
        e for e in changed["entry"] if e["resource"]["resourceType"] == "DiagnosticReport"
    )
    report["resource"]["status"] = "amended"
    report["resource"]["issued"] = "2021-02-17T10:00:00-05:00"
    assert (await client.post("/fhir", json=changed)).status_code == 200
    entry = (await index_entry_of(client, refs["DiagnosticReport"])).json()
    assert entry["meta"]["versionId"] == "2"
    assert entry["content"][0]["attachment"]["url"] == refs["DiagnosticReport"]
    for type_ in ("ServiceRequest", "ImagingStudy"):
        other = (await index_entry_of(client, refs[type_])).json()
        assert other["meta"]["versionId"] == "1"


async def test_r30_deleting_a_report_deletes_its_entry(client: Client) -> None:
    refs = refs_of((await client.post("/fhir", json=episode(1))).json())
    deleted = await client.delete(f"/fhir/{refs['DiagnosticReport']}")
    assert deleted.status_code in (200, 204)
    assert (await index_entry_of(client, refs["DiagnosticReport"])).status_code == 410
    assert (await index_entry_of(client, refs["ImagingStudy"])).status_code == 200
    assert len(await index_entries(client)) == 2


async def test_r30_a_resource_written_alone_is_indexed_too(client: Client) -> None:
    order = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/x"},
        "authoredOn": "2024-01-02",
    }
    created = await client.post("/fhir/ServiceRequest", json=order)
    assert created.status_code == 201
    ref = f"ServiceRequest/{created.json()['id']}"
    entry = await index_entry_of(client, ref)
    assert entry.status_code == 200
    assert entry.json()["context"]["period"] == {"start": "2024-01-02", "end": "2024-01-02"}
    patched = await client.put(f"/fhir/{ref}", json={**created.json(), "status": "completed"})
    assert patched.status_code == 200
    assert (await index_entry_of(client, ref)).json()["meta"]["versionId"] == "2"


async def test_a_plain_fhir_server_keeps_no_index(plain_client: Client) -> None:
    assert (await plain_client.post("/fhir", json=episode(1))).status_code == 200
    assert await index_entries(plain_client) == []
