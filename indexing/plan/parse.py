"""Search URL -> `SearchPlan` (R4 search.html), pure: no I/O, no engine.

`parse_search` reads the decoded query pairs of `GET [base]/[type]?...` (or a system search,
`resource_type=None`) in order. Criteria become `Clause`s (comma = OR inside one clause, a
repeated parameter = another clause, ANDed); result parameters (`_sort`, `_count`, `_include`,
...) fill the plan's other fields. What each predicate means is specified in
`indexing/plan/plan.py`.

Supported: every parameter type but `special`; modifiers `:missing` (all), `:exact`/`:contains`
(string), `:text`/`:not`/`:of-type` (token), `:[type]`/`:identifier` (reference), `:above`/
`:below` (uri); all nine prefixes on date, number (exponent notation too) and quantity; chains
(`:[type]`, or over every target type that defines the chained parameter; nested),
`_has` (nested), `_id`, `_lastUpdated`, `_tag`, `_profile`, `_security`, `_source`; `_sort`,
`_count`, `_total`, `_include`/`_revinclude` (`:iterate`), `_summary`, `_elements`, `_type`.
Not supported (unknown in strict mode): token `:in`/`:not-in`/`:above`/`:below` (they need a
terminology server), `special` parameters (`near`), `_text`/`_content`/`_query`/`_list`/
`_contained`/`_filter`.

Errors: a malformed value is always `InvalidSearch(400, "invalid")`. An unknown parameter or an
unsupported modifier is `InvalidSearch(400, "not-supported")` when `strict`
(`Prefer: handling=strict`), else left out of the plan and of `self_params`, as R4
§3.1.1.3 allows ("handling=lenient", the default).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import cast, get_args

from indexing._fhirpath import RESOURCE_TYPES
from indexing.plan._predicates import leaf_predicates, reference_targets
from indexing.plan._syntax import Unsupported, invalid
from indexing.plan.errors import InvalidSearch
from indexing.plan.plan import (
    Chain,
    Clause,
    Has,
    Include,
    Predicate,
    SearchPlan,
    SortKey,
    Summary,
    Total,
)
from indexing.registry import SearchParam, SearchParamRegistry

__all__ = ["InvalidSearch", "parse_search"]

# The Ontario MI IG writes `patient.birthDate`; R4 codes are case-sensitive and Patient's is
# `birthdate`. Accept the IG's spelling as an alias so its documented searches work; self links
# carry the R4 code.
_ALIASES = {"birthDate": "birthdate"}

# Not search criteria (R4 §3.1.1.1 / http.html): the HTTP layer reads them, the plan ignores them.
_IGNORED = frozenset({"_format", "_pretty"})
_ONCE = frozenset({"_sort", "_count", "_total", "_summary", "_elements", "_type"})
_SORT_BOOKKEEPING = frozenset({"_id", "_lastUpdated"})
_ELEMENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*(?:\[x\])?")
_COUNT = re.compile(r"\d{1,9}")


def parse_search(
    registry: SearchParamRegistry,
    resource_type: str | None,
    query: Sequence[tuple[str, str]],
    *,
    strict: bool = False,
    default_count: int = 20,
    max_count: int = 1000,
) -> SearchPlan:
    """The plan of one search. `query` is the decoded `(name, value)` pairs in request order
    (repeats kept). `resource_type` None is a system search (`GET [base]?_type=...`).

    Raises InvalidSearch (see the module docstring)."""
    if resource_type is not None and resource_type not in RESOURCE_TYPES:
        raise InvalidSearch(f"{resource_type!r} is not a FHIR R4 resource type")
    return _Parser(registry, resource_type, strict, default_count, max_count).parse(query)


class _Parser:
    def __init__(
        self,
        registry: SearchParamRegistry,
        resource_type: str | None,
        strict: bool,
        default_count: int,
        max_count: int,
    ) -> None:
        self.registry = registry
        self.resource_type = resource_type
        self.strict = strict
        self.max_count = max_count
        self.types: tuple[str, ...] = (resource_type,) if resource_type else ()
        self.clauses: list[Clause] = []
        self.sort: tuple[SortKey, ...] = ()
        self.count = min(default_count, max_count)
        self.total: Total = "none"
        self.includes: list[Include] = []
        self.summary: Summary | None = None
        self.elements: tuple[str, ...] = ()
        self.self_params: list[tuple[str, str]] = []
        self.seen: set[str] = set()
        self.chained: dict[
            tuple[str, str, str, str], tuple[str, tuple[Predicate, ...]] | Unsupported
        ] = {}

    def parse(self, query: Sequence[tuple[str, str]]) -> SearchPlan:
        if self.resource_type is None:
            # `_type` first: every other parameter is looked up on the types it names.
            for key, value in query:
                if key == "_type":
                    self.types = self._types(value)
        for key, value in query:
            try:
                self._parameter(key, value)
            except Unsupported as error:
                if self.strict:
                    raise InvalidSearch(
                        error.diagnostics, code="not-supported", expression=(key,)
                    ) from None
        return SearchPlan(
            types=self.types,
            clauses=tuple(self.clauses),
            sort=self.sort,
            count=self.count,
            total=self.total,
            includes=tuple(self.includes),
            summary=self.summary,
            elements=self.elements,
            self_params=tuple(self.self_params),
        )

    # -- dispatch --------------------------------------------------------------------------

    def _parameter(self, key: str, value: str) -> None:
        name, _, modifier = key.partition(":")
        if name in _IGNORED:
            return
        if name in _ONCE:
            if modifier:
                raise Unsupported(f"{key}: {name} takes no modifier")
            if name in self.seen:
                raise invalid(key, f"{name} may appear only once")
            self.seen.add(name)
            if value == "":
                raise invalid(key, "empty value")
            self._result_parameter(name, value)
            return
        if name in ("_include", "_revinclude"):
            self._include(name, modifier, value, key)
            return
        canonical, predicates = self._criterion(self.types, key, value, key)
        self.clauses.append(Clause(tuple(predicates)))
        self.self_params.append((canonical, value))

    def _result_parameter(self, name: str, value: str) -> None:
        if name == "_type":
            if self.resource_type is not None:
                raise Unsupported("_type: only a system search (GET [base]?_type=) takes _type")
            self.self_params.append(("_type", ",".join(self.types)))
        elif name == "_sort":
            self._sort(value)
        elif name == "_count":
            if not _COUNT.fullmatch(value):
                raise invalid("_count", f"{value!r} is not a non-negative integer")
            self.count = min(int(value), self.max_count)
            self.self_params.append(("_count", str(self.count)))
        elif name == "_total":
            if value not in get_args(Total):
                raise invalid("_total", f"{value!r} is not none, estimate or accurate")
            self.total = cast(Total, value)
            self.self_params.append(("_total", value))
        elif name == "_summary":
            if value not in get_args(Summary):
                raise invalid("_summary", f"{value!r} is not true, false, text, data or count")
            self.summary = cast(Summary, value)
            self.self_params.append(("_summary", value))
        else:  # _elements
            elements = tuple(value.split(","))
            bad = [element for element in elements if not _ELEMENT.fullmatch(element)]
            if bad:
                raise invalid("_elements", f"{bad[0]!r} is not an element name")
            self.elements = elements
            self.self_params.append(("_elements", value))

    # -- criteria --------------------------------------------------------------------------

    def _criterion(
        self, types: tuple[str, ...], key: str, raw: str, where: str
    ) -> tuple[str, list[Predicate]]:
        """The canonical key and the OR-alternatives of one criterion on `types`."""
        if key.startswith("_has:") or key == "_has":
            return self._has(types, key, raw, where)
        head, dot, tail = key.partition(".")
        code, colon, modifier_text = head.partition(":")
        modifier = modifier_text if colon else None
        if modifier == "":
            raise invalid(where, f"{key!r} has an empty modifier")
        param = self._lookup(types, code, where)
        canonical = param.code + (f":{modifier}" if modifier is not None else "")
        if dot:
            return self._chain(types, param, modifier, canonical, tail, raw, where)
        if not param.expression.strip():
            raise Unsupported(f"{where}: parameter {code!r} is not supported (nothing indexes it)")
        single = types[0] if len(types) == 1 else None
        return canonical, leaf_predicates(self.registry, single, param, modifier, raw, where)

    def _lookup(self, types: tuple[str, ...], code: str, where: str) -> SearchParam:
        """The parameter `code` on every type in `types` (none: the parameters of all types)."""
        found: list[SearchParam] = []
        for resource_type in types or ("Resource",):
            param = self.registry.get(resource_type, code)
            if param is None and code in _ALIASES:
                param = self.registry.get(resource_type, _ALIASES[code])
            if param is None:
                raise Unsupported(f"{where}: unknown search parameter {code!r} on {resource_type}")
            found.append(param)
        if len({param.type for param in found}) > 1:
            raise Unsupported(f"{where}: {code!r} has a different type on {', '.join(types)}")
        return found[0]

    def _knows(self, resource_type: str, code: str) -> bool:
        try:
            self._lookup((resource_type,), code, code)
        except Unsupported:
            return False
        return True

    def _chain(
        self,
        types: tuple[str, ...],
        param: SearchParam,
        modifier: str | None,
        canonical: str,
        tail: str,
        raw: str,
        where: str,
    ) -> tuple[str, list[Predicate]]:
        """`param[:Type].tail` (R4 §3.1.1.6.4 chained parameters) -> Chain(param, targets, ...).

        Without `:Type`, the chain runs over every target type of `param` that defines what
        `tail` names (an OR across them, as clients expect of `subject.identifier`). Targets whose
        criterion parses alike share one Chain, so one sub-search serves them."""
        if param.type != "reference":
            raise invalid(
                where, f"{param.code!r} is a {param.type} parameter; only references can be chained"
            )
        if modifier is not None and modifier not in RESOURCE_TYPES:
            raise invalid(where, f":{modifier} cannot precede a chain; only :[type] can")
        targets = self._targets(types, param)
        if modifier is not None:
            if targets and modifier not in targets:
                raise invalid(where, f"{modifier} is not a target of {param.code!r}")
            inner_key, inner = self._on_type(modifier, tail, raw, where)
            return f"{canonical}.{inner_key}", [Chain(param.code, (modifier,), Clause(inner))]
        considered = targets or tuple(sorted(RESOURCE_TYPES))
        # `_has` is resolved against the one type it points at (app/interactions/_chains.py), so
        # a `_has` criterion is never shared between targets.
        alone = tail.startswith("_has")
        shared: dict[tuple[Clause, str | None], list[str]] = {}
        keys: list[str] = []
        refused: list[Unsupported] = []
        for target in considered:
            if not self._defines(target, tail):
                continue
            try:
                inner_key, inner = self._on_type(target, tail, raw, where)
            except Unsupported as error:  # defined here, but something further down is not
                refused.append(error)
                continue
            keys.append(inner_key)
            shared.setdefault((Clause(inner), target if alone else None), []).append(target)
        if not shared:
            if refused:
                raise refused[0]
            inner_code = tail.partition(".")[0].partition(":")[0]
            raise Unsupported(
                f"{where}: no target type of {param.code!r} ({', '.join(considered)}) has a"
                f" parameter {inner_code!r}"
            )
        chains: list[Predicate] = [
            Chain(param.code, tuple(group), clause) for (clause, _), group in shared.items()
        ]
        return f"{canonical}.{keys[0]}", chains

    def _targets(self, types: tuple[str, ...], param: SearchParam) -> tuple[str, ...]:
        """The types `param` can point at from `types` (each type's own definition of it)."""
        if len(types) < 2:
            return reference_targets(param, types[0] if types else None)
        found: dict[str, None] = {}
        for resource_type in types:
            own = self.registry.get(resource_type, param.code) or param
            found.update(dict.fromkeys(reference_targets(own, resource_type)))
        return tuple(found)

    def _defines(self, resource_type: str, tail: str) -> bool:
        """Whether `resource_type` has what a chain's `tail` names: its first parameter, or for
        `_has:Source:param:...` a reference from Source that can point at `resource_type`."""
        if not tail.startswith("_has"):
            return self._knows(resource_type, tail.partition(".")[0].partition(":")[0])
        pieces = tail.split(":", 3)
        ref = self.registry.get(pieces[1], pieces[2]) if len(pieces) == 4 else None
        if ref is None or ref.type != "reference":
            return True  # malformed or unknown: parsing it says why
        targets = reference_targets(ref, pieces[1])
        return not targets or resource_type in targets

    def _on_type(
        self, resource_type: str, tail: str, raw: str, where: str
    ) -> tuple[str, tuple[Predicate, ...]]:
        """`tail` parsed on one type, once per criterion: a chain through several types reaches
        the same (type, tail) again and again, and would otherwise cost their product."""
        key = (resource_type, tail, raw, where)
        if key not in self.chained:
            try:
                inner_key, inner = self._criterion((resource_type,), tail, raw, where)
                self.chained[key] = (inner_key, tuple(inner))
            except Unsupported as error:
                self.chained[key] = error
        found = self.chained[key]
        if isinstance(found, Unsupported):
            raise found
        return found

    def _has(
        self, types: tuple[str, ...], key: str, raw: str, where: str
    ) -> tuple[str, list[Predicate]]:
        """`_has:Source:param:criterion` (R4 §3.1.1.6.5 reverse chaining) -> Has(...)."""
        pieces = key.split(":", 3)
        if len(pieces) != 4 or not all(pieces):
            raise invalid(where, "_has takes _has:[type]:[reference parameter]:[criterion]")
        _, source, ref_code, inner_key = pieces
        if source not in RESOURCE_TYPES:
            raise invalid(where, f"{source!r} is not a resource type")
        ref = self._lookup((source,), ref_code, where)
        if ref.type != "reference":
            raise invalid(where, f"{source}.{ref.code} is not a reference parameter")
        targets = reference_targets(ref, source)
        if types and targets and not set(types) & set(targets):
            raise invalid(where, f"{source}.{ref.code} cannot refer to {', '.join(types)}")
        inner_canonical, inner = self._criterion((source,), inner_key, raw, where)
        return (
            f"_has:{source}:{ref.code}:{inner_canonical}",
            [Has(source, ref.code, Clause(tuple(inner)))],
        )

    # -- result parameters -----------------------------------------------------------------

    def _types(self, value: str) -> tuple[str, ...]:
        types = tuple(value.split(","))
        unknown = [t for t in types if t not in RESOURCE_TYPES]
        if not value or unknown:
            raise invalid("_type", f"{(unknown or [value])[0]!r} is not a resource type")
        return tuple(dict.fromkeys(types))

    def _sort(self, value: str) -> None:
        """`_sort=a,-b` (R4 §3.1.1.7.1): unknown keys are dropped (lenient) or rejected."""
        keys: list[SortKey] = []
        written: list[str] = []
        for item in value.split(","):
            descending = item.startswith("-")
            code = item[1:] if descending else item
            if not code:
                raise invalid("_sort", f"{value!r} has an empty sort key")
            try:
                code = self._sort_code(code)
            except Unsupported as error:
                if self.strict:
                    raise
                del error
                continue
            keys.append(SortKey(code, descending))
            written.append(("-" if descending else "") + code)
        self.sort = tuple(keys)
        if keys:
            self.self_params.append(("_sort", ",".join(written)))

    def _sort_code(self, code: str) -> str:
        if code in _SORT_BOOKKEEPING:
            return code
        param = self._lookup(self.types, code, "_sort")
        if param.type in ("composite", "special") or not param.expression.strip():
            raise Unsupported(f"_sort: cannot sort by {param.type} parameter {code!r}")
        return param.code

    def _include(self, name: str, modifier: str, value: str, key: str) -> None:
        """`_include=Source:param[:Target]`, `_revinclude=...`, `:iterate` (R4 §3.1.1.7.4)."""
        if modifier not in ("", "iterate", "recurse"):  # `recurse`: R3's name for iterate
            raise Unsupported(f"{key}: modifier :{modifier} is not supported")
        iterate = bool(modifier)
        reverse = name == "_revinclude"
        canonical_key = f"{name}:iterate" if iterate else name
        if value == "*" and not reverse:
            source = self.types[0] if len(self.types) == 1 else "*"
            self.includes.append(Include(source, "*", iterate=iterate))
            self.self_params.append((canonical_key, "*"))
            return
        if value == "*":
            raise Unsupported(f"{key}: _revinclude=* is not supported; name Source:parameter")
        pieces = value.split(":")
        if len(pieces) not in (2, 3) or not all(pieces):
            raise invalid(key, f"{value!r} is not [type]:[parameter] or [type]:[parameter]:[type]")
        source, code, target = pieces[0], pieces[1], pieces[2] if len(pieces) == 3 else None
        for named in (source, target):
            if named is not None and named not in RESOURCE_TYPES:
                raise invalid(key, f"{named!r} is not a resource type")
        if not reverse and not iterate and self.types and source not in self.types:
            raise Unsupported(f"{key}: {source} is not the searched type; use {name}:iterate")
        if code != "*":
            param = self._lookup((source,), code, key)
            if param.type != "reference":
                raise invalid(key, f"{source}.{param.code} is not a reference parameter")
            targets = reference_targets(param, source)
            if target is not None and targets and target not in targets:
                raise invalid(key, f"{target} is not a target of {source}.{param.code}")
            reaches = not targets or bool(set(targets) & set(self.types))
            if reverse and not iterate and self.types and not reaches:
                raise Unsupported(
                    f"{key}: {source}.{param.code} cannot refer to {', '.join(self.types)}"
                )
            code = param.code
        self.includes.append(Include(source, code, target, reverse=reverse, iterate=iterate))
        written = f"{source}:{code}" + (f":{target}" if target else "")
        self.self_params.append((canonical_key, written))
