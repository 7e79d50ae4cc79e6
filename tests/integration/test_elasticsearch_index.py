"""ElasticsearchSearchIndex against a real Elasticsearch 9 (docs/index-schema.md).

Synthea bundles are indexed through the same extraction and document code the projection uses;
raw checks go over plain HTTP, the way analysts query the index."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from indexing.document import IndexOp, index_document
from indexing.engines.elasticsearch.adapter import (
    ElasticsearchSearchIndex,
    ElasticsearchUnavailable,
)
from indexing.engines.elasticsearch.mapping import IndexSettings
from indexing.extract import extract_values
from indexing.plan.plan import Clause, IdIn, SearchPlan, SortKey, TokenMatch
from indexing.registry import SearchParamRegistry
from tests._data import SYNTHEA
from tests._full_stack import TEST_REFRESH_INTERVAL, unique_name

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def registry() -> SearchParamRegistry:
    return SearchParamRegistry.load()


@pytest.fixture
def prefix() -> str:
    return unique_name("micdr-it")


@pytest.fixture
async def index(
    elasticsearch_url: str, prefix: str, registry: SearchParamRegistry
) -> AsyncIterator[ElasticsearchSearchIndex]:
    opened = await ElasticsearchSearchIndex.open(
        elasticsearch_url,
        prefix,
        registry,
        settings=IndexSettings(refresh_interval=TEST_REFRESH_INTERVAL),
    )
    try:
        yield opened
    finally:
        await opened.drop()
        await opened.close()


@pytest.fixture
async def http(elasticsearch_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=elasticsearch_url, timeout=30) as client:
        yield client


def synthea_resources(limit: int | None = None) -> list[dict[str, Any]]:
    """Every Synthea resource with meta, its `urn:uuid:` references rewritten to `Type/id`."""
    resources: list[dict[str, Any]] = []
    for path in SYNTHEA[:limit]:
        bundle = json.loads(path.read_text("utf-8"))
        local = {
            e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}"
            for e in bundle["entry"]
        }
        text = json.dumps([entry["resource"] for entry in bundle["entry"]])
        text = re.sub(
            r'"(urn:uuid:[0-9a-f-]+)"', lambda m, to=local: json.dumps(to.get(m[1], m[1])), text
        )
        for resource in json.loads(text):
            resource["meta"] = {"versionId": "1", "lastUpdated": "2024-06-01T00:00:00Z"}
            resources.append(resource)
    return resources


def op_of(registry: SearchParamRegistry, resource: dict[str, Any], version: int) -> IndexOp:
    resource = {**resource, "meta": {**resource["meta"], "versionId": str(version)}}
    document = index_document(registry, resource, extract_values(registry, resource))
    return IndexOp(resource["resourceType"], resource["id"], version, document)


async def source_of(http: httpx.AsyncClient, alias: str, resource_id: str) -> dict[str, Any]:
    response = await http.get(f"/{alias}/_doc/{resource_id}")
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def ids_plan(resource_type: str, *ids: str) -> SearchPlan:
    return SearchPlan(types=(resource_type,), clauses=(Clause((IdIn(ids),)),))


async def test_open_fails_fast_when_unreachable(registry: SearchParamRegistry) -> None:
    started = time.monotonic()
    with pytest.raises(ElasticsearchUnavailable, match="not reachable"):
        await ElasticsearchSearchIndex.open("http://127.0.0.1:9", "micdr", registry)
    assert time.monotonic() - started < 10


async def test_synthea_one_document_per_resource(
    index: ElasticsearchSearchIndex,
    http: httpx.AsyncClient,
    prefix: str,
    registry: SearchParamRegistry,
) -> None:
    resources = synthea_resources()
    ops = [op_of(registry, r, 1) for r in resources]
    started = time.perf_counter()
    for start in range(0, len(ops), 1000):
        await index.write(ops[start : start + 1000])
    elapsed = time.perf_counter() - started
    print(f"\nindexed {len(ops)} Synthea resources in {elapsed:.2f}s: {len(ops) / elapsed:.0f}/s")
    await index.refresh()

    ids: dict[str, set[str]] = {}  # bundles share Organizations and Practitioners
    for resource in resources:
        ids.setdefault(resource["resourceType"], set()).add(resource["id"])
    counts = {resource_type: len(found) for resource_type, found in ids.items()}
    for resource_type, expected in counts.items():
        alias = f"{prefix}-{resource_type.lower()}"
        response = await http.get(f"/{alias}/_count")
        assert response.json()["count"] == expected, resource_type
        page = await index.search(SearchPlan(types=(resource_type,), count=0), with_total=True)
        assert page.total == expected

    patient = next(r for r in resources if r["resourceType"] == "Patient")
    body = await source_of(http, f"{prefix}-patient", patient["id"])
    assert body["_version"] == 1
    assert body["_index"] == f"{prefix}-patient-v1"
    source = body["_source"]
    assert source["id"] == patient["id"] and source["resourceType"] == "Patient"
    assert source["deleted"] is False and source["versionId"] == 1
    assert source["gender"][0]["forms"][0] == patient["gender"]
    assert source["birthdate"][0]["range"]["gte"].startswith(patient["birthDate"])
    assert source["family"][0]["exact"] == patient["name"][0]["family"]

    study = next(r for r in resources if r["resourceType"] == "ImagingStudy")
    source = (await source_of(http, f"{prefix}-imagingstudy", study["id"]))["_source"]
    assert source["subject"][0]["ref"] == study["subject"]["reference"]
    assert "DX" in source["modality"][0]["forms"]

    # the analysts' aggregation from docs/index-schema.md: studies per modality per month
    response = await http.post(
        f"/{prefix}-imagingstudy/_search",
        json={
            "size": 0,
            "query": {"bool": {"must_not": [{"term": {"deleted": True}}]}},
            "aggs": {
                "modality": {
                    "terms": {"field": "modality.code"},
                    "aggs": {
                        "per_month": {
                            "date_histogram": {"field": "started.gte", "calendar_interval": "month"}
                        }
                    },
                }
            },
        },
    )
    buckets = response.json()["aggregations"]["modality"]["buckets"]
    assert sum(b["doc_count"] for b in buckets) == counts["ImagingStudy"]
    assert {b["key"] for b in buckets} >= {"DX"}


async def test_stale_and_repeated_ops_are_ignored(
    index: ElasticsearchSearchIndex, registry: SearchParamRegistry
) -> None:
    patient = synthea_resources(limit=1)[0]
    newer = {**patient, "gender": "other"}
    await index.write([op_of(registry, newer, 2)])
    await index.write([op_of(registry, patient, 1), op_of(registry, newer, 2)])  # stale, repeat
    await index.refresh()
    page = await index.search(
        SearchPlan(types=("Patient",), clauses=(Clause((TokenMatch("gender", "other"),)),))
    )
    assert [(h.id, h.version) for h in page.hits] == [(patient["id"], 2)]


async def test_tombstones_hide_and_guard_deleted_resources(
    index: ElasticsearchSearchIndex,
    http: httpx.AsyncClient,
    prefix: str,
    registry: SearchParamRegistry,
) -> None:
    patient = synthea_resources(limit=1)[0]
    await index.write([op_of(registry, patient, 1)])
    await index.write([IndexOp("Patient", patient["id"], 2, None)])
    await index.write([op_of(registry, patient, 1)])  # a late, older projection
    await index.refresh()
    assert (await index.search(ids_plan("Patient", patient["id"]))).hits == []
    body = await source_of(http, f"{prefix}-patient", patient["id"])
    assert body["_version"] == 2 and body["_source"]["deleted"] is True

    await index.write([op_of(registry, patient, 3)])  # re-created after the delete
    await index.refresh()
    hits = (await index.search(ids_plan("Patient", patient["id"]))).hits
    assert [(h.id, h.version) for h in hits] == [(patient["id"], 3)]


async def test_pages_never_repeat_or_skip(
    index: ElasticsearchSearchIndex, registry: SearchParamRegistry
) -> None:
    resources = [r for r in synthea_resources(limit=4) if r["resourceType"] == "Observation"]
    await index.write([op_of(registry, r, 1) for r in resources])
    await index.refresh()
    plan = SearchPlan(types=("Observation",), sort=(SortKey("date", descending=True),), count=7)
    seen: list[str] = []
    after: Any = None
    while True:
        page = await index.search(plan, after=after)
        seen.extend(h.id for h in page.hits)
        if len(page.hits) < plan.count:
            break
        after = page.hits[-1].cursor
        json.dumps(after)  # the cursor is JSON-serialisable
        if len(seen) == 14 and "pit" in after:
            # a point in time that has gone away: the next page continues on the live index
            await index._close_pit(after["pit"])
    assert len(seen) == len(set(seen)) == len(resources)


async def test_reindex_swaps_the_alias_and_loses_nothing_while_writes_continue(
    index: ElasticsearchSearchIndex,
    http: httpx.AsyncClient,
    prefix: str,
    registry: SearchParamRegistry,
) -> None:
    resources = [r for r in synthea_resources(limit=6) if r["resourceType"] == "Observation"]
    store: dict[str, tuple[int, dict[str, Any] | None]] = {r["id"]: (1, r) for r in resources}
    await index.write([op_of(registry, r, 1) for r in resources])
    await index.refresh()

    async def projected() -> AsyncIterator[IndexOp]:
        """What the reindex CLI does: read the store's current state, slowly."""
        for resource_id in list(store):
            version, resource = store[resource_id]
            await asyncio.sleep(0)
            yield (
                op_of(registry, resource, version)
                if resource is not None
                else IndexOp("Observation", resource_id, version, None)
            )

    async def writer() -> None:
        """Concurrent updates, deletes and creates, each committed to the store first."""
        for n, resource in enumerate(resources[:60]):
            version = store[resource["id"]][0] + 1
            if n % 3 == 0:
                store[resource["id"]] = (version, None)
                await index.write([IndexOp("Observation", resource["id"], version, None)])
            else:
                store[resource["id"]] = (version, resource)
                await index.write([op_of(registry, resource, version)])
            created = {**resource, "id": f"new-{n}"}
            store[created["id"]] = (1, created)
            await index.write([op_of(registry, created, 1)])
            await asyncio.sleep(0.01)

    result, _ = await asyncio.gather(
        index.reindex("Observation", projected(), grace_seconds=0.5), writer()
    )
    assert result.index == f"{prefix}-observation-v2"
    assert result.previous == (f"{prefix}-observation-v1",)
    assert result.caught_up > 0  # the writer really wrote into v1 during the rebuild
    aliases = (await http.get(f"/_alias/{prefix}-observation")).json()
    assert list(aliases) == [f"{prefix}-observation-v2"]
    assert (await http.head(f"/{prefix}-observation-v1")).status_code == 404

    await index.refresh()
    live = {rid: v for rid, (v, resource) in store.items() if resource is not None}
    found: dict[str, int] = {}
    after: Any = None
    while True:
        page = await index.search(SearchPlan(types=("Observation",), count=500), after=after)
        found.update({h.id: h.version for h in page.hits})
        if len(page.hits) < 500:
            break
        after = page.hits[-1].cursor
    assert found == live
    for resource_id, (version, resource) in store.items():
        if resource is None:
            body = await source_of(http, f"{prefix}-observation", resource_id)
            assert body["_version"] == version and body["_source"]["deleted"] is True


async def test_an_index_that_outlived_its_alias_gets_it_back(
    elasticsearch_url: str,
    prefix: str,
    registry: SearchParamRegistry,
    http: httpx.AsyncClient,
) -> None:
    """A crash can leave the physical index without its alias; a new adapter (a restarted worker)
    must point the alias at it again and index, not report success for writes that reached no
    index."""
    patient = synthea_resources(limit=1)[0]
    first = await ElasticsearchSearchIndex.open(elasticsearch_url, prefix, registry)
    try:
        await first.write([op_of(registry, patient, 1)])
        alias = f"{prefix}-patient"
        response = await http.delete(f"/{alias}-v1/_alias/{alias}")
        response.raise_for_status()
        restarted = await ElasticsearchSearchIndex.open(elasticsearch_url, prefix, registry)
        try:
            newer = {**patient, "gender": "other"}
            await restarted.write([op_of(registry, newer, 2)])
            await restarted.refresh()
            page = await restarted.search(ids_plan("Patient", patient["id"]))
            assert [(h.id, h.version) for h in page.hits] == [(patient["id"], 2)]
        finally:
            await restarted.close()
    finally:
        await first.drop()
        await first.close()
