"""Search plan -> Elasticsearch query body. Pure: no client, no I/O.

`compile_query` gives the body of one `_search` request (query, sort, size, search_after,
track_total_hits); the adapter adds the indexes or the point in time. Each predicate of the plan
(indexing/plan/plan.py states the semantics) becomes one query clause:

| predicate | query |
|---|---|
| StringMatch | starts: `prefix`, contains: `wildcard *v*` on `<p>.norm`; exact: `<p>.exact` |
| TokenMatch | `term` on `<p>.forms` (`:text`: `prefix` on `<p>.text`; `:of-type`: `<p>.of_type`) |
| DateMatch, NumberMatch | `range` on `<p>.range` (date_range / double_range) with a relation |
| NumberMatch quantity | `nested` on `<p>`: the range plus `system` / `code` (or `unit`) terms |
| RefMatch | `term` on `<p>.ref` (`Type/id`), `.url` (absolute), `.id` (bare id), `.identifier` |
| RefIn, IdIn | `terms` on `<p>.ref`, `id` |
| UriMatch | on `<p>.uri`: exact `term`; above `terms` (each query prefix); below `prefix` |
| Missing | `exists` on `<p>` (wrapped in `nested` for quantity and composite) |
| CompositeMatch | `nested` on `<p>` with every part on `<p>.<component code>` |

`:not` becomes `must_not` of the positive form: no value satisfies it. `ne` is not a negation:
like every prefix it holds for one value (in the unit asked for, inside the quantity's `nested`).
Values are always data (term values, range bounds, escaped wildcard patterns); no query string
is ever built from a value.

Date/number prefixes over `[gte, lte]` ranges (q = query interval, v = a value's interval):

| prefix | means | range query on `<p>.range` |
|---|---|---|
| eq | v within q | `gte: q.gte, lte: q.lte, relation: within` |
| gt | v.lte > q.lte | `gt: q.lte, relation: intersects` |
| lt | v.gte < q.gte | `lt: q.gte, relation: intersects` |
| ge / le | gt or eq / lt or eq | `should` of both |
| sa | v.gte > q.lte | `gt: q.lte, relation: within` |
| eb | v.lte < q.gte | `lt: q.gte, relation: within` |
| ap | v intersects q widened | `gte, lte` widened (indexing/plan/approximate.py), `intersects` |
| ne | v not within q (v.gte < q.gte or v.lte > q.lte) | `should` of the `lt` and `gt` queries |
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from indexing.engines.elasticsearch.mapping import NESTED_TYPES, field_name, param_kind
from indexing.plan.approximate import approximate_date_range, approximate_number_range
from indexing.plan.plan import (
    Chain,
    Clause,
    CompositeMatch,
    DateMatch,
    Has,
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

__all__ = [
    "MATCH_NONE",
    "compile_query",
    "compile_sort",
    "compile_where",
    "escape_wildcard",
]

MATCH_NONE: dict[str, Any] = {"match_none": {}}
MATCH_ALL: dict[str, Any] = {"match_all": {}}
NOT_DELETED: dict[str, Any] = {"term": {"deleted": True}}
TIE_BREAKERS: tuple[dict[str, Any], ...] = (
    {"resourceType": {"order": "asc"}},
    {"id": {"order": "asc"}},
)
_SORT_FIELD = {"string": "norm", "token": "code", "reference": "ref", "uri": "uri"}
_UNMAPPED = {
    "string": "keyword",
    "token": "keyword",
    "reference": "keyword",
    "uri": "keyword",
    "date": "date",
    "number": "double",
    "quantity": "double",
}


def compile_query(
    plan: SearchPlan,
    registry: SearchParamRegistry,
    after: Sequence[Any] | None = None,
    *,
    with_total: bool = False,
    size: int | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The `_search` body for a resolved plan: live documents matching every clause, in the
    plan's sort order then (resourceType, id), `size` (default `plan.count`) hits after the
    sort values `after`. `now` fixes the clock for date `ap` (default: the current time).

    Raises ValueError for an unresolved `Chain`/`Has` or an unsortable parameter."""
    body: dict[str, Any] = {
        "query": compile_where(plan, registry, now=now),
        "sort": compile_sort(plan, registry),
        "size": plan.count if size is None else size,
        "track_total_hits": with_total,
        "_source": ["id", "resourceType", "versionId"],
    }
    if after is not None:
        body["search_after"] = list(after)
    return body


def compile_where(
    plan: SearchPlan, registry: SearchParamRegistry, *, now: datetime | None = None
) -> dict[str, Any]:
    compiler = _Compiler(registry, plan.types, now or datetime.now(UTC))
    filters = [compiler.clause(clause) for clause in plan.clauses]
    return {"bool": {"filter": filters, "must_not": [NOT_DELETED]}}


def compile_sort(plan: SearchPlan, registry: SearchParamRegistry) -> list[dict[str, Any]]:
    return [*(_sort_key(key, registry, plan.types) for key in plan.sort), *TIE_BREAKERS]


def escape_wildcard(text: str) -> str:
    """`text` as a literal inside a `wildcard` pattern (`*`, `?` and `\\` escaped)."""
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")


def _param_type(registry: SearchParamRegistry, types: Sequence[str], code: str) -> str | None:
    for resource_type in types or ("Resource",):
        param = registry.get(resource_type, code)
        if param is not None:
            return param.type
    return None


def _sort_key(key: SortKey, registry: SearchParamRegistry, types: Sequence[str]) -> dict[str, Any]:
    order = "desc" if key.descending else "asc"
    mode = "max" if key.descending else "min"
    if key.param in ("_id", "id"):
        return {"id": {"order": order}}
    if key.param in ("_lastUpdated", "lastUpdated"):
        return {"lastUpdated": {"order": order, "missing": "_last", "unmapped_type": "date"}}
    param_type = _param_type(registry, types, key.param)
    field = field_name(key.param)
    spec: dict[str, Any] = {"order": order, "mode": mode, "missing": "_last"}
    if param_type in _SORT_FIELD:
        path = f"{field}.{_SORT_FIELD[param_type]}"
    elif param_type == "date":
        path = f"{field}.{'lte' if key.descending else 'gte'}"
    elif param_type in ("number", "quantity"):
        path = f"{field}.value"
        if param_type == "quantity":
            spec["nested"] = {"path": field}
    else:
        raise ValueError(f"cannot sort by {key.param!r} ({param_type or 'unknown'} parameter)")
    spec["unmapped_type"] = _UNMAPPED[param_type]
    return {path: spec}


class _Compiler:
    def __init__(self, registry: SearchParamRegistry, types: Sequence[str], now: datetime):
        self.registry = registry
        self.types = types
        self.now = now

    def clause(self, clause: Clause) -> dict[str, Any]:
        queries = [self.predicate(p, field_name(_param_of(p))) for p in clause.any_of]
        return _any(queries)

    def predicate(self, predicate: Predicate, field: str) -> dict[str, Any]:
        """The query for `predicate` on the values under `field` (a parameter's field, or a
        component's path inside a composite)."""
        if isinstance(predicate, StringMatch):
            return _string(predicate, field)
        if isinstance(predicate, TokenMatch):
            query = _token(predicate, field)
            return _not(query) if predicate.negate else query
        if isinstance(predicate, DateMatch):
            return self._date(predicate, field)
        if isinstance(predicate, NumberMatch):
            return self._number(predicate, field)
        if isinstance(predicate, RefMatch):
            return _reference(predicate, field)
        if isinstance(predicate, RefIn):
            refs = list(predicate.refs)
            return {"terms": {f"{field}.ref": refs}} if refs else MATCH_NONE
        if isinstance(predicate, IdIn):
            ids = list(predicate.ids)
            if predicate.negate:
                return _not({"terms": {"id": ids}}) if ids else MATCH_ALL
            return {"terms": {"id": ids}} if ids else MATCH_NONE
        if isinstance(predicate, UriMatch):
            return _uri(predicate, field)
        if isinstance(predicate, Missing):
            return self._missing(predicate, field)
        if isinstance(predicate, CompositeMatch):
            parts = [self.predicate(p, f"{field}.{_param_of(p)}") for p in predicate.parts]
            return _nested(field, _all(parts))
        if isinstance(predicate, Chain | Has):
            raise ValueError(f"unresolved {type(predicate).__name__}: resolve it before compiling")
        raise TypeError(f"not a predicate: {predicate!r}")

    def _date(self, match: DateMatch, field: str) -> dict[str, Any]:
        if match.param in ("_lastUpdated", "lastUpdated") and field in ("lastUpdated",):
            field = "_lastUpdated"
        gte, lte = match.gte, match.lte
        if match.prefix == "ap":
            gte, lte = approximate_date_range(gte, lte, self.now)
        return _ranged(f"{field}.range", match.prefix, gte, lte)

    def _number(self, match: NumberMatch, field: str) -> dict[str, Any]:
        gte, lte = match.gte, match.lte
        if match.prefix == "ap":
            gte, lte = approximate_number_range(match.value, gte, lte)
        if not match.quantity:
            return _ranged(f"{field}.range", match.prefix, gte, lte)
        conditions = [_ranged(f"{field}.range", match.prefix, gte, lte)]
        if match.system is not None:
            conditions.append({"term": {f"{field}.system": match.system}})
            if match.code is not None:
                conditions.append({"term": {f"{field}.code": match.code}})
        elif match.code is not None:
            conditions.append(
                _any(
                    [
                        {"term": {f"{field}.code": match.code}},
                        {"term": {f"{field}.unit": match.code}},
                    ]
                )
            )
        # A composite's component (`<composite>.<code>`) is already inside the composite's nested.
        return _all(conditions) if "." in field else _nested(field, _all(conditions))

    def _missing(self, match: Missing, field: str) -> dict[str, Any]:
        param = None
        for resource_type in self.types or ():
            param = self.registry.get(resource_type, match.param)
            if param is not None:
                break
        exists: dict[str, Any] = {"exists": {"field": field}}
        if param is not None and param.type in NESTED_TYPES and param_kind(self.registry, param):
            exists = _nested(field, exists)
        return _not(exists) if match.missing else exists


def _param_of(predicate: Predicate) -> str:
    if isinstance(predicate, IdIn):
        return "_id"
    return predicate.param


def _string(match: StringMatch, field: str) -> dict[str, Any]:
    if match.mode == "exact":
        return {"term": {f"{field}.exact": match.value}}
    if match.mode == "contains":
        pattern = f"*{escape_wildcard(match.value)}*"
        return {"wildcard": {f"{field}.norm": {"value": pattern}}}
    return {"prefix": {f"{field}.norm": match.value}}


def _token(match: TokenMatch, field: str) -> dict[str, Any]:
    if match.text:
        return {"prefix": {f"{field}.text": match.form}}
    if match.of_type:
        return {"term": {f"{field}.of_type": match.form}}
    return {"term": {f"{field}.forms": match.form}}


def _reference(match: RefMatch, field: str) -> dict[str, Any]:
    if match.identifier:
        query = {"term": {f"{field}.identifier": match.ref}}
        if match.type is not None:
            return _all([query, {"term": {f"{field}.type": match.type}}])
        return query
    if ":" in match.ref:  # absolute URL, urn:uuid:, canonical: kept in full in `url` or `ref`
        queries = [{"term": {f"{field}.url": match.ref}}, {"term": {f"{field}.ref": match.ref}}]
        url, bar, version = match.ref.rpartition("|")
        if bar and url and version:  # a versioned canonical: `url|version`
            queries.append(
                _all([{"term": {f"{field}.url": url}}, {"term": {f"{field}.version": version}}])
            )
        return _any(queries)
    if "/" in match.ref:
        return {"term": {f"{field}.ref": match.ref}}
    query = {"term": {f"{field}.id": match.ref}}
    if match.type is not None:
        return _all([query, {"term": {f"{field}.type": match.type}}])
    return query


def _uri(match: UriMatch, field: str) -> dict[str, Any]:
    path = f"{field}.uri"
    if match.mode == "below":
        return {"prefix": {path: match.value}}
    if match.mode == "above":
        prefixes = [match.value[:end] for end in range(1, len(match.value) + 1)]
        return {"terms": {path: prefixes}} if prefixes else MATCH_NONE
    return {"term": {path: match.value}}


def _ranged(path: str, prefix: str, gte: Any, lte: Any) -> dict[str, Any]:
    def within(bounds: dict[str, Any]) -> dict[str, Any]:
        return {"range": {path: {**bounds, "relation": "within"}}}

    def intersects(bounds: dict[str, Any]) -> dict[str, Any]:
        return {"range": {path: {**bounds, "relation": "intersects"}}}

    eq = within({"gte": gte, "lte": lte})
    if prefix == "eq":
        return eq
    if prefix == "ne":  # this value is not eq: it starts before the query or ends after it
        return _any([intersects({"lt": gte}), intersects({"gt": lte})])
    if prefix == "gt":
        return intersects({"gt": lte})
    if prefix == "lt":
        return intersects({"lt": gte})
    if prefix == "ge":
        return _any([intersects({"gt": lte}), eq])
    if prefix == "le":
        return _any([intersects({"lt": gte}), eq])
    if prefix == "sa":
        return within({"gt": lte})
    if prefix == "eb":
        return within({"lt": gte})
    if prefix == "ap":
        return intersects({"gte": gte, "lte": lte})
    raise ValueError(f"unknown prefix {prefix!r}")


def _nested(path: str, query: dict[str, Any]) -> dict[str, Any]:
    return {"nested": {"path": path, "query": query}}


def _not(query: dict[str, Any]) -> dict[str, Any]:
    return {"bool": {"must_not": [query]}}


def _any(queries: list[dict[str, Any]]) -> dict[str, Any]:
    if len(queries) == 1:
        return queries[0]
    return {"bool": {"should": queries, "minimum_should_match": 1}}


def _all(queries: list[dict[str, Any]]) -> dict[str, Any]:
    if len(queries) == 1:
        return queries[0]
    return {"bool": {"filter": queries}}
