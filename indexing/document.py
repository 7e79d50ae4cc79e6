"""The engine-neutral index document of one resource version, and the op that writes it.

Both index engines store exactly this JSON (Elasticsearch as the document body, SQLite as rows
derived from it), so they answer every query from the same values. Field shapes per parameter
type are specified, with examples, in `docs/implementation/index-values.md`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from indexing._values import (
    CompositeValue,
    DateValue,
    NumberValue,
    QuantityValue,
    ReferenceValue,
    StringValue,
    TokenValue,
    UriValue,
    Value,
)
from indexing.normalize import date_interval, normalize_string
from indexing.registry import RESERVED_DOCUMENT_FIELDS, SearchParamRegistry

__all__ = ["IndexOp", "escape_token_part", "index_document", "token_forms", "value_document"]


@dataclass(frozen=True)
class IndexOp:
    """A version-guarded write of one resource's index document: what projection returns
    (indexing/project.py) and every index engine performs (indexing/engines/port.py)."""

    type: str
    id: str
    version: int
    document: dict[str, Any] | None  # None: a tombstone (the resource was deleted)


def index_document(
    registry: SearchParamRegistry, resource: Mapping[str, Any], values: Mapping[str, list[Value]]
) -> dict[str, Any]:
    """`{"id", "resourceType", "versionId", "lastUpdated", <param code>: [field values]}`.

    The bookkeeping keys are named so that no search parameter can collide with them (R4 has
    parameters called `type` and `version`; `SearchParamRegistry.register` refuses the reserved
    names). Raises ValueError if the resource lacks the id or meta the store always assigns."""
    resource_type = resource.get("resourceType")
    resource_id = resource.get("id")
    meta = resource.get("meta")
    if not isinstance(resource_type, str) or not isinstance(resource_id, str):
        raise ValueError("an indexed resource needs resourceType and id")
    if not isinstance(meta, Mapping) or not meta.get("versionId") or not meta.get("lastUpdated"):
        raise ValueError("an indexed resource needs meta.versionId and meta.lastUpdated")
    try:
        version = int(meta["versionId"])
    except ValueError:
        raise ValueError(f"meta.versionId is not an integer: {meta['versionId']!r}") from None
    document: dict[str, Any] = {
        "id": resource_id,
        "resourceType": resource_type,
        "versionId": version,
        "lastUpdated": date_interval(meta["lastUpdated"])[0],
    }
    known = registry.for_type(resource_type)
    for code, param_values in values.items():
        if code in known and code not in RESERVED_DOCUMENT_FIELDS and param_values:
            document[code] = [value_document(value) for value in param_values]
    return document


def value_document(value: Value) -> dict[str, Any]:
    """The JSON form of one value (see the module docstring for where the shapes are listed)."""
    if isinstance(value, StringValue):
        return {"norm": value.norm, "exact": value.exact}
    if isinstance(value, TokenValue):
        return _token_document(value)
    if isinstance(value, DateValue):
        return {"gte": value.low, "lte": value.high}
    if isinstance(value, NumberValue):
        return {
            "gte": _number(value.low),
            "lte": _number(value.high),
            "value": _number(value.value),
        }
    if isinstance(value, QuantityValue):
        return {
            "gte": _number(value.low),
            "lte": _number(value.high),
            "value": _number(value.value),
            "system": value.system,
            "code": value.code,
            "unit": value.unit,
        }
    if isinstance(value, ReferenceValue):
        return {
            "ref": value.ref,
            "type": value.type,
            "id": value.id,
            "url": value.url,
            "version": value.version,
            "identifier": (
                token_forms(value.identifier.system, value.identifier.code)
                if value.identifier is not None
                else []
            ),
        }
    if isinstance(value, UriValue):
        return {"uri": value.uri}
    if isinstance(value, CompositeValue):
        return {code: value_document(part) for code, part in value.components}
    raise TypeError(f"not an index value: {value!r}")


def _token_document(token: TokenValue) -> dict[str, Any]:
    document: dict[str, Any] = {
        "system": token.system,
        "code": token.code,
        "display": token.text,
        "text": normalize_string(token.text) if token.text else None,
        "forms": token_forms(token.system, token.code),
    }
    if token.type_codings and token.code is not None:
        # `identifier:of-type=type-system|type-code|value` (R4 search.html §2.1.1.5.7).
        document["of_type"] = [
            f"{escape_token_part(system or '')}|{escape_token_part(code)}|"
            f"{escape_token_part(token.code)}"
            for system, code in token.type_codings
        ]
    return document


def token_forms(system: str | None, code: str | None) -> list[str]:
    """Every token query form this value answers (R4 search.html §2.1.1.4.1 token):
    `code`, `system|code`, `system|` and, for a value without a system, `|code`.

    Parts are escaped as FHIR search escapes them (`\\|`, `\\\\`), so the search side builds the
    same string from a query value and an exact term match suffices."""
    forms: list[str] = []
    has_system = bool(system)
    if code is not None:
        escaped_code = escape_token_part(code)
        forms.append(escaped_code)
        if has_system:
            forms.append(f"{escape_token_part(system or '')}|{escaped_code}")
        else:
            forms.append(f"|{escaped_code}")
    if has_system:
        forms.append(f"{escape_token_part(system or '')}|")
    return forms


def escape_token_part(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|")


def _number(value: Decimal) -> float | int:
    """JSON has no decimal type; both engines compare numbers as doubles."""
    return int(value) if value == value.to_integral_value() and abs(value) < 2**53 else float(value)
