"""The index as a projection of the store, on the full stack's real engines (FerretDB store,
Elasticsearch index, arq worker on Redis), under faults (issue 5, "Done when"):

- after loading every Synthea Bundle and the IG episodes through the API and draining the
  worker, every current resource has exactly one document, equal field by field to a fresh
  `project()` of the store, and the live counts per type equal the store's;
- killing Elasticsearch mid-load, while submissions continue, then restarting it, ends with the
  same complete, correct index: the worker's jobs retry with backoff, the reconciler projects the
  rest, nothing is lost, and `/health` shows the lag growing, then 0;
- a reindex (new generation, alias swap) while updates keep arriving loses nothing;
- a SearchParameter POSTed to the API is registered, the arq reindex job fills the new field,
  and the search finds resources by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.deploy.engines import Engines, open_engines
from app.main import create_app
from app.reindex import reindex
from app.search_parameters import sync_search_parameters
from app.settings import Settings, load_settings
from tests._data import IG_EPISODES, SYNTHEA
from tests._full_stack import drop, full_stack_env, open_with_worker, run_worker_burst
from tests._index_check import differences, es_indexed, expected_index

# Six Synthea patients (~900 resources of 16 types) and the IG episodes: every resource type of
# the data, at a size the real engines load in well under a minute.
BUNDLES = SYNTHEA[:6] + IG_EPISODES


@pytest.fixture
async def stack(
    unique_name: str,
) -> AsyncIterator[tuple[Settings, AsyncTestClient[Any], Engines]]:
    # Synthea's organizations carry no Ontario UPI (IG R28)
    settings = load_settings({**await full_stack_env(unique_name), "MICDR_IG_MODE": "0"})
    engines = await open_engines(settings)
    try:
        async with AsyncTestClient(
            app=create_app(settings), base_url="http://micdr.local", timeout=120
        ) as client:
            yield settings, client, engines
    finally:
        await engines.close()
        with contextlib.suppress(Exception):
            await drop(settings)


async def submit(client: AsyncTestClient[Any], path: Path) -> None:
    response = await client.post("/fhir", json=json.loads(path.read_text("utf-8")))
    assert response.status_code == 200, f"{path.name}: {response.text[:500]}"


async def assert_index_is_the_projection(settings: Settings, engines: Engines) -> None:
    store = engines.store
    types = await store.resource_types()
    expected = await expected_index(store, engines.registry, types)
    from elasticsearch import AsyncElasticsearch

    client = AsyncElasticsearch(settings.elasticsearch_url, request_timeout=60)
    try:
        actual = await es_indexed(client, settings.index_prefix, types)
    finally:
        await client.close()
    assert differences(expected, actual) == []
    assert len(actual) == len(expected)
    for resource_type in types:
        live = sum(
            1 for (t, _), (_, doc) in actual.items() if t == resource_type and doc is not None
        )
        assert live == await store.count(resource_type), resource_type


async def health(client: AsyncTestClient[Any]) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get("/health")).json()
    return body


async def test_every_resource_has_exactly_one_correct_document(
    stack: tuple[Settings, AsyncTestClient[Any], Engines],
) -> None:
    settings, client, engines = stack
    for path in BUNDLES:
        await submit(client, path)
    assert (await health(client))["index"]["oldest_unindexed_commit"] is not None
    await run_worker_burst(settings)
    assert (await health(client))["index"]["lag_seconds"] == 0
    assert sum([await engines.store.count(t) for t in await engines.store.resource_types()]) > 800
    await assert_index_is_the_projection(settings, engines)


async def test_killing_elasticsearch_mid_load_loses_nothing(
    stack: tuple[Settings, AsyncTestClient[Any], Engines], services: Any
) -> None:
    settings, _, engines = stack
    # The worker runs beside the API, as in the deployment (a worker started in the test's own
    # loop would not run while the test client serves a request: it blocks its caller's loop).
    app = create_app(settings, open_with_worker)
    async with AsyncTestClient(app=app, base_url="http://micdr.local", timeout=120) as client:
        half = len(BUNDLES) // 2
        for path in BUNDLES[:half]:
            await submit(client, path)
        await wait_drained(client, 120)  # the worker is up and has indexed the first half
        services.kill("elasticsearch")
        try:
            for path in BUNDLES[half:]:  # writes never need the index
                await submit(client, path)
            await asyncio.sleep(2.5)
            down = await health(client)
            assert down["index"]["up"] is False
            assert down["index"]["oldest_unindexed_commit"] is not None
            assert down["index"]["lag_seconds"] >= 2
        finally:
            services.start("elasticsearch")
        await wait_drained(client, 240)
    await assert_index_is_the_projection(settings, engines)


async def wait_drained(client: AsyncTestClient[Any], seconds: float) -> None:
    """Poll /health until the index is up with no unindexed commit."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        now = await health(client)
        if now["index"]["up"] and now["index"]["oldest_unindexed_commit"] is None:
            return
        await asyncio.sleep(1)
    raise AssertionError(f"the backlog did not drain in {seconds}s: {now['index']}")


async def test_a_reindex_under_concurrent_writes_loses_nothing(
    stack: tuple[Settings, AsyncTestClient[Any], Engines],
) -> None:
    settings, client, engines = stack
    for path in BUNDLES[:6]:
        await submit(client, path)
    await run_worker_burst(settings)
    store, registry = engines.store, engines.registry
    observations = [r.id for r in await store.scan("Observation", None, 120)]

    async def writer() -> None:
        for n, id_ in enumerate(observations):
            current = (await client.get(f"/fhir/Observation/{id_}")).json()
            current["status"] = "amended"
            current["valueString"] = f"amended {n}"
            current.pop("valueQuantity", None)
            current.pop("valueCodeableConcept", None)
            response = await client.put(f"/fhir/Observation/{id_}", json=current)
            assert response.status_code == 200, response.text
            if n % 20 == 0:
                await run_worker_burst(settings)

    assert engines.index is not None
    types = await store.resource_types()
    report, _ = await asyncio.gather(reindex(store, engines.index, registry, types), writer())
    await run_worker_burst(settings)
    assert report.written >= sum([await store.count(t) for t in types])
    await assert_index_is_the_projection(settings, engines)
    amended = await client.get("/fhir/Observation?status=amended&_summary=count")
    assert amended.json()["total"] == len(observations)


async def test_a_posted_search_parameter_is_reindexed_by_the_worker(
    stack: tuple[Settings, AsyncTestClient[Any], Engines],
) -> None:
    settings, client, engines = stack
    for path in BUNDLES[:4]:
        await submit(client, path)
    await run_worker_burst(settings)
    parameter = {
        "resourceType": "SearchParameter",
        "url": "https://example.org/fhir/SearchParameter/patient-marital",
        "name": "marital",
        "status": "active",
        "description": "Marital status",
        "code": "marital",
        "base": ["Patient"],
        "type": "token",
        "expression": "Patient.maritalStatus",
    }
    created = await client.post("/fhir/SearchParameter", json=parameter)
    assert created.status_code == 201, created.text
    await run_worker_burst(settings)  # the projection, then the arq reindex job
    await asyncio.sleep(1.2)
    married = [
        r.id
        for r in await engines.store.scan("Patient", None, 100)
        if r.resource
        and r.resource.get("maritalStatus", {}).get("coding", [{}])[0].get("code") == "M"
    ]
    assert married
    found = await client.get(
        "/fhir/Patient?marital=M&_count=100", headers={"Prefer": "handling=strict"}
    )
    assert found.status_code == 200, found.text
    assert sorted(e["resource"]["id"] for e in found.json().get("entry", [])) == sorted(married)
    await sync_search_parameters(engines.store, engines.registry)  # this test's own registry
    await assert_index_is_the_projection(settings, engines)
