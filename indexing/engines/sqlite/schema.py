"""Tables of the embedded search index: the index document (indexing/document.py) as rows.

One bookkeeping row per resource, one row per value in the table of its kind, one presence row per
(resource, parameter) for `:missing`. Every value row carries `(type, id, param)`; the search side
matches `param` plus the kind's columns and joins back on `(type, id)`.

| table | one row per | columns beyond (type, id, param, grp) |
|---|---|---|
| idx_resource | resource (tombstones kept, deleted=1) | version, last_updated, deleted |
| idx_param | parameter with at least one value | (no grp) |
| idx_string | string value | norm (normalize_string), exact (as written) |
| idx_token | token value (not `_id`) | system (`''` when none), code (as written) |
| idx_token_text | token value with a text | text (normalised display / CodeableConcept.text) |
| idx_of_type | Identifier type coding | form (`type-system\\|type-code\\|value`) |
| idx_date | date value | gte, lte (fixed-width UTC strings: text order is time order) |
| idx_number | number or quantity value | value, gte, lte, system, code, unit |
| idx_reference | reference value | ref (`Type/id`), url, target_type, target_id, version |
| idx_ref_identifier | form of a reference's identifier | form |
| idx_uri | uri value | uri |

Composite values are stored in the same tables, one row set per component under the parameter
`<composite code>$<component code>` with `grp` numbering the composite value (1, 2, ...), so a
query joins the parts on `(type, id, grp)` and they hold within one value. Other rows have grp 0.

Indexes serve the IG's searches: references by (param, ref), tokens by (param, code, system),
dates by (param, gte) / (param, lte), strings by (param, norm); `(type, id, param)` on each value
table serves deletes and per-resource sort values. A token value is one row whatever query forms
it answers (`code`, `system|code`, `|code`, `system|`: conditions on its columns), so tokens,
the largest table, take a third of the rows they took as one row per form.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = [
    "DATE",
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

# Columns of each value table after (type, id, param, grp), in insert order.
VALUE_COLUMNS: dict[str, tuple[str, ...]] = {
    STRING: ("norm", "exact"),
    TOKEN: ("system", "code"),
    TOKEN_TEXT: ("text",),
    OF_TYPE: ("form",),
    DATE: ("gte", "lte"),
    NUMBER: ("value", "gte", "lte", "system", "code", "unit"),
    REFERENCE: ("ref", "url", "target_type", "target_id", "version"),
    REF_IDENTIFIER: ("form",),
    URI: ("uri",),
}

# Search indexes per value table (besides the (type, id, param) one every table has); each
# ends with (type, id) unless it places them itself.
_SEARCH_INDEXES: dict[str, tuple[tuple[str, ...], ...]] = {
    STRING: (("param", "norm"), ("param", "exact")),
    # system after the key: a probe of one resource's `code` (or `system|code`) is a point
    # lookup, the system checked in the index entry
    TOKEN: (("param", "code", "type", "id", "system"),),
    TOKEN_TEXT: (("param", "text"),),
    OF_TYPE: (("param", "form"),),
    DATE: (("param", "gte"), ("param", "lte")),
    NUMBER: (("param", "value"),),
    REFERENCE: (("param", "ref"), ("param", "url"), ("param", "target_id")),
    REF_IDENTIFIER: (("param", "form"),),
    URI: (("param", "uri"),),
}


def _schema() -> str:
    statements = [
        f"CREATE TABLE IF NOT EXISTS {RESOURCE} (type TEXT NOT NULL, id TEXT NOT NULL,"
        " version INTEGER NOT NULL, last_updated TEXT NOT NULL, deleted INTEGER NOT NULL,"
        " PRIMARY KEY (type, id)) WITHOUT ROWID",
        f"CREATE INDEX IF NOT EXISTS {RESOURCE}_by_time ON {RESOURCE} (type, last_updated)",
        f"CREATE INDEX IF NOT EXISTS {RESOURCE}_by_id ON {RESOURCE} (id)",
        f"CREATE TABLE IF NOT EXISTS {PARAM} (type TEXT NOT NULL, id TEXT NOT NULL,"
        " param TEXT NOT NULL, PRIMARY KEY (type, id, param)) WITHOUT ROWID",
        # `:missing` probes a resource's own rows (the key); it never drives a search
        f"DROP INDEX IF EXISTS {PARAM}_by_param",
    ]
    for table, columns in VALUE_COLUMNS.items():
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {table} (type TEXT NOT NULL, id TEXT NOT NULL,"
            f" param TEXT NOT NULL, grp INTEGER NOT NULL, {', '.join(columns)})"
        )
        statements.append(
            f"CREATE INDEX IF NOT EXISTS {table}_by_resource ON {table} (type, id, param)"
        )
        for index in _SEARCH_INDEXES[table]:
            name = f"{table}_by_{'_'.join(c for c in index if c not in ('type', 'id'))}"
            columns = index if "id" in index else (*index, "type", "id")
            statements.append(
                f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({', '.join(columns)})"
            )
    return ";\n".join(statements) + ";\n"


SCHEMA = _schema()


def outdated(columns_of: Callable[[str], list[str]]) -> list[str]:
    """The index tables to drop before SCHEMA applies, when the file holds an older layout
    (`columns_of(table)`: its column names, [] when absent): all of them, so that the index
    is found empty and rebuilt from the store (app/deploy/engines.py `index_lost`)."""
    token = columns_of(TOKEN)
    if not token or "system" in token:
        return []
    return [RESOURCE, PARAM, *VALUE_COLUMNS]
