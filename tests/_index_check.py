"""Compare a search index with a fresh projection of the store (tests only).

`expected_index(store, registry)` projects every current resource of the store with
`indexing.project.project`; `indexed(index)` reads back what an engine holds, in the same shape:
`{(type, id): (version, document or None for a tombstone)}`. Elasticsearch documents come back
through `from_source`; SQLite rows are compared as the rows `document_rows` derives, so both
engines are checked field by field against the projection.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from app.store.port import ResourceScan
from indexing.engines.sqlite._rows import document_rows
from indexing.engines.sqlite.schema import NAME, PARAM, RESOURCE, VALUE_COLUMNS
from indexing.project import project
from indexing.registry import SearchParamRegistry

Snapshot = dict[tuple[str, str], tuple[int, Any]]


async def expected_index(
    store: ResourceScan, registry: SearchParamRegistry, types: Iterable[str] | None = None
) -> Snapshot:
    out: Snapshot = {}
    for resource_type in types if types is not None else await store.resource_types():
        after: str | None = None
        while page := await store.scan(resource_type, after, 500):
            for op in project(registry, page):
                out[(op.type, op.id)] = (op.version, op.document)
            after = page[-1].id
    return out


def as_sqlite_rows(snapshot: Snapshot) -> Snapshot:
    """The projection in the SQLite index's terms: (version, sorted rows or None)."""
    out: Snapshot = {}
    for (type_, id_), (version, document) in snapshot.items():
        if document is None:
            out[(type_, id_)] = (version, None)
            continue
        rows = document_rows(document)
        out[(type_, id_)] = (
            version,
            sorted((table, *row) for table, table_rows in rows.items() for row in table_rows),
        )
    return out


def sqlite_indexed(path: Path) -> Snapshot:
    """What the SQLite index file holds, as `as_sqlite_rows` shapes it."""
    conn = sqlite3.connect(path)
    try:
        out: Snapshot = {}
        rows: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
        for table in (PARAM, *VALUE_COLUMNS):
            columns = ("n.param",) if table == PARAM else ("n.param", "v.grp")
            columns += tuple(f"v.{c}" for c in VALUE_COLUMNS.get(table, ()))
            for type_, id_, named_type, *values in conn.execute(
                f"SELECT r.type, r.id, n.type, {', '.join(columns)} FROM {table} v"
                f" LEFT JOIN {RESOURCE} r ON r.doc = v.doc LEFT JOIN {NAME} n ON n.pid = v.pid"
            ):
                # a row's parameter number names its resource's type
                assert named_type == type_, f"{table} row of {type_}/{id_} numbered {named_type}"
                rows.setdefault((type_, id_), []).append((table, *values))
        for type_, id_, version, deleted in conn.execute(
            f"SELECT type, id, version, deleted FROM {RESOURCE}"
        ):
            found = sorted(rows.pop((type_, id_), []))
            out[(type_, id_)] = (version, None if deleted else found)
        assert not rows, f"value rows without a resource row: {sorted(rows)[:5]}"
        return out
    finally:
        conn.close()


async def es_indexed(client: Any, prefix: str, types: Iterable[str]) -> Snapshot:
    """What the Elasticsearch aliases of `types` hold (documents through `from_source`)."""
    from indexing.engines.elasticsearch.mapping import from_source
    from indexing.engines.names import alias_name

    out: Snapshot = {}
    for resource_type in types:
        alias = alias_name(prefix, resource_type)
        if not await client.indices.exists_alias(name=alias):
            continue
        await client.indices.refresh(index=alias)
        response = await client.search(
            index=alias, size=1000, sort=["_doc"], version=True, scroll="1m"
        )
        scroll_id = response.get("_scroll_id")
        try:
            while hits := response["hits"]["hits"]:
                for hit in hits:
                    key = (hit["_source"]["resourceType"], hit["_id"])
                    assert key not in out, f"two documents for {key}"
                    out[key] = (int(hit["_version"]), from_source(hit["_source"]))
                response = await client.scroll(scroll_id=scroll_id, scroll="1m")
                scroll_id = response.get("_scroll_id", scroll_id)
        finally:
            if scroll_id:
                await client.clear_scroll(scroll_id=scroll_id)
    return out


def differences(expected: Snapshot, actual: Snapshot, limit: int = 5) -> list[str]:
    """Human-readable differences (empty: the index equals the projection)."""
    problems: list[str] = []
    for key in sorted(expected.keys() | actual.keys()):
        if key not in actual:
            problems.append(f"{key} missing from the index")
        elif key not in expected:
            problems.append(f"{key} indexed but not in the store")
        elif expected[key][0] != actual[key][0]:
            problems.append(f"{key} version {actual[key][0]}, store {expected[key][0]}")
        elif expected[key][1] != actual[key][1]:
            problems.append(f"{key} fields differ: {actual[key][1]!r} != {expected[key][1]!r}")
        if len(problems) >= limit:
            break
    return problems
