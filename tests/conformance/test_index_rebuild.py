"""The search index is derived data (app/deploy/engines.py): a start that finds it empty while the
store holds resources (the embedded index's file deleted, or a data dir from before the index had
its own file; the Elasticsearch indexes deleted) rebuilds it from the store in the background
(embedded: in-process; full stack: a reindex job for the worker), and searches find again what was
written before, and not what was deleted."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.deploy.assemble import OpenEngines
from app.deploy.engines import index_lost, open_engines
from app.fhir.clock import utc_now
from app.fhir.meta import identifier_tokens, with_meta
from app.main import create_app
from app.records import Transaction, Write
from app.settings import Settings, load_settings
from indexing.engines.elasticsearch.adapter import ElasticsearchSearchIndex
from indexing.registry import SearchParamRegistry
from tests._full_stack import drop, full_stack_env, open_with_worker, unique_name
from tests.conformance._clients import strict_client
from tests.conformance.conftest import indexed


async def found(client: AsyncTestClient[Any], query: str, want: set[str]) -> set[str]:
    """The ids a search answers, polled until they are `want` or 20 s pass (the rebuild runs in
    the background)."""
    deadline = asyncio.get_running_loop().time() + 20.0
    while True:
        response = await client.get(f"/fhir/{query}")
        assert response.status_code == 200, response.text
        ids = {e["resource"]["id"] for e in response.json().get("entry", [])}
        if ids == want or asyncio.get_running_loop().time() > deadline:
            return ids
        await asyncio.sleep(0.05)


async def create(client: AsyncTestClient[Any], resource: dict[str, Any]) -> str:
    response = await client.post(f"/fhir/{resource['resourceType']}", json=resource)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def patient(given: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": "Rebuilt", "given": [given]}]}


async def lose_index(settings: Settings) -> None:
    """Delete the deployment's whole search index, as an operator's mistake would."""
    if settings.elasticsearch_url is None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{settings.sqlite_index_path}{suffix}").unlink(missing_ok=True)
        return
    index = await ElasticsearchSearchIndex.open(
        settings.elasticsearch_url, settings.index_prefix, SearchParamRegistry.load()
    )
    try:
        await index.drop()
    finally:
        await index.close()


@pytest.mark.parametrize(
    "deployment", ["embedded", pytest.param("full", marks=pytest.mark.integration)]
)
async def test_a_lost_index_is_rebuilt_from_the_store(deployment: str, tmp_path: Path) -> None:
    env = {"MICDR_DATA_DIR": str(tmp_path)}
    if deployment == "full":
        env.update(await full_stack_env(unique_name()))
    settings = load_settings(env)
    try:
        await _lose_and_rebuild(
            settings, open_with_worker if deployment == "full" else open_engines
        )
    finally:
        if deployment == "full":
            await drop(settings)


async def _lose_and_rebuild(settings: Settings, open_with: OpenEngines) -> None:
    app = create_app(settings, open_with)
    async with strict_client(app) as client:
        ada, bea, cy = [await create(client, patient(given)) for given in ("Ada", "Bea", "Cy")]
        org = await create(client, {"resourceType": "Organization", "name": "Rebuilt Hospital"})
        assert (await client.delete(f"/fhir/Patient/{bea}")).status_code in (200, 204)
        await indexed(client)
        assert await found(client, "Patient?family=Rebuilt", {ada, cy}) == {ada, cy}

    await lose_index(settings)

    app = create_app(settings, open_with)
    async with strict_client(app) as client:
        assert await found(client, "Patient?family=Rebuilt", {ada, cy}) == {ada, cy}
        assert await found(client, "Organization?name=Rebuilt", {org}) == {org}
        # new commits are projected as usual next to the rebuild
        dee = await create(client, patient("Dee"))
        await indexed(client)
        assert await found(client, "Patient?family=Rebuilt", {ada, cy, dee}) == {ada, cy, dee}


async def test_an_empty_index_is_lost_only_once_the_store_projected_something(
    tmp_path: Path,
) -> None:
    """A worker starting after the API took its first writes finds the index empty and the
    store not: those commits wait in the outbox, so nothing is lost and no rebuild is queued.
    Once a commit was marked indexed, an empty index is a lost one."""
    settings = load_settings({"MICDR_DATA_DIR": str(tmp_path)})
    engines = await open_engines(settings)
    try:
        store, index = engines.store, engines.index
        assert index is not None
        assert not await index_lost(store, index)  # nothing anywhere
        resource = with_meta(patient("Ada"), "p1", 1, utc_now())
        write = Write("Patient", "p1", 1, "create", resource, identifier_tokens(resource))
        seq = await store.commit(Transaction((write,), last_updated=utc_now()))
        assert seq == 1
        assert not await index_lost(store, index)  # the first commit waits for projection
        await store.mark_indexed([seq])
        assert await index_lost(store, index)
    finally:
        await engines.close()
