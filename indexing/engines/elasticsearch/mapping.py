"""Elasticsearch mappings and document sources, derived from the search-parameter registry.

Pure functions: no client, no I/O. The index document (`indexing.document.index_document`) is
stored almost as is, so analysts read the same field names the SQLite engine uses; the only
changes are additions that Elasticsearch needs to answer the search plan:

- every date, number and quantity value gains `range` (a copy of its `{gte, lte}`), mapped as
  `date_range` / `double_range`, so each FHIR prefix is one range query with a relation;
- every document gains `deleted: false` (a tombstone is `deleted: true`, see `tombstone_source`);
- a parameter whose code is an Elasticsearch metadata field (`_id`, `_source`) is stored under
  `fhir_id` / `fhir_source` (`field_name`).

Field layout per parameter type (docs/index-schema.md has the analysts' version):

| type      | field `<code>` | subfields |
|-----------|----------------|-----------|
| string    | object         | `norm`, `exact` keyword |
| token     | object         | `system`, `code`, `display`, `text`, `forms`, `of_type` keyword |
| reference | object         | `ref`, `type`, `id`, `url`, `version`, `identifier` keyword |
| uri       | object         | `uri` keyword |
| date      | object         | `gte`, `lte` date; `range` date_range |
| number    | object         | `gte`, `lte`, `value` double; `range` double_range |
| quantity  | nested         | number's, plus `system`, `code`, `unit` keyword |
| composite | nested         | one object per component code, shaped by the component's type |

Objects are enough where every predicate reads one subfield (`forms`, `norm`, `ref`, `range`):
"some value satisfies it" is then a plain query on the flattened array. Quantities (range AND
system AND code) and composites (all parts in one value) need `nested`, so the parts of a match
come from the same value. The mapping is `dynamic: false`: a field the mapping does not name is
kept in `_source` but never indexed, so nothing appears that analysts were not told about, and a
process with a newer registry can still write to an index built with an older one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from indexing.registry import SearchParam, SearchParamRegistry

__all__ = [
    "DATE_FORMAT",
    "ES_METADATA_FIELDS",
    "NESTED_TYPES",
    "IndexSettings",
    "field_name",
    "from_source",
    "index_body",
    "index_mappings",
    "param_kind",
    "to_source",
    "tombstone_source",
]

DATE_FORMAT = "strict_date_optional_time||epoch_millis"
# Lucene refuses terms longer than 32766 bytes; 8191 characters is at most 32764 UTF-8 bytes.
KEYWORD_IGNORE_ABOVE = 8191
ES_METADATA_FIELDS = frozenset(
    {
        "_id",
        "_index",
        "_source",
        "_routing",
        "_version",
        "_seq_no",
        "_primary_term",
        "_field_names",
        "_ignored",
        "_ignored_source",
        "_nested_path",
        "_doc_count",
        "_data_stream_timestamp",
        "_tier",
        "_tsid",
        "_type",
        "_feature",
        "_routing_hash",
    }
)
NESTED_TYPES = frozenset({"quantity", "composite"})
_RANGE_TYPES = frozenset({"date", "number", "quantity"})

_KEYWORD: dict[str, Any] = {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE}
_DATE: dict[str, Any] = {"type": "date", "format": DATE_FORMAT}
_DOUBLE: dict[str, Any] = {"type": "double"}


def field_name(code: str) -> str:
    """The Elasticsearch field of a parameter: its code, unless that is a metadata field name."""
    return f"fhir{code}" if code in ES_METADATA_FIELDS else code


class IndexSettings:
    """Index settings for every type's index (test distribution: 1 shard, 0 replicas)."""

    __slots__ = ("refresh_interval", "replicas", "shards", "total_fields_limit")

    def __init__(
        self,
        shards: int = 1,
        replicas: int = 0,
        refresh_interval: str = "1s",
        total_fields_limit: int = 4000,
    ) -> None:
        self.shards = shards
        self.replicas = replicas
        self.refresh_interval = refresh_interval
        self.total_fields_limit = total_fields_limit

    def as_dict(self) -> dict[str, Any]:
        return {
            "number_of_shards": self.shards,
            "number_of_replicas": self.replicas,
            "refresh_interval": self.refresh_interval,
            "mapping": {"total_fields": {"limit": self.total_fields_limit}},
        }


def index_body(
    registry: SearchParamRegistry, resource_type: str, settings: IndexSettings | None = None
) -> dict[str, Any]:
    """The `indices.create` body (settings + mappings) of one resource type's index."""
    return {
        "settings": (settings or IndexSettings()).as_dict(),
        "mappings": index_mappings(registry, resource_type),
    }


def index_mappings(registry: SearchParamRegistry, resource_type: str) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "id": dict(_KEYWORD),
        "resourceType": dict(_KEYWORD),
        "versionId": {"type": "long"},
        "lastUpdated": dict(_DATE),
        "deleted": {"type": "boolean"},
    }
    for code, param in sorted(registry.for_type(resource_type).items()):
        mapping = _param_mapping(registry, param)
        if mapping is not None:
            properties[field_name(code)] = mapping
    return {"dynamic": False, "properties": properties}


def param_kind(registry: SearchParamRegistry, param: SearchParam) -> dict[str, Any] | str | None:
    """A parameter's value shape: its type, or for a composite `{component code: type}`
    (None when a component's definition is unknown: such a composite is never extracted)."""
    if param.type != "composite":
        return param.type
    kinds: dict[str, Any] = {}
    for component in param.components:
        definition = registry.by_url(component.definition)
        if definition is None or definition.type == "composite":
            return None
        kinds[definition.code] = definition.type
    return kinds


def _param_mapping(registry: SearchParamRegistry, param: SearchParam) -> dict[str, Any] | None:
    kind = param_kind(registry, param)
    if kind is None or kind == "special" or not param.expression.strip():
        return None  # never extracted (`_text`, `_content`, `_query`): no field
    if isinstance(kind, dict):
        components = {code: _value_mapping(str(t)) for code, t in kind.items()}
        return {"type": "nested", "properties": {c: m for c, m in components.items() if m}}
    mapping = _value_mapping(kind)
    if mapping is None:
        return None
    if kind in NESTED_TYPES:
        return {"type": "nested", "properties": mapping["properties"]}
    return mapping


def _value_mapping(param_type: str) -> dict[str, Any] | None:
    """Object mapping of one value of a non-composite type."""
    keywords: tuple[str, ...]
    if param_type == "string":
        keywords = ("norm", "exact")
    elif param_type == "token":
        keywords = ("system", "code", "display", "text", "forms", "of_type")
    elif param_type == "reference":
        keywords = ("ref", "type", "id", "url", "version", "identifier")
    elif param_type == "uri":
        keywords = ("uri",)
    elif param_type == "date":
        return {
            "properties": {
                "gte": dict(_DATE),
                "lte": dict(_DATE),
                "range": {"type": "date_range", "format": DATE_FORMAT},
            }
        }
    elif param_type in ("number", "quantity"):
        properties: dict[str, Any] = {
            "gte": dict(_DOUBLE),
            "lte": dict(_DOUBLE),
            "value": dict(_DOUBLE),
            "range": {"type": "double_range"},
        }
        if param_type == "quantity":
            properties.update({k: dict(_KEYWORD) for k in ("system", "code", "unit")})
        return {"properties": properties}
    else:
        return None
    return {"properties": {k: dict(_KEYWORD) for k in keywords}}


# -- documents --------------------------------------------------------------------------------


def to_source(registry: SearchParamRegistry, document: Mapping[str, Any]) -> dict[str, Any]:
    """The Elasticsearch `_source` of an index document (see the module docstring)."""
    resource_type = document["resourceType"]
    params = registry.for_type(resource_type)
    source: dict[str, Any] = {}
    for key, value in document.items():
        param = params.get(key)
        if param is None or key in ("id", "resourceType", "versionId", "lastUpdated"):
            source[field_name(key)] = value
            continue
        kind = param_kind(registry, param)
        source[field_name(key)] = [_with_ranges(kind, item) for item in value]
    source["deleted"] = False
    return source


def _with_ranges(kind: dict[str, Any] | str | None, value: Any) -> Any:
    if isinstance(kind, dict):
        if not isinstance(value, Mapping):
            return value
        return {code: _with_ranges(kind.get(code), part) for code, part in value.items()}
    if kind in _RANGE_TYPES and isinstance(value, Mapping) and "gte" in value:
        return {**value, "range": {"gte": value["gte"], "lte": value["lte"]}}
    return value


def from_source(source: Mapping[str, Any]) -> dict[str, Any] | None:
    """The index document back from a `_source` (None for a tombstone): `to_source` undone,
    used to re-project documents into a new index generation."""
    if source.get("deleted"):
        return None
    document: dict[str, Any] = {}
    for key, value in source.items():
        if key == "deleted":
            continue
        code = key[4:] if key.startswith("fhir_") and key[4:] in ES_METADATA_FIELDS else key
        document[code] = _without_ranges(value) if isinstance(value, list) else value
    return document


def _without_ranges(value: Any) -> Any:
    if isinstance(value, list):
        return [_without_ranges(item) for item in value]
    if isinstance(value, Mapping):
        return {k: _without_ranges(v) for k, v in value.items() if k != "range"}
    return value


def tombstone_source(resource_type: str, resource_id: str, version: int) -> dict[str, Any]:
    """A deleted resource: kept (not an Elasticsearch delete) so that external versioning keeps
    refusing older ops for it; Elasticsearch forgets a delete's version after `gc_deletes`."""
    return {"id": resource_id, "resourceType": resource_type, "versionId": version, "deleted": True}
