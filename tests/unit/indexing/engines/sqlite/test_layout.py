"""An index file of an older layout (rows keyed by type and id, not by an integer `doc`) is dropped
when opened, so the index is found empty and rebuilt from the store (app/deploy/engines.py
`index_lost`)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from indexing.engines.sqlite.adapter import SqliteSearchIndex
from indexing.engines.sqlite.schema import outdated
from indexing.registry import SearchParamRegistry

OLD_TOKEN = ["type", "id", "param", "grp", "system", "code"]
OLD_RESOURCE = ["type", "id", "version", "last_updated", "deleted"]


def test_only_an_older_layout_asks_for_a_rebuild() -> None:
    old = {"idx_resource": OLD_RESOURCE, "idx_token": OLD_TOKEN}
    assert outdated(lambda table: old.get(table, [])) == [
        "idx_resource",
        "idx_name",
        "idx_param",
        "idx_string",
        "idx_token",
        "idx_token_text",
        "idx_of_type",
        "idx_date",
        "idx_number",
        "idx_reference",
        "idx_ref_identifier",
        "idx_uri",
    ]
    current = {"idx_resource": ["doc", *OLD_RESOURCE], "idx_token": ["doc", "pid", "grp"]}
    assert outdated(lambda table: current.get(table, [])) == []
    assert outdated(lambda table: []) == []  # a new file


async def test_opening_an_older_file_empties_the_index_and_keeps_the_episodes(
    tmp_path: Path, registry: SearchParamRegistry
) -> None:
    path = tmp_path / "index.sqlite3"
    db = sqlite3.connect(path)
    db.execute(f"CREATE TABLE idx_token ({', '.join(OLD_TOKEN)})")
    db.execute(
        "CREATE TABLE idx_resource (type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER,"
        " last_updated TEXT, deleted INTEGER, PRIMARY KEY (type, id)) WITHOUT ROWID"
    )
    db.execute("INSERT INTO idx_resource VALUES ('Patient', 'p1', 1, '', 0)")
    db.execute("CREATE TABLE epi_rebuild (since TEXT NOT NULL)")
    db.execute("INSERT INTO epi_rebuild VALUES ('x')")
    db.commit()
    db.close()
    index = await SqliteSearchIndex.open(path, registry)
    try:
        assert await index.empty()
    finally:
        await index.close()
    db = sqlite3.connect(path)
    columns = [row[1] for row in db.execute("PRAGMA table_info(idx_token)")]
    assert columns == ["doc", "pid", "grp", "system", "code"]
    assert db.execute("SELECT since FROM epi_rebuild").fetchall() == [("x",)]
    db.close()
