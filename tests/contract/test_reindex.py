"""`app.reindex.reindex` on every index engine (SQLite always, Elasticsearch when configured):
the rebuilt index equals a projection of the store, a new parameter becomes searchable, an
interrupted run resumes from its checkpoint, and writes racing a rebuild are never undone."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.records import Transaction, Write
from app.reindex import Checkpoint, reindex
from app.store.sqlite import SqliteResourceStore
from indexing.document import IndexOp, index_document
from indexing.extract import extract_values
from indexing.plan.plan import Clause, SearchPlan, TokenMatch
from indexing.project import project
from indexing.registry import SearchParamRegistry
from tests._data import SYNTHEA
from tests._index_check import (
    as_sqlite_rows,
    differences,
    es_indexed,
    expected_index,
    sqlite_indexed,
)
from tests._search_parameters import MARITAL
from tests.contract.test_search_index import open_index

ENGINES = ["sqlite", "elasticsearch"]


def synthea(limit: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in SYNTHEA[:limit]:
        bundle = json.loads(path.read_text("utf-8"))
        local = {
            e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}"
            for e in bundle["entry"]
        }
        text = re.sub(
            r'"(urn:uuid:[0-9a-f-]+)"',
            lambda m, to=local: json.dumps(to.get(m[1], m[1])),
            json.dumps([e["resource"] for e in bundle["entry"]]),
        )
        for resource in json.loads(text):
            resource["meta"] = {"versionId": "1", "lastUpdated": "2024-06-01T00:00:00.000Z"}
            out.append(resource)
    return out


def write(resource: dict[str, Any], version: int = 1) -> Write:
    resource = {**resource, "meta": {**resource["meta"], "versionId": str(version)}}
    op = "create" if version == 1 else "update"
    return Write(resource["resourceType"], resource["id"], version, op, resource)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteResourceStore]:
    opened = await SqliteResourceStore.open(tmp_path / "store.sqlite3")
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def registry() -> SearchParamRegistry:
    return SearchParamRegistry.load()  # per test: some register a parameter


@pytest.fixture(params=ENGINES)
async def engine(
    request: pytest.FixtureRequest, tmp_path: Path, registry: SearchParamRegistry
) -> AsyncIterator[tuple[str, Any]]:
    index, cleanup = await open_index(request.param, tmp_path, registry)
    try:
        yield request.param, index
    finally:
        await cleanup()


async def snapshot(kind: str, index: Any, tmp_path: Path, types: list[str]) -> Any:
    if kind == "sqlite":
        return sqlite_indexed(tmp_path / "index.sqlite3")
    return await es_indexed(index._client, index._prefix, types)


async def check_equal(
    kind: str, index: Any, tmp_path: Path, store: Any, registry: SearchParamRegistry
) -> None:
    types = await store.resource_types()
    expected = await expected_index(store, registry, types)
    if kind == "sqlite":
        expected = as_sqlite_rows(expected)
    actual = await snapshot(kind, index, tmp_path, types)
    assert differences(expected, actual) == []
    assert len(actual) == len(expected)


async def seed(store: Any, resources: list[dict[str, Any]]) -> None:
    for start in range(0, len(resources), 200):
        await store.commit(Transaction(tuple(write(r) for r in resources[start : start + 200])))


def marital_plan(code: str) -> SearchPlan:
    return SearchPlan(
        types=("Patient",),
        clauses=(Clause((TokenMatch("marital", code),)),),
        count=100,
    )


async def test_a_reindex_makes_a_new_parameter_searchable_and_equals_the_projection(
    store: Any, engine: tuple[str, Any], registry: SearchParamRegistry, tmp_path: Path
) -> None:
    kind, index = engine
    resources = synthea(3)
    await seed(store, resources)
    await index.write(
        project(registry, await store.read_many([(r["resourceType"], r["id"]) for r in resources]))
    )
    registry.register(MARITAL, source="SearchParameter/marital", version=1)
    types = await store.resource_types()
    report = await reindex(store, index, registry, types, checkpoint=tmp_path / "cp.json")
    await index.refresh()
    assert report.written == len(resources)
    assert not (tmp_path / "cp.json").exists()
    married = {
        r["id"]
        for r in resources
        if r["resourceType"] == "Patient"
        and r.get("maritalStatus", {}).get("coding", [{}])[0].get("code") == "M"
    }
    assert married
    hits = await index.search(marital_plan("M"))
    assert {h.id for h in hits.hits} == married
    await check_equal(kind, index, tmp_path, store, registry)


async def test_an_interrupted_reindex_resumes_from_its_checkpoint(
    store: Any, engine: tuple[str, Any], registry: SearchParamRegistry, tmp_path: Path
) -> None:
    kind, index = engine
    resources = synthea(2)
    await seed(store, resources)
    types = await store.resource_types()
    checkpoint = tmp_path / "cp.json"
    batches = 0

    def stop_after_three(resource_type: str, done: int) -> None:
        nonlocal batches
        batches += 1
        if batches == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await reindex(
            store,
            index,
            registry,
            types,
            checkpoint=checkpoint,
            page=50,
            on_progress=stop_after_three,
        )
    saved = Checkpoint.load(checkpoint)
    assert saved is not None and saved.current is not None and saved.after_id is not None
    report = await reindex(store, index, registry, types, checkpoint=checkpoint, page=50)
    assert report.resumed_from == f"{saved.current} after {saved.after_id}"
    assert report.written == len(resources) - saved.written
    assert not checkpoint.exists()
    await index.refresh()
    await check_equal(kind, index, tmp_path, store, registry)


async def test_a_reindex_under_concurrent_writes_loses_nothing(
    store: Any, engine: tuple[str, Any], registry: SearchParamRegistry, tmp_path: Path
) -> None:
    kind, index = engine
    resources = synthea(3)
    await seed(store, resources)
    await index.write(
        project(registry, await store.read_many([(r["resourceType"], r["id"]) for r in resources]))
    )
    observations = [r for r in resources if r["resourceType"] == "Observation"][:150]

    async def writer() -> None:
        # New versions committed and projected (as a worker would) while the rebuild runs.
        for n, resource in enumerate(observations):
            await store.commit(Transaction((write({**resource, "status": "amended"}, 2),)))
            current = await store.read_many([("Observation", resource["id"])])
            await index.write(project(registry, current))
            if n % 10 == 0:
                await asyncio.sleep(0.01)

    types = await store.resource_types()
    await asyncio.gather(reindex(store, index, registry, types, page=100), writer())
    await index.refresh()
    await check_equal(kind, index, tmp_path, store, registry)


async def test_a_rebuild_never_replaces_a_newer_version_written_meanwhile(
    store: Any, engine: tuple[str, Any], registry: SearchParamRegistry, tmp_path: Path
) -> None:
    _, index = engine
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "meta": {"versionId": "2", "lastUpdated": "2024-06-01T00:00:00.000Z"},
        "gender": "female",
    }
    await index.write([IndexOp("Patient", "p1", 1, None)])  # the type exists
    state = await index.begin_rebuild("Patient")
    # a worker projects version 2 after the rebuild read version 1 from the store
    await index.write(
        [
            IndexOp(
                "Patient",
                "p1",
                2,
                {
                    "id": "p1",
                    "resourceType": "Patient",
                    "versionId": 2,
                    "lastUpdated": "2024-06-01T00:00:00.000Z",
                },
            )
        ]
    )
    older = {**patient, "meta": {**patient["meta"], "versionId": "1"}}
    document = index_document(registry, older, extract_values(registry, older))
    await index.rebuild_write(state, [IndexOp("Patient", "p1", 1, document)])
    await index.finish_rebuild(state)
    await index.refresh()
    hits = await index.search(SearchPlan(types=("Patient",), count=10))
    assert [(h.id, h.version) for h in hits.hits] == [("p1", 2)]
