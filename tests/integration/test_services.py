"""Smoke tests of the engines themselves: the behaviours miCDR's design leans on
(docs/design.md, Write path and Search index) hold on the servers the
integration suite runs against. If one of these fails, the engine setup is wrong, not miCDR."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from elasticsearch import ConflictError
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

# --- MongoDB wire (FerretDB) ------------------------------------------------------------------


async def test_mongo_insert_then_find_returns_the_document(mongo_db: Any) -> None:
    coll = mongo_db["resources"]
    await coll.insert_many(
        [
            {"_id": "Patient/1", "type": "Patient", "version": 1},
            {"_id": "Patient/2", "type": "Patient", "version": 3},
            {"_id": "Observation/1", "type": "Observation", "version": 1},
        ]
    )

    assert await coll.find_one({"_id": "Patient/2"}) == {
        "_id": "Patient/2",
        "type": "Patient",
        "version": 3,
    }
    found = await coll.find({"type": "Patient"}).sort("_id", 1).to_list()
    assert [d["_id"] for d in found] == ["Patient/1", "Patient/2"]


async def test_mongo_duplicate_id_raises_duplicate_key_error(mongo_db: Any) -> None:
    coll = mongo_db["claims"]
    await coll.insert_one({"_id": "ServiceRequest|urn:sys|42", "owner": "first"})

    with pytest.raises(DuplicateKeyError):
        await coll.insert_one({"_id": "ServiceRequest|urn:sys|42", "owner": "second"})
    assert (await coll.find_one({"_id": "ServiceRequest|urn:sys|42"}))["owner"] == "first"


async def test_mongo_concurrent_claims_on_one_id_have_exactly_one_winner(mongo_db: Any) -> None:
    coll = mongo_db["claims"]

    async def claim(n: int) -> bool:
        try:
            await coll.insert_one({"_id": "Patient/123|v4", "owner": n})
        except DuplicateKeyError:
            return False
        return True

    results = await asyncio.gather(*(claim(n) for n in range(8)))

    assert sum(results) == 1
    assert await coll.count_documents({}) == 1


async def test_mongo_concurrent_conditional_updates_of_one_document_have_one_winner(
    mongo_db: Any,
) -> None:
    # A claim takeover is `update_one({_id, tx: old}, ...)` (docs/implementation/write-path.md):
    # it needs MongoDB's single-document atomicity, which FerretDB has only with the patch of
    # scripts/services.sh (docs/implementation/services.md).
    coll = mongo_db["claims"]
    for trial in range(10):
        await coll.insert_one({"_id": f"Patient|k{trial}", "tx": "A"})
        results = await asyncio.gather(
            *(
                coll.update_one({"_id": f"Patient|k{trial}", "tx": "A"}, {"$set": {"tx": f"T{n}"}})
                for n in range(8)
            )
        )
        winners = [n for n, r in enumerate(results) if r.modified_count == 1]
        assert len(winners) == 1, (trial, winners)
        assert await coll.find_one({"_id": f"Patient|k{trial}"}) == {
            "_id": f"Patient|k{trial}",
            "tx": f"T{winners[0]}",
        }


async def test_mongo_concurrent_add_to_set_keeps_every_value(mongo_db: Any) -> None:
    coll = mongo_db["resource_identifiers"]
    await coll.insert_one({"_id": "Patient|mrn", "ids": []})
    await asyncio.gather(
        *(
            coll.update_one({"_id": "Patient|mrn"}, {"$addToSet": {"ids": f"p{n}"}})
            for n in range(16)
        )
    )
    posting = await coll.find_one({"_id": "Patient|mrn"})
    assert sorted(posting["ids"]) == sorted(f"p{n}" for n in range(16))


async def test_mongo_find_one_and_update_inc_upsert_counts_from_one(mongo_db: Any) -> None:
    coll = mongo_db["counters"]

    async def next_value() -> int:
        doc = await coll.find_one_and_update(
            {"_id": "commit-seq"},
            {"$inc": {"value": 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        return int(doc["value"])

    assert [await next_value() for _ in range(3)] == [1, 2, 3]


@pytest.mark.parametrize(
    "filt",
    [
        {"_id": "Patient/7"},
        {"_id": "Patient/7", "version": {"$lt": 9}},
        {"_id": {"$in": ["Patient/7", "Patient/404"]}},
        {"_id": {"$in": ["Patient/7", "Patient/9"]}, "version": {"$lt": 9}},
    ],
    ids=str,
)
async def test_mongo_finds_by_id_through_the_id_index(mongo_db: Any, filt: dict[str, Any]) -> None:
    # The MongoDB store's write path relies on it (docs/implementation/write-path.md); FerretDB
    # needs the patch of scripts/services.sh for it (docs/implementation/services.md).
    coll = mongo_db["resources"]
    await coll.insert_many([{"_id": f"Patient/{i}", "version": i} for i in range(20)])
    assert await coll.find_one(filt) == {"_id": "Patient/7", "version": 7}
    explained = await mongo_db.command("explain", {"find": "resources", "filter": filt})
    plan = str(explained["queryPlanner"])
    build = await mongo_db.client.admin.command("buildInfo")
    if "ferretdbVersion" in build and isinstance(explained["queryPlanner"]["Plan"], dict):
        # PostgreSQL backend: its JSON plan; an index scan or a bitmap scan of the `_id` index
        assert "Index Cond" in plan and "Seq Scan" not in plan, plan
    elif "ferretdbVersion" in build:  # SQLite backend: its query plan's lines
        assert "USING INDEX" in plan and "SCAN" not in plan, plan
    else:
        assert "IDHACK" in plan or "IXSCAN" in plan or "EXPRESS" in plan, plan


# --- Elasticsearch ----------------------------------------------------------------------------

MAPPING = {
    "dynamic": "strict",
    "properties": {
        "id": {"type": "keyword"},
        "code": {"type": "keyword"},
        "effective": {"type": "date_range", "format": "strict_date_optional_time||epoch_millis"},
        "name": {"type": "keyword", "normalizer": "lowercase"},
    },
}


@pytest.fixture
async def es_index(es: Any, unique_name: str) -> Any:
    """A versioned index behind an alias, as the projection uses them; deleted afterwards."""
    index = f"{unique_name}-v1"
    await es.indices.create(
        index=index,
        mappings=MAPPING,
        settings={"number_of_shards": 1, "number_of_replicas": 0},
        aliases={unique_name: {}},
    )
    try:
        yield unique_name
    finally:
        await es.indices.delete(index=index, ignore_unavailable=True)


async def test_es_index_mapping_has_the_date_range_field(es: Any, es_index: str) -> None:
    mapping = await es.indices.get_mapping(index=es_index)
    (props,) = [m["mappings"]["properties"] for m in mapping.body.values()]
    assert props["effective"]["type"] == "date_range"


async def test_es_external_version_rejects_stale_and_repeated_writes(
    es: Any, es_index: str
) -> None:
    doc = {
        "id": "o1",
        "code": "http://loinc.org|1234-5",
        "name": "Chest X-Ray",
        "effective": {"gte": "2024-03-01", "lte": "2024-03-01T23:59:59.999Z"},
    }
    index = (await es.indices.get_alias(name=es_index)).body.popitem()[0]
    put = await es.index(index=index, id="o1", document=doc, version=5, version_type="external")
    assert put["_version"] == 5

    for stale in (3, 5):
        with pytest.raises(ConflictError) as err:
            await es.index(
                index=index,
                id="o1",
                document={**doc, "code": "stale"},
                version=stale,
                version_type="external",
            )
        assert err.value.meta.status == 409

    newer = await es.index(
        index=index,
        id="o1",
        document=doc,
        version=6,
        version_type="external",
        refresh="wait_for",
    )
    assert newer["_version"] == 6

    hits = await es.search(index=es_index, query={"term": {"code": "http://loinc.org|1234-5"}})
    assert [(h["_id"], h["_source"]["code"]) for h in hits["hits"]["hits"]] == [
        ("o1", "http://loinc.org|1234-5")
    ]


async def test_es_date_range_answers_intersects_and_within(es: Any, es_index: str) -> None:
    index = (await es.indices.get_alias(name=es_index)).body.popitem()[0]
    await es.index(
        index=index,
        id="day",
        refresh="wait_for",
        document={
            "id": "day",
            "effective": {"gte": "2024-03-01", "lte": "2024-03-01T23:59:59.999Z"},
        },
    )

    async def ids(gte: str, lte: str, relation: str) -> list[str]:
        q = {"range": {"effective": {"gte": gte, "lte": lte, "relation": relation}}}
        res = await es.search(index=es_index, query=q)
        return [h["_id"] for h in res["hits"]["hits"]]

    assert await ids("2024-03-01T12:00:00Z", "2024-03-02", "intersects") == ["day"]
    assert await ids("2024-03-01T12:00:00Z", "2024-03-02", "within") == []
    assert await ids("2024-02-01", "2024-03-31", "within") == ["day"]
    assert await ids("2024-03-02", "2024-03-31", "intersects") == []


# --- Redis ------------------------------------------------------------------------------------


async def test_redis_set_then_get(redis_client: Any, unique_name: str) -> None:
    await redis_client.set(unique_name, b"value", ex=300)
    assert await redis_client.get(unique_name) == b"value"
    await redis_client.delete(unique_name)


async def test_redis_restart_keeps_appendonly_writes(
    redis_url: str, unique_name: str, services: Any
) -> None:
    import redis.asyncio

    before = redis.asyncio.Redis.from_url(redis_url)
    try:
        assert (await before.config_get("appendonly"))["appendonly"] == "yes"
        await before.rpush(unique_name, b"job-1", b"job-2")
    finally:
        await before.aclose()

    await asyncio.to_thread(services.stop, "redis")
    await asyncio.to_thread(services.start, "redis")

    after = redis.asyncio.Redis.from_url(redis_url)
    try:
        assert await after.lrange(unique_name, 0, -1) == [b"job-1", b"job-2"]
        await after.delete(unique_name)
    finally:
        await after.aclose()
