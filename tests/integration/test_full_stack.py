"""The full stack end to end on the real engines: the API on FerretDB (MongoDB wire) with
Elasticsearch as the index and arq on Redis; a `micdr worker` run in burst mode projects the
commits; then reads come from the store and searches from Elasticsearch."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar.testing import AsyncTestClient

from app.main import create_app
from app.settings import Settings, load_settings
from tests.conformance.conftest import episode
from workers.arq_settings import build_worker

HCN = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn"


def full_stack(mongo_url: str, elasticsearch_url: str, redis_url: str, name: str) -> Settings:
    return load_settings(
        {
            "MICDR_MONGO_URL": mongo_url,
            "MICDR_MONGO_DATABASE": name.replace("-", "_"),
            "MICDR_ELASTICSEARCH_URL": elasticsearch_url,
            "MICDR_INDEX_PREFIX": name,
            "MICDR_REDIS_URL": redis_url,
        }
    )


async def run_worker_burst(settings: Settings) -> None:
    worker = build_worker(settings, burst=True)
    try:
        await worker.async_run()
    finally:
        await worker.close()


async def drop(settings: Settings) -> None:
    from elasticsearch import AsyncElasticsearch
    from pymongo import AsyncMongoClient

    es = AsyncElasticsearch(settings.elasticsearch_url)
    try:
        # wildcard deletes are refused (action.destructive_requires_name): name each index
        names = list(await es.indices.get(index=f"{settings.index_prefix}-*"))
        if names:
            await es.indices.delete(index=",".join(names))
    finally:
        await es.close()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    await client.drop_database(settings.mongo_database)
    await client.close()


async def test_submit_project_and_search_on_the_full_stack(
    mongo_url: str, elasticsearch_url: str, redis_url: str, unique_name: str
) -> None:
    settings = full_stack(mongo_url, elasticsearch_url, redis_url, unique_name)
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
            assert (await client.get("/health")).json()["index"]["oldest_unindexed_commit"]

            await run_worker_burst(settings)
            await asyncio.sleep(1.2)  # Elasticsearch's refresh interval

            assert (await client.get("/health")).json()["index"]["oldest_unindexed_commit"] is None
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


async def test_an_unreachable_store_is_a_503_not_a_500(
    mongo_url: str, elasticsearch_url: str, redis_url: str, unique_name: str, services: Any
) -> None:
    settings = full_stack(mongo_url, elasticsearch_url, redis_url, unique_name)
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
