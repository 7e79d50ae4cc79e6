"""The full stack end to end on the real engines: the API on FerretDB (MongoDB wire) with
Elasticsearch as the index and arq on Redis; a `micdr worker` run in burst mode projects the
commits; then reads come from the store and searches from Elasticsearch."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from app.main import create_app
from app.settings import load_settings
from tests._full_stack import drop, full_stack_env, run_worker_burst
from tests.conformance.conftest import episode

HCN = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn"


async def test_submit_project_and_search_on_the_full_stack(unique_name: str) -> None:
    settings = load_settings(await full_stack_env(unique_name))
    try:
        async with AsyncTestClient(
            app=create_app(settings), base_url="http://micdr.local"
        ) as client:
            health = (await client.get("/health")).json()
            assert health["deployment"] == "full"
            assert health["store"]["version"].startswith("FerretDB")
            assert health["index"]["version"].startswith("9.")

            for n in (1, 2):
                response = await client.post("/fhir", json=episode(n))
                assert response.status_code == 200, response.text
                assert {e["response"]["status"] for e in response.json()["entry"]} == {
                    "201 Created"
                }
            health = (await client.get("/health")).json()
            assert health["index"]["oldest_unindexed_commit"]
            # the episodes wait for the same projection job: behind by exactly its lag
            behind = health["episodes"]
            assert behind["oldest_unreflected_commit"] == health["index"]["oldest_unindexed_commit"]
            assert behind["lag_seconds"] == health["index"]["lag_seconds"]
            assert behind["rebuilding_since"] is None
            assert (await client.get("/analytics/api/volume")).json()["rows"] == []

            await run_worker_burst(settings)

            health = (await client.get("/health")).json()
            assert health["index"]["oldest_unindexed_commit"] is None
            assert health["episodes"] == {
                "up": True,
                "oldest_unreflected_commit": None,
                "lag_seconds": 0.0,
                "rebuilding_since": None,
                "rebuilding_seconds": 0.0,
            }
            volume = (await client.get("/analytics/api/volume")).json()["rows"]
            assert sum(row["episodes"] for row in volume) == 2
            found = await client.get(
                f"/fhir/ImagingStudy?patient.identifier={HCN}|5566009041"
                "&_include=ImagingStudy:endpoint"
            )
            assert found.status_code == 200, found.text
            modes = sorted(
                (e["resource"]["resourceType"], e["search"]["mode"]) for e in found.json()["entry"]
            )
            assert modes == [("Endpoint", "include"), ("ImagingStudy", "match")]
            study = next(e for e in found.json()["entry"] if e["search"]["mode"] == "match")
            read = await client.get(study["fullUrl"].split("micdr.local")[1])
            assert read.status_code == 200
            assert read.json()["identifier"] == study["resource"]["identifier"]
    finally:
        await drop(settings)


async def test_an_unreachable_store_is_a_503_not_a_500(unique_name: str, services: Any) -> None:
    settings = load_settings(await full_stack_env(unique_name))
    try:
        async with AsyncTestClient(
            app=create_app(settings), base_url="http://micdr.local"
        ) as client:
            created = await client.post("/fhir/Patient", json={"resourceType": "Patient"})
            assert created.status_code == 201
            services.kill("mongo")
            try:
                response = await client.get(f"/fhir/Patient/{created.json()['id']}")
            finally:
                services.start("mongo")
            assert response.status_code == 503, response.text
            assert response.json()["issue"][0]["code"] in ("transient", "timeout")
    finally:
        await drop(settings)
