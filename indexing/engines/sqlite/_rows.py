"""The rows of one index document (pure): what `SqliteSearchIndex.write` inserts, each after the
resource's `doc` and with its parameter name in place of the `pid` (schema.py): the adapter
knows both numbers, this module neither.

A value's kind is read from its shape (docs: indexing/document.py): `forms` -> token, `norm` ->
string, `ref` -> reference, `uri` -> uri, `gte` with `value` -> number/quantity, `gte` alone ->
date, otherwise a composite (component code -> value).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from indexing.engines.sqlite.schema import (
    DATE,
    NUMBER,
    OF_TYPE,
    PARAM,
    REF_IDENTIFIER,
    REFERENCE,
    STRING,
    TOKEN,
    TOKEN_TEXT,
    URI,
)
from indexing.registry import RESERVED_DOCUMENT_FIELDS

__all__ = ["COMPONENT_SEPARATOR", "Rows", "document_rows"]

COMPONENT_SEPARATOR = "$"

Rows = dict[str, list[tuple[Any, ...]]]


def document_rows(document: Mapping[str, Any]) -> Rows:
    """Rows per table for one resource's document: `(param, grp, *columns)` in the value
    tables, `(param,)` in idx_param."""
    rows: Rows = {}
    for param, values in document.items():
        if param in RESERVED_DOCUMENT_FIELDS or not isinstance(values, list) or not values:
            continue
        rows.setdefault(PARAM, []).append((param,))
        for group, value in enumerate(values, start=1):
            if not isinstance(value, Mapping):
                continue
            if _is_composite(value):
                for component, part in value.items():
                    if isinstance(part, Mapping):
                        name = f"{param}{COMPONENT_SEPARATOR}{component}"
                        _value_rows(rows, name, group, part)
            else:
                _value_rows(rows, param, 0, value)
    return rows


def _is_composite(value: Mapping[str, Any]) -> bool:
    return bool(value) and all(isinstance(part, Mapping) for part in value.values())


def _value_rows(rows: Rows, param: str, grp: int, value: Mapping[str, Any]) -> None:
    head = (param, grp)
    if "forms" in value or "text" in value:
        # One row per value, not per query form: the compiler turns a form into conditions on
        # (system, code). `_id` has none: the compiler reads ids from idx_resource.
        if value.get("forms") and param != "_id":
            rows.setdefault(TOKEN, []).append((*head, value.get("system") or "", value.get("code")))
        if value.get("text"):
            rows.setdefault(TOKEN_TEXT, []).append((*head, value["text"]))
        rows.setdefault(OF_TYPE, []).extend((*head, form) for form in value.get("of_type") or ())
    elif "norm" in value:
        rows.setdefault(STRING, []).append((*head, value["norm"], value.get("exact")))
    elif "ref" in value:
        rows.setdefault(REFERENCE, []).append(
            (
                *head,
                value.get("ref"),
                value.get("url"),
                value.get("type"),
                value.get("version"),
            )
        )
        rows.setdefault(REF_IDENTIFIER, []).extend(
            (*head, form) for form in value.get("identifier") or ()
        )
    elif "uri" in value:
        rows.setdefault(URI, []).append((*head, value["uri"]))
    elif "value" in value:
        rows.setdefault(NUMBER, []).append(
            (
                *head,
                value["value"],
                value.get("gte"),
                value.get("lte"),
                value.get("system"),
                value.get("code"),
                value.get("unit"),
            )
        )
    elif "gte" in value:
        rows.setdefault(DATE, []).append((*head, value["gte"], value.get("lte")))
