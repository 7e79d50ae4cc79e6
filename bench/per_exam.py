"""What one imaging exam costs the full stack, for sizing (docs/scaling.md).

`python -m bench.per_exam --patients 300 [--out FILE]` loads the generator's episodes (one
transaction Bundle per exam, bench/generate.py) through the API of a fresh full stack (`micdr
serve` + 2 workers on the engines of scripts/services.sh, as `micdr bench` does) with 8 sync
clients until all are searchable, then runs the longitudinal search and the read by id once
everything is indexed (no backlog behind them, unlike `micdr bench --quick`), and reports:

- CPU milliseconds per resource ingested, per search and per read: our processes, and each
  engine process found by its pid file (bench/engine_cpu.py), FerretDB and its PostgreSQL apart;
- engine round trips per search and per read (bench/engine_calls.py);
- the documents and BSON bytes of every MongoDB collection (what a MongoDB would store before
  its block compression and without its indexes: the same documents whatever the server), and
  the engine's own `dbStats`;
- the Elasticsearch documents and bytes of every index after a flush and a force-merge to one
  segment.

The run's database, indices and Redis database are dropped at the end. Like `micdr bench`, the
engines' figures are this run's only when nothing else uses the engines meanwhile.

`--index-only` measures Elasticsearch's bytes per document at a larger size without the API:
the generator's unique resources and the DocumentReference the server would keep for each
order, study and report (`app.ig.documents.index_document`) are projected and written straight
into fresh indices, flushed and force-merged to one segment, measured and deleted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from bench.engine_calls import calls_between, engine_calls, per_unit
from bench.engine_cpu import process_cpu_seconds
from bench.generate import generate
from bench.stack import Stack, engine_urls, ensure_services, start
from bench.workloads import ingest, read, search

SEED = 20250101
CLIENTS = 8


def _per_unit_ms(before: dict[str, float], after: dict[str, float], units: int) -> dict[str, float]:
    return {k: round((after[k] - before[k]) * 1000 / units, 2) for k in after if k in before}


def _cpu(stack: Stack) -> dict[str, float]:
    return {"ours": stack.cpu_seconds(), **process_cpu_seconds()}


async def _collections(env: dict[str, str]) -> dict[str, Any]:
    import bson
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(env["MICDR_MONGO_URL"])
    try:
        db = client[env["MICDR_MONGO_DATABASE"]]
        out: dict[str, Any] = {}
        for name in sorted(await db.list_collection_names()):
            docs = size = 0
            async for doc in db[name].find({}):
                docs += 1
                size += len(bson.encode(doc))
            out[name] = {"docs": docs, "bson_bytes": size}
        stats = await db.command("dbStats")
    finally:
        await client.close()
    keys = ("dataSize", "storageSize", "indexSize", "totalSize")
    return {"collections": out, "db_stats": {k: stats.get(k) for k in keys}}


async def _indices(env: dict[str, str]) -> dict[str, Any]:
    import httpx

    url, prefix = env["MICDR_ELASTICSEARCH_URL"].rstrip("/"), env["MICDR_INDEX_PREFIX"]
    async with httpx.AsyncClient(timeout=600) as es:
        await es.post(f"{url}/{prefix}-*/_flush")
        await es.post(f"{url}/{prefix}-*/_forcemerge", params={"max_num_segments": 1})
        answer = await es.get(f"{url}/{prefix}-*/_stats/store,docs")
        answer.raise_for_status()
    return {
        name.removeprefix(prefix + "-"): {
            "docs": s["primaries"]["docs"]["count"],
            "bytes": s["primaries"]["store"]["size_in_bytes"],
        }
        for name, s in sorted(answer.json()["indices"].items())
    }


async def measure(patients: int, workers: int = 2) -> dict[str, Any]:
    data = generate(SEED, patients)
    urls = engine_urls()
    ensure_services(urls)
    stack = await start("full", time.strftime("%Y%m%d%H%M%S"), workers, urls)
    result: dict[str, Any] = {
        "patients": len(data.patients),
        "episodes": len(data.episodes),
        "entries": data.resources,
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        before = _cpu(stack)
        loaded = await ingest(
            stack.base, data.episodes, CLIENTS, False, lambda n: None, catch_up=600.0
        )
        after = _cpu(stack)
        refs = loaded.pop("refs")
        result["ingest"] = {
            k: loaded[k]
            for k in ("bundles", "resources", "resources_per_second", "errors", "searchable")
        }
        result["ingest"]["cpu_ms_per_resource"] = _per_unit_ms(before, after, loaded["resources"])
        for phase in ("search", "read"):
            cpu0, calls0 = _cpu(stack), await engine_calls(urls)
            if phase == "search":
                res = await search(
                    stack.base, data.patients, SEED, 300, CLIENTS, 8.0, lambda n: None
                )
                rate = res["searches_per_second"]
            else:
                res = await read(stack.base, refs, SEED, 400, CLIENTS, 4.0, lambda n: None)
                rate = res["reads_per_second"]
            cpu1, calls1 = _cpu(stack), await engine_calls(urls)
            one = res["one_client"].get("all", res["one_client"])
            n = int(one["n"]) + int(res["loaded_latency_ms"]["n"])
            result[phase] = {
                "p50_ms": one["p50"],
                "p95_ms": one["p95"],
                "per_second_at_8_clients": rate,
                "errors": res.get("errors", 0),
                "cpu_ms": _per_unit_ms(cpu0, cpu1, n),
                "calls": {
                    e: v["total"] for e, v in per_unit(calls_between(calls0, calls1), n).items()
                },
            }
        result["store"] = await _collections(stack.env)
        result["index"] = await _indices(stack.env)
    finally:
        stack.stop()
        await stack.clean()
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return result


async def measure_index(patients: int) -> dict[str, Any]:
    from app.ig.documents import MAIN_TYPES, index_document, index_id
    from bench.generate import flatten
    from bench.workloads import BATCH, _Current
    from indexing.engines.elasticsearch.adapter import ElasticsearchSearchIndex
    from indexing.project import project
    from indexing.registry import SearchParamRegistry

    data = generate(SEED, patients)
    docs = flatten(data, unique=True)
    meta = {"versionId": "1", "lastUpdated": "2026-01-01T00:00:00.000Z"}
    for main in [d for d in docs if d["resourceType"] in MAIN_TYPES]:
        entry = index_document(main, meta["lastUpdated"])
        entry["id"] = index_id(f"{main['resourceType']}/{main['id']}")
        docs.append(entry)
    for doc in docs:
        doc.setdefault("meta", meta)
    registry = SearchParamRegistry.load()
    ops = project(registry, [_Current(d) for d in docs])
    url = engine_urls()["elasticsearch"]
    env = {"MICDR_ELASTICSEARCH_URL": url, "MICDR_INDEX_PREFIX": f"per-exam-{time.time_ns()}"}
    index = await ElasticsearchSearchIndex.open(url, env["MICDR_INDEX_PREFIX"], registry)
    try:
        for start_at in range(0, len(ops), BATCH):
            await index.write(ops[start_at : start_at + BATCH])
        await index.refresh()
        indices = await _indices(env)
    finally:
        await index.close()
        await _drop_indices(env)
    total = sum(i["bytes"] for i in indices.values())
    return {
        "patients": len(data.patients),
        "episodes": len(data.episodes),
        "documents": len(docs),
        "json_bytes_per_document": round(sum(len(orjson.dumps(d)) for d in docs) / len(docs)),
        "index_bytes": total,
        "index_bytes_per_document": round(total / len(docs)),
        "index_bytes_per_exam": round(total / len(data.episodes)),
        "indices": indices,
    }


async def _drop_indices(env: dict[str, str]) -> None:
    import httpx

    url, prefix = env["MICDR_ELASTICSEARCH_URL"].rstrip("/"), env["MICDR_INDEX_PREFIX"]
    async with httpx.AsyncClient(timeout=60) as es:
        names = list((await es.get(f"{url}/{prefix}-*")).json())
        if names:  # wildcard deletes are refused: name each index
            await es.delete(f"{url}/{','.join(names)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.per_exam", description=__doc__)
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument(
        "--index-only", action="store_true", help="Elasticsearch bytes per document, no API"
    )
    args = parser.parse_args(argv)
    if args.index_only:
        result = asyncio.run(measure_index(args.patients))
    else:
        result = asyncio.run(measure(args.patients, args.workers))
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n"
    if args.out:
        args.out.write_bytes(text)
    sys.stdout.buffer.write(text)


if __name__ == "__main__":
    main()
