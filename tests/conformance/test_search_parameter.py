"""A SearchParameter resource registers a custom search parameter (R4 search.html §3.1.1.5
"Search Parameters" and SearchParameter; issue 5): POSTed `active`, the server validates it
(400 naming the problem otherwise), reindexes the types it applies to in the background, and
finds resources by it; it survives a restart; retired, it is no longer applied."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient

from app.main import create_app
from app.settings import load_settings
from tests.conformance._clients import strict_client
from tests.conformance.conftest import indexed

STRICT = {"Prefer": "handling=strict"}


def search_parameter(**overrides: Any) -> dict[str, Any]:
    return {
        "resourceType": "SearchParameter",
        "url": "https://example.org/fhir/SearchParameter/patient-marital",
        "name": "marital",
        "status": "active",
        "description": "Marital status of the patient",
        "code": "marital",
        "base": ["Patient"],
        "type": "token",
        "expression": "Patient.maritalStatus",
        **overrides,
    }


def patient(family: str, status: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "name": [{"family": family}],
        "maritalStatus": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": status}
            ]
        },
    }


async def found(client: AsyncTestClient[Any], query: str, timeout: float = 20.0) -> list[str]:
    """The families the search answers, once it answers at least one (the background reindex)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        response = await client.get(f"/fhir/Patient?{query}", headers=STRICT)
        assert response.status_code == 200, response.text
        families = sorted(
            e["resource"]["name"][0]["family"] for e in response.json().get("entry", [])
        )
        if families or asyncio.get_running_loop().time() > deadline:
            return families
        await asyncio.sleep(0.05)


async def test_a_posted_search_parameter_finds_resources_written_before_and_after_it(
    client: AsyncTestClient[Any],
) -> None:
    for family, status in (("Ames", "M"), ("Brook", "S"), ("Cole", "M")):
        assert (await client.post("/fhir/Patient", json=patient(family, status))).status_code == 201
    await indexed(client)
    before = await client.get("/fhir/Patient?marital=M", headers=STRICT)
    assert before.status_code == 400  # not a parameter yet

    created = await client.post("/fhir/SearchParameter", json=search_parameter())
    assert created.status_code == 201, created.text
    assert await found(client, "marital=M") == ["Ames", "Cole"]

    assert (await client.post("/fhir/Patient", json=patient("Dunn", "M"))).status_code == 201
    await indexed(client)
    assert await found(client, "marital=M") == ["Ames", "Cole", "Dunn"]
    system = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"
    assert await found(client, f"marital={system}|S") == ["Brook"]


async def test_an_unusable_search_parameter_is_refused_with_the_reason(
    client: AsyncTestClient[Any],
) -> None:
    cases = [
        (search_parameter(expression="Observation.status"), "selects nothing in Patient"),
        (search_parameter(code="id"), "reserved by the index"),
        (search_parameter(expression="Patient.name.where("), "expression"),
        (search_parameter(type="composite"), "needs SearchParameter.component"),
    ]
    for body, reason in cases:
        response = await client.post("/fhir/SearchParameter", json=body)
        assert response.status_code == 400, (body, response.text)
        diagnostics = response.json()["issue"][0]["diagnostics"]
        assert reason in diagnostics, diagnostics
    draft = await client.post(
        "/fhir/SearchParameter", json=search_parameter(status="draft", expression="Obs.x")
    )
    assert draft.status_code == 201  # only an active definition must be usable


async def test_a_registered_parameter_survives_a_restart_and_retiring_removes_it(
    tmp_path: Path,
) -> None:
    settings = load_settings({"MICDR_DATA_DIR": str(tmp_path)})
    async with strict_client(create_app(settings)) as client:
        assert (await client.post("/fhir/Patient", json=patient("Ames", "M"))).status_code == 201
        created = await client.post("/fhir/SearchParameter", json=search_parameter())
        assert created.status_code == 201
        sp_id = created.json()["id"]
        assert await found(client, "marital=M") == ["Ames"]

    async with strict_client(create_app(settings)) as client:
        assert await found(client, "marital=M") == ["Ames"]
        retired = await client.put(
            f"/fhir/SearchParameter/{sp_id}",
            json={**search_parameter(status="retired"), "id": sp_id},
        )
        assert retired.status_code == 200, retired.text
        gone = await client.get("/fhir/Patient?marital=M", headers=STRICT)
        assert gone.status_code == 400
