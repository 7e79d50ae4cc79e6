"""Does one resource match a search plan? The plan evaluated on one index document, no engine.

Subscriptions ask this of every committed version (R4 subscription.html: criteria are a search
URL; Subscriptions Backport: a topic's queryCriteria and a subscription's filters). The answer
is read from the same index document both engines store (indexing/document.py), with the
semantics `indexing/plan/plan.py` states for the engines, so a resource matches here exactly
when a search with the same plan would find it. A `Chain` or `Has` needs other resources: the
caller resolves it first (`resolve`), or the match refuses it with `UnresolvedPredicate`.

Pure: reads nothing but its arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

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
    StringMatch,
    TokenMatch,
    UriMatch,
)

__all__ = ["UnresolvedPredicate", "plan_matches"]

Resolver = Callable[[Chain | Has], Predicate]


class UnresolvedPredicate(ValueError):
    """The plan has a chain or `_has` and no resolver was given to turn it into ids."""


def plan_matches(
    plan: SearchPlan,
    document: Mapping[str, Any],
    now: datetime,
    resolve: Resolver | None = None,
) -> bool:
    """True when the resource whose index document this is satisfies every clause of `plan`
    and is of one of its types (no types: any). `now` anchors `ap` on dates."""
    if plan.types and document.get("resourceType") not in plan.types:
        return False
    return all(_clause(clause, document, now, resolve) for clause in plan.clauses)


def _clause(
    clause: Clause, document: Mapping[str, Any], now: datetime, resolve: Resolver | None
) -> bool:
    return any(_predicate(p, document, now, resolve) for p in clause.any_of)


def _predicate(
    predicate: Predicate, document: Mapping[str, Any], now: datetime, resolve: Resolver | None
) -> bool:
    if isinstance(predicate, Chain | Has):
        if resolve is None:
            raise UnresolvedPredicate(f"{type(predicate).__name__} needs a resolver")
        return _predicate(resolve(predicate), document, now, None)
    if isinstance(predicate, IdIn):
        return (document.get("id") in predicate.ids) != predicate.negate
    if isinstance(predicate, Missing):
        return (not _values(document, predicate.param)) == predicate.missing
    if isinstance(predicate, TokenMatch) and predicate.negate:
        positive = TokenMatch(predicate.param, predicate.form, False, predicate.text)
        return not _predicate(positive, document, now, resolve)
    if isinstance(predicate, DateMatch) and predicate.param == "_lastUpdated":
        instant = document.get("lastUpdated")
        point = [{"gte": instant, "lte": instant}] if instant else []
        return any(_value_matches(predicate, v, now) for v in point)
    return any(_value_matches(predicate, v, now) for v in _values(document, predicate.param))


def _values(document: Mapping[str, Any], param: str) -> Sequence[Mapping[str, Any]]:
    values = document.get(param)
    return values if isinstance(values, list) else []


def _value_matches(predicate: Predicate, value: Mapping[str, Any], now: datetime) -> bool:
    if isinstance(predicate, StringMatch):
        if predicate.mode == "exact":
            return bool(value.get("exact") == predicate.value)
        norm = value.get("norm") or ""
        if predicate.mode == "contains":
            return predicate.value in norm
        return bool(norm.startswith(predicate.value))
    if isinstance(predicate, TokenMatch):
        if predicate.text:
            return bool((value.get("text") or "").startswith(predicate.form))
        return predicate.form in (value.get("of_type" if predicate.of_type else "forms") or [])
    if isinstance(predicate, DateMatch):
        low, high = predicate.gte, predicate.lte
        if predicate.prefix == "ap":
            low, high = approximate_date_range(low, high, now)
        return _in_range(predicate.prefix, value, low, high)
    if isinstance(predicate, NumberMatch):
        return _number_matches(predicate, value)
    if isinstance(predicate, RefMatch):
        return _reference_matches(predicate, value)
    if isinstance(predicate, RefIn):
        return value.get("ref") in predicate.refs
    if isinstance(predicate, UriMatch):
        uri = value.get("uri")
        if not isinstance(uri, str):
            return False
        if predicate.mode == "below":
            return uri.startswith(predicate.value)
        if predicate.mode == "above":
            return predicate.value.startswith(uri)
        return uri == predicate.value
    if isinstance(predicate, CompositeMatch):
        return all(_part_matches(part, value, now) for part in predicate.parts)
    raise ValueError(f"cannot evaluate {type(predicate).__name__} on one value")


def _part_matches(part: Predicate, value: Mapping[str, Any], now: datetime) -> bool:
    """One part of a composite, on the component value of the same composite value."""
    component = value.get(getattr(part, "param", ""))
    return isinstance(component, Mapping) and _value_matches(part, component, now)


def _number_matches(predicate: NumberMatch, value: Mapping[str, Any]) -> bool:
    low, high = predicate.gte, predicate.lte
    if predicate.prefix == "ap":
        low, high = approximate_number_range(predicate.value, low, high)
    if not _in_range(predicate.prefix, value, low, high):
        return False
    if predicate.system is not None and value.get("system") != predicate.system:
        return False
    if predicate.code is None:
        return True
    if predicate.system is not None:
        return bool(value.get("code") == predicate.code)
    return predicate.code in (value.get("code"), value.get("unit"))  # `5.4||mg`


def _in_range(prefix: str, value: Mapping[str, Any], low: Any, high: Any) -> bool:
    """plan.py's interval semantics: the value [gte, lte] against the query [low, high]."""
    gte, lte = value.get("gte"), value.get("lte")
    if gte is None or lte is None:
        return False
    eq = gte >= low and lte <= high
    checks = {
        "eq": eq,
        "ne": gte < low or lte > high,
        "gt": lte > high,
        "lt": gte < low,
        "ge": lte > high or eq,
        "le": gte < low or eq,
        "sa": gte > high,
        "eb": lte < low,
        "ap": gte <= high and lte >= low,
    }
    if prefix not in checks:
        raise ValueError(f"unknown prefix {prefix!r}")
    return bool(checks[prefix])


def _reference_matches(predicate: RefMatch, value: Mapping[str, Any]) -> bool:
    if predicate.identifier:
        return predicate.ref in (value.get("identifier") or [])
    if predicate.type is not None and value.get("type") != predicate.type:
        return False
    ref = predicate.ref
    if ":" in ref.split("/", 1)[0]:  # an absolute URL, urn or canonical
        url, _, version = ref.partition("|")
        return value.get("url") == url and (not version or value.get("version") == version)
    segments = ref.split("/")
    if len(segments) == 4 and segments[2] == "_history":
        return bool(
            value.get("ref") == f"{segments[0]}/{segments[1]}"
            and value.get("version") == segments[3]
        )
    if len(segments) == 1:  # a bare id: any target type unless `:Type` says which
        return bool(value.get("id") == ref)
    return bool(value.get("ref") == ref)
