"""transaction (http.html#transaction) and the IG's Submit MI Bundle (IG R5, R12-R19)."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests._data import SYNTHEA
from tests.conformance import _clients
from tests.conformance.conftest import episode

Client = AsyncTestClient[Any]
plain_client = _clients.plain_client  # a fixture: IG mode off


def statuses(response_bundle: dict[str, Any]) -> list[str]:
    return [e["response"]["status"] for e in response_bundle["entry"]]


def locations(response_bundle: dict[str, Any]) -> list[str]:
    """`Type/id` of each entry, from its fullUrl."""
    return [e["fullUrl"].split("/fhir/", 1)[1] for e in response_bundle["entry"]]


async def count_of(client: Client, type_: str) -> int:
    history = await client.get(f"/fhir/{type_}/_history", params={"_count": "1000"})
    assert history.status_code == 200
    return len({e["fullUrl"] for e in history.json().get("entry", [])})


@pytest.mark.parametrize("path", ["/fhir", "/fhir/Bundle"])
async def test_an_ig_episode_creates_seven_resources(client: Client, path: str) -> None:
    response = await client.post(path, json=episode(1))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["type"] == "transaction-response"
    assert statuses(body) == ["201 Created"] * 7
    types = [loc.split("/")[0] for loc in locations(body)]
    assert types == [
        "Patient",
        "Organization",
        "Practitioner",
        "ServiceRequest",
        "Endpoint",
        "ImagingStudy",
        "DiagnosticReport",
    ]


async def test_the_same_episode_again_answers_200_with_the_same_ids(client: Client) -> None:
    first = (await client.post("/fhir", json=episode(2))).json()
    again = await client.post("/fhir", json=episode(2))
    assert again.status_code == 200
    assert statuses(again.json()) == ["200 OK"] * 7
    assert [e["fullUrl"] for e in again.json()["entry"]] == [e["fullUrl"] for e in first["entry"]]
    # identical content is a documented no-op: still version 1
    assert {e["response"]["etag"] for e in again.json()["entry"]} == {'W/"1"'}


async def test_a_changed_episode_makes_version_two(client: Client) -> None:
    await client.post("/fhir", json=episode(3))
    changed = episode(3)
    report = next(
        e for e in changed["entry"] if e["resource"]["resourceType"] == "DiagnosticReport"
    )
    report["resource"]["status"] = "amended"
    response = (await client.post("/fhir", json=changed)).json()
    by_type = {e["fullUrl"].split("/")[-2]: e["response"] for e in response["entry"]}
    assert by_type["DiagnosticReport"]["etag"] == 'W/"2"'
    assert by_type["Patient"]["etag"] == 'W/"1"'


async def test_urn_uuid_references_are_rewritten_to_assigned_ids(client: Client) -> None:
    body = (await client.post("/fhir", json=episode(1))).json()
    refs = dict(
        zip(
            [
                "Patient",
                "Organization",
                "Practitioner",
                "ServiceRequest",
                "Endpoint",
                "ImagingStudy",
                "DiagnosticReport",
            ],
            locations(body),
            strict=True,
        )
    )
    report = (await client.get(f"/fhir/{refs['DiagnosticReport']}")).json()
    assert report["subject"]["reference"] == refs["Patient"]
    assert report["basedOn"][0]["reference"] == refs["ServiceRequest"]
    study = (await client.get(f"/fhir/{refs['ImagingStudy']}")).json()
    assert study["endpoint"][0]["reference"] == refs["Endpoint"]


async def test_client_ids_are_not_stored_ids(client: Client) -> None:
    bundle = episode(1)
    for entry in bundle["entry"]:
        entry["resource"]["id"] = "client-chosen"
    body = (await client.post("/fhir", json=bundle)).json()
    assert all("client-chosen" not in loc for loc in locations(body))


@pytest.mark.parametrize("position", range(7))
async def test_a_failing_entry_at_any_position_stores_nothing(
    client: Client, position: int
) -> None:
    bundle = episode(1)
    bundle["entry"][position]["resource"]["status"] = (
        "no-such-status" if "status" in bundle["entry"][position]["resource"] else None
    )
    if bundle["entry"][position]["resource"]["status"] is None:
        bundle["entry"][position]["resource"]["status"] = "no-such-status"
    response = await client.post("/fhir", json=bundle)
    assert response.status_code == 400, response.text
    issue = response.json()["issue"][0]
    assert any(e.startswith(f"Bundle.entry[{position}].resource") for e in issue["expression"])
    history = (await client.get("/fhir/_history")).json()
    assert history.get("entry", []) == []


async def test_an_ambiguous_conditional_update_is_412_and_stores_nothing(client: Client) -> None:
    patient = {"resourceType": "Patient", "identifier": [{"system": "urn:s", "value": "dup"}]}
    await client.post("/fhir/Patient", json=patient)
    await client.post("/fhir/Patient", json=patient)
    bundle = episode(1)
    bundle["entry"][0]["request"]["url"] = "Patient?identifier=urn:s|dup"
    response = await client.post("/fhir", json=bundle)
    assert response.status_code == 412
    assert response.json()["issue"][0]["code"] == "multiple-matches"
    assert await count_of(client, "ServiceRequest") == 0


async def test_the_same_resource_twice_is_rejected(client: Client) -> None:
    bundle = episode(1)
    bundle["entry"].append(copy.deepcopy(bundle["entry"][0]))
    bundle["entry"][-1]["fullUrl"] = "urn:uuid:00000000-0000-0000-0000-000000000001"
    response = await client.post("/fhir", json=bundle)
    assert response.status_code == 400
    assert response.json()["issue"][0]["code"] == "duplicate"


async def test_an_entry_without_request_is_rejected(client: Client) -> None:
    bundle = episode(1)
    del bundle["entry"][3]["request"]
    response = await client.post("/fhir", json=bundle)
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["Bundle.entry[3].request"]


@pytest.mark.parametrize("kind", ["collection", "document", "searchset", None])
async def test_a_bundle_that_is_not_a_transaction_or_batch_is_rejected(
    client: Client, kind: str | None
) -> None:
    bundle = episode(1)
    bundle["type"] = kind
    response = await client.post("/fhir", json=bundle)
    assert response.status_code == 400


async def test_outcome_does_not_depend_on_entry_order(client: Client) -> None:
    bundle = episode(2)
    bundle["entry"].reverse()
    body = (await client.post("/fhir", json=bundle)).json()
    assert statuses(body) == ["201 Created"] * 7
    report_loc = next(loc for loc in locations(body) if loc.startswith("DiagnosticReport/"))
    patient_loc = next(loc for loc in locations(body) if loc.startswith("Patient/"))
    report = (await client.get(f"/fhir/{report_loc}")).json()
    assert report["subject"]["reference"] == patient_loc


async def test_ten_concurrent_submissions_of_one_episode_create_each_resource_once(
    client: Client,
) -> None:
    responses = await asyncio.gather(*[client.post("/fhir", json=episode(1)) for _ in range(10)])
    assert [r.status_code for r in responses] == [200] * 10
    for type_ in ("Patient", "ServiceRequest", "ImagingStudy", "DiagnosticReport"):
        assert await count_of(client, type_) == 1
    ids = {tuple(locations(r.json())) for r in responses}
    assert len(ids) == 1


async def test_a_batch_answers_each_entry_on_its_own(client: Client) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "gender": "male"},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {"resourceType": "Patient", "gender": "nonsense"},
                "request": {"method": "POST", "url": "Patient"},
            },
            {"request": {"method": "DELETE", "url": "Patient/unknown"}},
        ],
    }
    body = (await client.post("/fhir", json=bundle)).json()
    assert body["type"] == "batch-response"
    assert [e["response"]["status"] for e in body["entry"]] == [
        "201 Created",
        "400 Bad Request",
        "404 Not Found",
    ]
    assert body["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("path", SYNTHEA, ids=lambda p: p.stem.split("_")[0])
async def test_a_synthea_bundle_loads_and_every_reference_resolves(
    plain_client: Client, path: Path
) -> None:
    # US data (NPI, no UPI): a plain FHIR server's job; IG mode refuses it (test_ig_rules.py).
    client = plain_client
    bundle = json.loads(path.read_text())
    response = await client.post("/fhir", json=bundle)
    assert response.status_code == 200, response.text[:2000]
    body = response.json()
    assert len(body["entry"]) == len(bundle["entry"])
    assert set(statuses(body)) == {"201 Created"}
    for loc in locations(body):
        resource = (await client.get(f"/fhir/{loc}")).json()
        for ref in _references(resource):
            if ref.startswith("#"):
                continue
            target = await client.get(f"/fhir/{ref}")
            assert target.status_code == 200, f"{loc} -> {ref}"


def _references(node: Any) -> list[str]:
    if isinstance(node, dict):
        out = [node["reference"]] if isinstance(node.get("reference"), str) else []
        return out + [r for k, v in node.items() if k != "reference" for r in _references(v)]
    if isinstance(node, list):
        return [r for v in node for r in _references(v)]
    return []


async def test_get_entries_are_answered_after_the_writes(client: Client) -> None:
    created = (await client.post("/fhir/Patient", json={"resourceType": "Patient"})).json()
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "GET", "url": f"Patient/{created['id']}"}},
            {"request": {"method": "GET", "url": "Patient/missing"}},
            {
                "fullUrl": "urn:uuid:11111111-1111-1111-1111-111111111111",
                "resource": {"resourceType": "Patient", "id": created["id"], "gender": "other"},
                "request": {"method": "PUT", "url": f"Patient/{created['id']}"},
            },
            {"request": {"method": "GET", "url": f"Patient/{created['id']}/_history/1"}},
        ],
    }
    body = (await client.post("/fhir", json=bundle)).json()
    assert [e["response"]["status"] for e in body["entry"]] == [
        "200 OK",
        "404 Not Found",
        "200 OK",
        "200 OK",
    ]
    # the read runs after the update, so it sees version 2
    assert body["entry"][0]["resource"]["gender"] == "other"
    assert body["entry"][0]["response"]["etag"] == 'W/"2"'
    assert body["entry"][3]["resource"]["meta"]["versionId"] == "1"


async def test_batch_get_entries_read_and_search(client: Client) -> None:
    created = (await client.post("/fhir/Patient", json={"resourceType": "Patient"})).json()
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": f"Patient/{created['id']}"}},
            {"request": {"method": "GET", "url": "Unicorn/1"}},
        ],
    }
    body = (await client.post("/fhir", json=bundle)).json()
    # an entry naming no FHIR type is a malformed entry (400), as for writes
    assert [e["response"]["status"] for e in body["entry"]] == ["200 OK", "400 Bad Request"]
    assert body["entry"][0]["resource"]["id"] == created["id"]
