"""Tables of the embedded search index: the index document (indexing/document.py) as rows.

One bookkeeping row per resource, one row per value in the table of its kind, one presence row per
(resource, parameter) for `:missing`. The bookkeeping row gives the resource a small integer key,
`doc`, and `idx_name` one to each (resource type, parameter), `pid`: every other row carries these
two integers, not the type, id and parameter name, which would be repeated in each row and in each
index entry (measured in bench/README.md: they were most of the index's bytes). The search side
matches `pid` plus the kind's columns and joins back on `doc`; a `pid` names the type too, so a
value index narrows to the searched types by itself.

| table | one row per | columns |
|---|---|---|
| idx_resource | resource (tombstones kept) | doc, type, id, version, last_updated, deleted |
| idx_name | (resource type, parameter) ever indexed | pid, type, param |
| idx_param | parameter with at least one value | doc, pid |
| idx_string | string value | norm (normalize_string), exact (as written) |
| idx_token | token value (not `_id`) | system (`''` when none), code (as written) |
| idx_token_text | token value with a text | text (normalised display / CodeableConcept.text) |
| idx_of_type | Identifier type coding | form (`type-system\\|type-code\\|value`) |
| idx_date | date value | gte, lte (fixed-width UTC strings: text order is time order) |
| idx_number | number or quantity value | value, gte, lte, system, code, unit |
| idx_reference | reference value | ref (`Type/id`), url, target_type, version |
| idx_ref_identifier | form of a reference's identifier | form |
| idx_uri | uri value | uri |

Every value table starts with `(doc, pid, grp)`. Composite values are stored in the same tables,
one row set per component under the parameter `<composite code>$<component code>` with `grp`
numbering the composite value (1, 2, ...), so a query joins the parts on `(doc, grp)` and they
hold within one value. Other rows have grp 0.

Indexes serve the IG's searches: references by (pid, ref), tokens by (pid, code, doc, system),
dates by (pid, gte) / (pid, lte), strings by (pid, norm); `(doc, pid)` on each value table serves
deletes and per-resource probes and sort values. A token value is one row whatever query forms it
answers (`code`, `system|code`, `|code`, `system|`: conditions on its columns).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = [
    "DATE",
    "NAME",
    "NUMBER",
    "OF_TYPE",
    "PARAM",
    "REFERENCE",
    "REF_IDENTIFIER",
    "RESOURCE",
    "SCHEMA",
    "STRING",
    "TOKEN",
    "TOKEN_TEXT",
    "URI",
    "VALUE_COLUMNS",
]

RESOURCE = "idx_resource"
NAME = "idx_name"
PARAM = "idx_param"
STRING = "idx_string"
TOKEN = "idx_token"
TOKEN_TEXT = "idx_token_text"
OF_TYPE = "idx_of_type"
DATE = "idx_date"
NUMBER = "idx_number"
REFERENCE = "idx_reference"
REF_IDENTIFIER = "idx_ref_identifier"
URI = "idx_uri"

# Columns of each value table after (doc, pid, grp), in insert order.
VALUE_COLUMNS: dict[str, tuple[str, ...]] = {
    STRING: ("norm", "exact"),
    TOKEN: ("system", "code"),
    TOKEN_TEXT: ("text",),
    OF_TYPE: ("form",),
    DATE: ("gte", "lte"),
    NUMBER: ("value", "gte", "lte", "system", "code", "unit"),
    REFERENCE: ("ref", "url", "target_type", "version"),
    REF_IDENTIFIER: ("form",),
    URI: ("uri",),
}

# Search indexes per value table (besides the (doc, pid) one every table has); each ends with
# doc unless it places it itself.
_SEARCH_INDEXES: dict[str, tuple[tuple[str, ...], ...]] = {
    STRING: (("pid", "norm"), ("pid", "exact")),
    # system after the key: a probe of one resource's `code` (or `system|code`) is a point
    # lookup, the system checked in the index entry
    TOKEN: (("pid", "code", "doc", "system"),),
    TOKEN_TEXT: (("pid", "text"),),
    OF_TYPE: (("pid", "form"),),
    DATE: (("pid", "gte"), ("pid", "lte")),
    NUMBER: (("pid", "value"),),
    REFERENCE: (("pid", "ref"), ("pid", "url")),
    REF_IDENTIFIER: (("pid", "form"),),
    URI: (("pid", "uri"),),
}


def _schema() -> str:
    statements = [
        f"CREATE TABLE IF NOT EXISTS {RESOURCE} (doc INTEGER PRIMARY KEY, type TEXT NOT NULL,"
        " id TEXT NOT NULL, version INTEGER NOT NULL, last_updated TEXT NOT NULL,"
        " deleted INTEGER NOT NULL)",
        f"CREATE UNIQUE INDEX IF NOT EXISTS {RESOURCE}_by_key ON {RESOURCE} (type, id)",
        f"CREATE INDEX IF NOT EXISTS {RESOURCE}_by_time ON {RESOURCE} (type, last_updated)",
        f"CREATE INDEX IF NOT EXISTS {RESOURCE}_by_id ON {RESOURCE} (id)",
        f"CREATE TABLE IF NOT EXISTS {NAME} (pid INTEGER PRIMARY KEY, type TEXT NOT NULL,"
        " param TEXT NOT NULL, UNIQUE (type, param))",
        # `:missing` probes a resource's own rows (the key); it never drives a search
        f"CREATE TABLE IF NOT EXISTS {PARAM} (doc INTEGER NOT NULL, pid INTEGER NOT NULL,"
        " PRIMARY KEY (doc, pid)) WITHOUT ROWID",
    ]
    for table, columns in VALUE_COLUMNS.items():
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {table} (doc INTEGER NOT NULL, pid INTEGER NOT NULL,"
            f" grp INTEGER NOT NULL, {', '.join(columns)})"
        )
        statements.append(f"CREATE INDEX IF NOT EXISTS {table}_by_resource ON {table} (doc, pid)")
        for index in _SEARCH_INDEXES[table]:
            name = f"{table}_by_{'_'.join(c for c in index if c != 'doc')}"
            columns = index if "doc" in index else (*index, "doc")
            statements.append(
                f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({', '.join(columns)})"
            )
    return ";\n".join(statements) + ";\n"


SCHEMA = _schema()


def outdated(columns_of: Callable[[str], list[str]]) -> list[str]:
    """The index tables to drop before SCHEMA applies, when the file holds an older layout
    (`columns_of(table)`: its column names, [] when absent): all of them, so that the index
    is found empty and rebuilt from the store (app/deploy/engines.py `index_lost`). Every
    older layout keyed its rows by (type, id), with no `doc`."""
    resource = columns_of(RESOURCE)
    if not resource or "doc" in resource:
        return []
    return [RESOURCE, NAME, PARAM, *VALUE_COLUMNS]
