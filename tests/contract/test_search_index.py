"""The `SearchIndex` contract (indexing/engines/port.py), run against every engine.

SQLite always runs; Elasticsearch runs when MICDR_TEST_ELASTICSEARCH_URL is set and is mandatory
when MICDR_REQUIRE_SERVICES=1 (CI). Besides the write contract (version guard, tombstones,
idempotency, paging while writing), every case of tests/vectors/*.json runs here: the fixture is
indexed through the production path (`extract_values` -> `index_document` -> `write`) and the
search must answer exactly the listed ids, in order (format: tests/vectors/README.md).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from indexing.document import IndexOp, index_document
from indexing.engines.port import HitPage
from indexing.extract import extract_values
from indexing.normalize import date_interval, normalize_string, number_interval
from indexing.plan.plan import (
    Clause,
    CompositeMatch,
    DateMatch,
    IdIn,
    Missing,
    NumberMatch,
    Predicate,
    RefIn,
    RefMatch,
    SearchPlan,
    SortKey,
    StringMatch,
    TokenMatch,
    UriMatch,
)
from indexing.registry import SearchParamRegistry
from tests._data import DATA
from tests._full_stack import TEST_REFRESH_INTERVAL, unique_name
from tests._services import engine_url

REPO = Path(__file__).resolve().parents[2]
VECTORS = REPO / "tests" / "vectors"
DEFAULT_META = {"versionId": "1", "lastUpdated": "2024-06-01T00:00:00Z"}

ENGINES = ["sqlite", "elasticsearch"]


# -- engines ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def registry() -> SearchParamRegistry:
    return SearchParamRegistry.load()


async def open_index(
    kind: str, tmp_path: Path, registry: SearchParamRegistry
) -> tuple[Any, Callable[[], Awaitable[None]]]:
    """(index, cleanup) for one engine."""
    if kind == "sqlite":
        from indexing.engines.sqlite.adapter import SqliteSearchIndex

        sqlite_index = await SqliteSearchIndex.open(tmp_path / "index.sqlite3", registry)
        return sqlite_index, sqlite_index.close
    url = engine_url("elasticsearch")
    from indexing.engines.elasticsearch.adapter import ElasticsearchSearchIndex
    from indexing.engines.elasticsearch.mapping import IndexSettings

    es_index = await ElasticsearchSearchIndex.open(
        url,
        unique_name(),
        registry,
        settings=IndexSettings(refresh_interval=TEST_REFRESH_INTERVAL),
    )

    async def cleanup() -> None:
        drop = getattr(es_index, "drop", None)
        if drop is not None:
            await drop()
        await es_index.close()

    return es_index, cleanup


@pytest.fixture(params=ENGINES)
async def index(
    request: pytest.FixtureRequest, tmp_path: Path, registry: SearchParamRegistry
) -> AsyncIterator[Any]:
    opened, cleanup = await open_index(request.param, tmp_path, registry)
    try:
        yield opened
    finally:
        await cleanup()


# -- helpers ------------------------------------------------------------------------------------


def op_for(registry: SearchParamRegistry, resource: Mapping[str, Any]) -> IndexOp:
    resource = dict(resource)
    resource.setdefault("meta", DEFAULT_META)
    document = index_document(registry, resource, extract_values(registry, resource))
    return IndexOp(resource["resourceType"], resource["id"], document["versionId"], document)


def patient(id_: str, version: int = 1, family: str = "Doe", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": id_,
        "meta": {"versionId": str(version), "lastUpdated": "2024-06-01T00:00:00Z"},
        "name": [{"family": family}],
        **extra,
    }


def tombstone(type_: str, id_: str, version: int) -> IndexOp:
    return IndexOp(type_, id_, version, None)


async def write(index: Any, ops: list[IndexOp]) -> None:
    await index.write(ops)
    await index.refresh()


async def ids(index: Any, plan: SearchPlan) -> list[str]:
    page: HitPage = await index.search(plan)
    return [hit.id for hit in page.hits]


def by_family(value: str) -> SearchPlan:
    return SearchPlan(
        types=("Patient",), clauses=(Clause((StringMatch("family", normalize_string(value)),)),)
    )


ALL_PATIENTS = SearchPlan(types=("Patient",), count=100)


# -- the write contract ---------------------------------------------------------------------------


async def test_written_document_is_searchable(index: Any, registry: SearchParamRegistry) -> None:
    await write(index, [op_for(registry, patient("p1", family="Curie"))])
    page = await index.search(by_family("curie"))
    assert [(hit.type, hit.id, hit.version) for hit in page.hits] == [("Patient", "p1", 1)]


async def test_older_version_does_not_overwrite_newer(
    index: Any, registry: SearchParamRegistry
) -> None:
    await write(index, [op_for(registry, patient("p1", 2, family="Newer"))])
    await write(index, [op_for(registry, patient("p1", 1, family="Older"))])
    assert await ids(index, by_family("newer")) == ["p1"]
    assert await ids(index, by_family("older")) == []


async def test_repeated_write_is_idempotent(index: Any, registry: SearchParamRegistry) -> None:
    op = op_for(registry, patient("p1", 3, family="Same"))
    await write(index, [op])
    await write(index, [op])
    await write(index, [op_for(registry, patient("p1", 3, family="Other"))])  # same version
    page = await index.search(by_family("same"))
    assert [(hit.id, hit.version) for hit in page.hits] == [("p1", 3)]
    assert await ids(index, by_family("other")) == []


async def test_newer_version_replaces_every_value(
    index: Any, registry: SearchParamRegistry
) -> None:
    await write(index, [op_for(registry, patient("p1", 1, family="First", gender="male"))])
    await write(index, [op_for(registry, patient("p1", 2, family="Second"))])
    assert await ids(index, by_family("first")) == []
    assert await ids(index, by_family("second")) == ["p1"]
    gender = SearchPlan(types=("Patient",), clauses=(Clause((TokenMatch("gender", "male"),)),))
    assert await ids(index, gender) == []


async def test_tombstone_hides_and_blocks_late_older_versions(
    index: Any, registry: SearchParamRegistry
) -> None:
    await write(index, [op_for(registry, patient("p1", 1, family="Gone"))])
    await write(index, [tombstone("Patient", "p1", 2)])
    assert await ids(index, by_family("gone")) == []
    assert await ids(index, ALL_PATIENTS) == []
    await write(index, [op_for(registry, patient("p1", 1, family="Gone"))])  # late replay
    assert await ids(index, ALL_PATIENTS) == []
    missing = SearchPlan(types=("Patient",), clauses=(Clause((Missing("birthdate", True),)),))
    assert await ids(index, missing) == []
    await write(index, [op_for(registry, patient("p1", 3, family="Back"))])  # re-created
    assert await ids(index, by_family("back")) == ["p1"]


async def test_tombstone_of_unknown_resource_blocks_its_older_versions(
    index: Any, registry: SearchParamRegistry
) -> None:
    await write(index, [tombstone("Patient", "p9", 4)])
    await write(index, [op_for(registry, patient("p9", 3))])
    assert await ids(index, ALL_PATIENTS) == []


async def test_batch_keeps_the_newest_version_of_a_resource(
    index: Any, registry: SearchParamRegistry
) -> None:
    await write(
        index,
        [
            op_for(registry, patient("p1", 2, family="Two")),
            op_for(registry, patient("p1", 1, family="One")),
            op_for(registry, patient("p2", 1, family="Two")),
        ],
    )
    page = await index.search(by_family("two"))
    assert [(hit.id, hit.version) for hit in page.hits] == [("p1", 2), ("p2", 1)]
    assert await ids(index, by_family("one")) == []


async def test_hits_carry_the_indexed_version(index: Any, registry: SearchParamRegistry) -> None:
    await write(index, [op_for(registry, patient("p1", 7))])
    page = await index.search(ALL_PATIENTS)
    assert [(hit.type, hit.id, hit.version) for hit in page.hits] == [("Patient", "p1", 7)]


async def test_paging_while_writing_never_repeats_or_skips(
    index: Any, registry: SearchParamRegistry
) -> None:
    await write(index, [op_for(registry, patient(id_)) for id_ in ("a", "b", "c", "d", "e", "f")])
    plan = SearchPlan(types=("Patient",), sort=(SortKey("_id"),), count=2)
    seen: list[str] = []
    page = await index.search(plan)
    seen += [hit.id for hit in page.hits]
    # Between pages: one resource lands before the cursor, one after, one is deleted, one is
    # updated (same sort value).
    await write(
        index,
        [
            op_for(registry, patient("a0")),
            op_for(registry, patient("bb")),
            tombstone("Patient", "d", 2),
            op_for(registry, patient("e", 2, family="Changed")),
        ],
    )
    while len(page.hits) == plan.count:
        page = await index.search(plan, after=json.loads(json.dumps(page.hits[-1].cursor)))
        seen += [hit.id for hit in page.hits]
    # Live paging (SQLite) shows `bb` and drops `d`; a point-in-time snapshot (Elasticsearch PIT)
    # shows the first page's state. Either way: in order, no repeats, no resource skipped.
    assert seen in (["a", "b", "bb", "c", "e", "f"], ["a", "b", "c", "d", "e", "f"])


async def test_total_counts_every_match(index: Any, registry: SearchParamRegistry) -> None:
    await write(index, [op_for(registry, patient(f"p{n}")) for n in range(5)])
    page = await index.search(SearchPlan(types=("Patient",), count=2), with_total=True)
    assert (len(page.hits), page.total) == (2, 5)
    page = await index.search(SearchPlan(types=("Patient",), count=2))
    assert page.total is None


async def test_status_is_up(index: Any) -> None:
    assert (await index.status()).up


async def test_empty_until_a_document_or_a_tombstone_is_written(
    index: Any, registry: SearchParamRegistry
) -> None:
    assert await index.empty()
    await write(index, [tombstone("Patient", "gone", 2)])
    assert not await index.empty()
    await write(index, [op_for(registry, patient("p1"))])
    assert not await index.empty()


# -- vectors ------------------------------------------------------------------------------------


def _vector_cases() -> Iterator[Any]:
    for path in sorted(VECTORS.glob("*.json")):
        vector = json.loads(path.read_text("utf-8"))
        for case in vector["cases"]:
            yield pytest.param(path.name, case, id=f"{path.stem}: {case['name']}")


def fixture_resources(fixture: Mapping[str, Any]) -> list[dict[str, Any]]:
    resources = [dict(resource) for resource in fixture.get("resources", [])]
    for name in fixture.get("files", []):
        path = DATA / name
        bundle = json.loads(path.read_text("utf-8"), parse_float=Decimal)
        urls = {
            entry["fullUrl"]: f"{entry['resource']['resourceType']}/{entry['resource']['id']}"
            for entry in bundle["entry"]
            if "fullUrl" in entry and "id" in entry["resource"]
        }
        resources += [_rewrite_references(entry["resource"], urls) for entry in bundle["entry"]]
    for resource in resources:
        resource.setdefault("meta", DEFAULT_META)
    return resources


def _rewrite_references(node: Any, urls: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            key: urls.get(value, value)
            if key == "reference" and isinstance(value, str)
            else _rewrite_references(value, urls)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_references(item, urls) for item in node]
    return node


def plan_from_json(description: Mapping[str, Any]) -> SearchPlan:
    clauses = []
    for clause in description.get("where", []):
        options = clause if isinstance(clause, list) else [clause]
        clauses.append(Clause(tuple(predicate_from_json(option) for option in options)))
    sort = tuple(
        SortKey(key.lstrip("-"), descending=key.startswith("-"))
        for key in description.get("sort", [])
    )
    return SearchPlan(
        types=tuple(description.get("types", [])),
        clauses=tuple(clauses),
        sort=sort,
        count=description.get("count", 100),
    )


def predicate_from_json(p: Mapping[str, Any]) -> Predicate:
    if "string" in p:
        mode = p.get("mode", "starts")
        value = p["value"] if mode == "exact" else normalize_string(p["value"])
        return StringMatch(p["string"], value, mode)
    if "token" in p:
        form = normalize_string(p["form"]) if p.get("text") else p["form"]
        return TokenMatch(
            p["token"],
            form,
            negate=p.get("not", False),
            text=p.get("text", False),
            of_type=p.get("of_type", False),
        )
    if "date" in p:
        low, high = date_interval(p["value"])
        return DateMatch(p["date"], p["prefix"], low, high)
    if "number" in p or "quantity" in p:
        number = Decimal(p["value"])
        low_d, high_d = number_interval(number)
        return NumberMatch(
            p.get("number") or p["quantity"],
            p["prefix"],
            float(number),
            float(low_d),
            float(high_d),
            system=p.get("system"),
            code=p.get("code"),
            quantity="quantity" in p,
        )
    if "ref" in p:
        return RefMatch(
            p["ref"], p["value"], identifier=p.get("identifier", False), type=p.get("type")
        )
    if "ref_in" in p:
        return RefIn(p["ref_in"], tuple(p["refs"]))
    if "id_in" in p:
        return IdIn(tuple(p["id_in"]), negate=p.get("not", False))
    if "uri" in p:
        return UriMatch(p["uri"], p["value"], p.get("mode", "exact"))
    if "missing" in p:
        return Missing(p["missing"], p["value"])
    if "composite" in p:
        return CompositeMatch(
            p["composite"], tuple(predicate_from_json(part) for part in p["parts"])
        )
    raise ValueError(f"unknown vector predicate {p!r}")


@pytest.mark.parametrize(("file", "case"), list(_vector_cases()))
async def test_vector(
    index: Any, registry: SearchParamRegistry, file: str, case: Mapping[str, Any]
) -> None:
    vector = json.loads((VECTORS / file).read_text("utf-8"))
    await write(index, [op_for(registry, r) for r in fixture_resources(vector["fixture"])])
    plan = plan_from_json(case["plan"])
    if "pages" in case:
        pages: list[list[str]] = []
        page = await index.search(plan)
        while page.hits:
            pages.append([hit.id for hit in page.hits])
            if len(page.hits) < plan.count:
                break
            cursor = json.loads(json.dumps(page.hits[-1].cursor))  # cursors are JSON
            page = await index.search(plan, after=cursor)
        assert pages == case["pages"]
        return
    page = await index.search(plan, with_total="total" in case)
    assert [hit.id for hit in page.hits] == case["ids"]
    if "total" in case:
        assert page.total == case["total"]
