"""A resolved `SearchPlan` as SQL over the index tables (indexing/engines/sqlite/schema.py). Pure.

Every value is bound as a parameter; only table and column names, chosen here, enter the text. A
parameter is matched by its numbers (`pid`) for the searched types (all types when none is
named), given as `names`: parameter -> resource type -> pid; a parameter no resource of those
types has a value of gets no number, and its value conditions match nothing.

- The most selective clause by kind (an id, a reference, `system|code`, ... a date last; never a
  negation or `:missing`) drives: its predicates select `doc` keys from their value
  tables and the resource matches when its `doc` is IN that set. Every other predicate probes the
  resource's own values (EXISTS over the per-resource index; NOT EXISTS for `:not`, so a
  resource without values satisfies it; `ne` is a condition on each value like the other
  prefixes, so it needs a value). A clause ORs its predicates, the plan ANDs its clauses;
  tombstones never match.
- Composite parts are joined on `(doc, grp)`: they must hold within one composite value.
- Sort: each key is a per-resource value computed by a correlated subquery (ascending: the
  smallest value, descending: the largest; dates: interval start ascending, end descending;
  strings `norm`, tokens `code`, references `ref`, numbers and quantities `value`, uris `uri`;
  `_id` and `_lastUpdated` from the bookkeeping row), missing values last, then `(type, id)`
  ascending as the unique tie-breaker. Without sort keys the order is `(type, id)` ascending:
  a unique index, so the cheapest stable order.
- Paging is keyset: `after` is the previous page's last cursor `[key values..., type, id]` and
  the next page starts strictly after it in that order, so pages never repeat or skip a resource
  whose sort values did not change in between.
- `ap` (approximately): the query range is widened by `indexing/plan/approximate.py` (shared with
  the Elasticsearch compiler), then any value intersecting it matches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from indexing._fhirpath import RESOURCE_TYPES
from indexing.engines.sqlite._rows import COMPONENT_SEPARATOR
from indexing.engines.sqlite.schema import (
    DATE,
    NUMBER,
    OF_TYPE,
    PARAM,
    REF_IDENTIFIER,
    REFERENCE,
    RESOURCE,
    STRING,
    TOKEN,
    TOKEN_TEXT,
    URI,
)
from indexing.plan._syntax import split_unescaped, unescape
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

__all__ = ["Names", "compile_count", "compile_query"]

# Greater than any character a normalised string can continue with: `norm >= v AND norm < v+MAX`
# is "starts with v" and can use the (param, norm) index, unlike LIKE (case-insensitive, escapes).
_MAX_CHAR = "\U0010ffff"

# Per-resource sort value: (table, ascending aggregate, descending aggregate).
_SORT_SOURCES: dict[str, tuple[str, str, str]] = {
    "date": (DATE, "MIN(v.gte)", "MAX(v.lte)"),
    "string": (STRING, "MIN(v.norm)", "MAX(v.norm)"),
    "token": (TOKEN, "MIN(v.code)", "MAX(v.code)"),
    "reference": (REFERENCE, "MIN(v.ref)", "MAX(v.ref)"),
    "number": (NUMBER, "MIN(v.value)", "MAX(v.value)"),
    "quantity": (NUMBER, "MIN(v.value)", "MAX(v.value)"),
    "uri": (URI, "MIN(v.uri)", "MAX(v.uri)"),
}

Params = list[Any]
Names = Mapping[str, Mapping[str, int]]  # parameter -> resource type -> pid


def compile_query(
    plan: SearchPlan,
    registry: SearchParamRegistry,
    names: Names,
    after: Sequence[Any] | None = None,
    limit: int | None = None,
    now: datetime | None = None,
) -> tuple[str, Params]:
    """`(sql, params)` selecting `type, id, version, k0..kn` of one page (limit: plan.count)
    after the cursor `after`. Raises ValueError on an unresolved Chain/Has, an unknown sort
    parameter or a cursor of the wrong length."""
    params: Params = []
    scope = _Scope(names, plan.types, registry)
    keys = [_sort_expression(key, scope, params) for key in plan.sort]
    columns = "".join(f", {expression} AS k{n}" for n, expression in enumerate(keys))
    where = _where(plan, scope, params, now or datetime.now(UTC))
    inner = f"SELECT r.type AS t, r.id AS i, r.version AS ver{columns} FROM {RESOURCE} r {where}"
    sql = f"SELECT * FROM ({inner})"
    if after is not None:
        if len(after) != len(keys) + 2:
            raise ValueError(f"cursor {after!r} does not fit {len(keys)} sort key(s)")
        sql += " WHERE " + _after(plan.sort, list(after), 0, params)
    order = [
        f"k{n} IS NULL, k{n}{' DESC' if key.descending else ''}" for n, key in enumerate(plan.sort)
    ]
    sql += f" ORDER BY {', '.join([*order, 't', 'i'])} LIMIT ?"
    params.append(plan.count if limit is None else limit)
    return sql, params


def compile_count(
    plan: SearchPlan, registry: SearchParamRegistry, names: Names, now: datetime | None = None
) -> tuple[str, Params]:
    """`(sql, params)` counting every match of the plan (sort and paging ignored)."""
    params: Params = []
    where = _where(plan, _Scope(names, plan.types, registry), params, now or datetime.now(UTC))
    return f"SELECT COUNT(*) FROM {RESOURCE} r {where}", params


# -- filter -----------------------------------------------------------------------------------


def _where(plan: SearchPlan, scope: _Scope, params: Params, now: datetime) -> str:
    conditions = ["r.deleted = 0"]
    driver = _driving_clause(plan.clauses)
    if plan.types:
        # A driving value clause selects documents of these types already (by their parameter
        # numbers); `+` keeps the planner from scanning the types' rows instead of looking up
        # the driver's documents by key.
        unary = "+" if driver is not None and not _names_ids(driver) else ""
        conditions.append(f"{unary}r.type IN ({_marks(plan.types)})")
        params.extend(plan.types)
    for clause in sorted(plan.clauses, key=lambda c: c is not driver):
        conditions.append(_clause(clause, scope, params, now, drives=clause is driver))
    return "WHERE " + " AND ".join(conditions)


def _driving_clause(clauses: Sequence[Clause]) -> Clause | None:
    """The clause whose matches are enumerated first: the most selective by kind (see
    `_selectivity_rank`), if any can drive. The planner has no statistics on values, so without
    this a broad predicate (every report since 2015) may be materialised whole before the
    selective one (this patient's reports) narrows it."""
    ranked = [(rank, n) for n, c in enumerate(clauses) if (rank := _clause_rank(c)) is not None]
    return clauses[min(ranked)[1]] if ranked else None


def _names_ids(clause: Clause) -> bool:
    return any(
        isinstance(p, IdIn) or (isinstance(p, TokenMatch) and p.param == "_id")
        for p in clause.any_of
    )


def _clause_rank(clause: Clause) -> int | None:
    ranks = [_selectivity_rank(p) for p in clause.any_of]
    if not ranks or None in ranks:
        return None
    return max(r for r in ranks if r is not None)


def _selectivity_rank(predicate: Predicate) -> int | None:
    """How few resources a predicate is expected to match, by its kind alone (0: fewest);
    None for predicates that cannot drive a search (negations, `:missing`: they match by the
    absence of values)."""
    if isinstance(predicate, IdIn):
        return None if predicate.negate else 0
    if isinstance(predicate, RefIn | RefMatch):
        return 1
    if isinstance(predicate, TokenMatch):
        if predicate.negate:
            return None
        if predicate.text:
            return 5
        # `system|code` names one thing (an identifier, a coded concept); a bare code (a status,
        # a gender) is often shared by a large part of a type
        system, bar, code = predicate.form.partition("|")
        return 2 if system and bar and code else 3
    if isinstance(predicate, StringMatch):
        return 5 if predicate.mode == "contains" else 3
    if isinstance(predicate, UriMatch):
        return 2 if predicate.mode == "exact" else 5
    if isinstance(predicate, CompositeMatch | NumberMatch):
        return 4
    if isinstance(predicate, DateMatch):
        return 6
    return None


def _clause(clause: Clause, scope: _Scope, params: Params, now: datetime, drives: bool) -> str:
    if not clause.any_of:
        return "0"
    parts = [_predicate(p, scope, params, now, drives) for p in clause.any_of]
    return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"


def _predicate(
    predicate: Predicate, scope: _Scope, params: Params, now: datetime, drives: bool
) -> str:
    """The predicate as a condition on `r`. The driving clause's predicates select a set of
    `doc` (the planner enumerates it through the value index, then looks `r` up by key);
    the others probe the current row's own values through the per-resource index, so a broad
    predicate costs one lookup per candidate instead of a scan of all its matches."""
    if isinstance(predicate, Chain | Has):
        raise ValueError(
            f"{type(predicate).__name__} must be resolved to RefIn/IdIn before compiling"
        )
    if isinstance(predicate, IdIn):
        if not predicate.ids:
            return "1" if predicate.negate else "0"
        params.extend(predicate.ids)
        return f"r.id {'NOT IN' if predicate.negate else 'IN'} ({_marks(predicate.ids)})"
    if isinstance(predicate, TokenMatch) and predicate.param == "_id" and not predicate.text:
        return _id_condition(predicate, params)
    if isinstance(predicate, Missing):
        return (
            f"{'NOT ' if predicate.missing else ''}EXISTS (SELECT 1 FROM {PARAM} p"
            f" WHERE p.doc = r.doc AND {scope.condition('p', predicate.param, params)})"
        )
    if isinstance(predicate, CompositeMatch):
        source, condition = _composite(predicate, scope, params, now)
        alias, negate = "v0", False
    else:
        negate = _negated(predicate)
        table, condition, values = _value_condition(predicate, "v", scope, now)
        source, alias = f"{table} v", "v"
        condition = f"{scope.condition('v', predicate.param, params)} AND {condition}"
        params.extend(values)
    if drives and not negate:
        return f"r.doc IN (SELECT {alias}.doc FROM {source} WHERE {condition})"
    return (
        f"{'NOT ' if negate else ''}EXISTS (SELECT 1 FROM {source}"
        f" WHERE {alias}.doc = r.doc AND {condition})"
    )


def _id_condition(predicate: TokenMatch, params: Params) -> str:
    """`_id` as a token (the planner sends IdIn; an index plan may say it so): the id is the
    resource's own, it has no token rows (_rows.py), and no system."""
    parts = split_unescaped(predicate.form, "|")
    if predicate.of_type or (len(parts) > 1 and parts[0]):
        condition = "0"
    else:
        params.append(unescape(parts[-1]))
        condition = "r.id = ?"
    return f"NOT ({condition})" if predicate.negate else condition


def _composite(
    predicate: CompositeMatch, scope: _Scope, params: Params, now: datetime
) -> tuple[str, str]:
    """(joined value tables, condition; its parameters appended to `params`): every part
    within one composite value (parts joined on `(doc, grp)`)."""
    if not predicate.parts:
        raise ValueError(f"composite {predicate.param!r} has no parts")
    joins: list[str] = []
    conditions: list[str] = []
    for n, part in enumerate(predicate.parts):
        if isinstance(part, IdIn | Missing | CompositeMatch | RefIn | Chain | Has):
            raise ValueError(f"{type(part).__name__} cannot be a composite part")
        if _negated(part):
            raise ValueError("a composite part cannot be negated")
        alias = f"v{n}"
        table, condition, part_values = _value_condition(part, alias, scope, now)
        if n == 0:
            joins.append(f"{table} {alias}")
        else:
            joins.append(f"JOIN {table} {alias} ON {alias}.doc = v0.doc AND {alias}.grp = v0.grp")
        name = f"{predicate.param}{COMPONENT_SEPARATOR}{part.param}"
        conditions.append(f"{scope.condition(alias, name, params)} AND {condition}")
        params.extend(part_values)
    return " ".join(joins), " AND ".join(conditions) + " AND v0.grp > 0"


def _negated(predicate: Predicate) -> bool:
    return isinstance(predicate, TokenMatch) and predicate.negate


def _value_condition(
    predicate: Predicate, v: str, scope: _Scope, now: datetime
) -> tuple[str, str, Params]:
    """(table, condition on alias `v`, its parameters) for the positive form of a predicate."""
    if isinstance(predicate, StringMatch):
        if predicate.mode == "exact":
            return STRING, f"{v}.exact = ?", [predicate.value]
        if predicate.mode == "contains":
            return STRING, f"instr({v}.norm, ?) > 0", [predicate.value]
        return (
            STRING,
            f"{v}.norm >= ? AND {v}.norm < ?",
            [
                predicate.value,
                predicate.value + _MAX_CHAR,
            ],
        )
    if isinstance(predicate, TokenMatch):
        if predicate.text:
            return (
                TOKEN_TEXT,
                f"{v}.text >= ? AND {v}.text < ?",
                [
                    predicate.form,
                    predicate.form + _MAX_CHAR,
                ],
            )
        if predicate.of_type:
            return OF_TYPE, f"{v}.form = ?", [predicate.form]
        return _token_condition(predicate.form, v)
    if isinstance(predicate, DateMatch):
        low, high = predicate.gte, predicate.lte
        if predicate.prefix == "ap":
            low, high = approximate_date_range(low, high, now)
        condition, values = _range_condition(predicate.prefix, v, low, high)
        return DATE, condition, values
    if isinstance(predicate, NumberMatch):
        low_n, high_n = predicate.gte, predicate.lte
        if predicate.prefix == "ap":
            low_n, high_n = approximate_number_range(predicate.value, low_n, high_n)
        condition, values = _range_condition(predicate.prefix, v, low_n, high_n)
        if predicate.system is not None:
            condition += f" AND {v}.system = ?"
            values.append(predicate.system)
        if predicate.code is not None:
            if predicate.system is not None:
                condition += f" AND {v}.code = ?"
                values.append(predicate.code)
            else:  # `5.4||mg`: the code or the unit (R4 search.html quantity)
                condition += f" AND ({v}.code = ? OR {v}.unit = ?)"
                values.extend([predicate.code, predicate.code])
        return NUMBER, condition, values
    if isinstance(predicate, RefMatch):
        return _reference_condition(predicate, v, scope)
    if isinstance(predicate, RefIn):
        if not predicate.refs:
            return REFERENCE, "0", []
        return REFERENCE, f"{v}.ref IN ({_marks(predicate.refs)})", list(predicate.refs)
    if isinstance(predicate, UriMatch):
        if predicate.mode == "below":
            return (
                URI,
                f"{v}.uri >= ? AND {v}.uri < ?",
                [
                    predicate.value,
                    predicate.value + _MAX_CHAR,
                ],
            )
        if predicate.mode == "above":
            return (
                URI,
                f"{v}.uri <= ? AND substr(?, 1, length({v}.uri)) = {v}.uri",
                [
                    predicate.value,
                    predicate.value,
                ],
            )
        return URI, f"{v}.uri = ?", [predicate.value]
    raise ValueError(f"cannot compile {type(predicate).__name__}")


def _token_condition(form: str, v: str) -> tuple[str, str, Params]:
    """A token query form (escaped as in the query) as conditions on a value's columns:
    `code`, `system|code`, `|code` (no system) or `system|` (any code of it)."""
    parts = split_unescaped(form, "|")
    if len(parts) == 1:
        return TOKEN, f"{v}.code = ?", [unescape(form)]
    system, code = unescape(parts[0]), unescape("|".join(parts[1:]))
    if not code:
        return TOKEN, f"{v}.system = ?", [system]
    return TOKEN, f"{v}.code = ? AND {v}.system = ?", [code, system]


def _range_condition(prefix: str, v: str, low: Any, high: Any) -> tuple[str, Params]:
    """Interval semantics of plan.py: value [gte, lte] against the query [low, high]."""
    eq = (f"({v}.gte >= ? AND {v}.lte <= ?)", [low, high])
    if prefix == "eq":
        return eq[0], list(eq[1])
    if prefix == "ne":  # this value is not eq: it starts before the query or ends after it
        return f"({v}.gte < ? OR {v}.lte > ?)", [low, high]
    if prefix == "gt":
        return f"{v}.lte > ?", [high]
    if prefix == "lt":
        return f"{v}.gte < ?", [low]
    if prefix == "ge":
        return f"({v}.lte > ? OR {eq[0]})", [high, *eq[1]]
    if prefix == "le":
        return f"({v}.gte < ? OR {eq[0]})", [low, *eq[1]]
    if prefix == "sa":
        return f"{v}.gte > ?", [high]
    if prefix == "eb":
        return f"{v}.lte < ?", [low]
    if prefix == "ap":
        return f"({v}.gte <= ? AND {v}.lte >= ?)", [high, low]
    raise ValueError(f"unknown prefix {prefix!r}")


def _reference_condition(predicate: RefMatch, v: str, scope: _Scope) -> tuple[str, str, Params]:
    if predicate.identifier:
        return REF_IDENTIFIER, f"{v}.form = ?", [predicate.ref]
    ref = predicate.ref
    conditions: list[str] = []
    values: Params = []
    if ":" in ref.split("/", 1)[0]:  # absolute URL, urn or canonical (`scheme:` before any /)
        url, _, version = ref.partition("|")
        conditions.append(f"{v}.url = ?")
        values.append(url)
        if version:
            conditions.append(f"{v}.version = ?")
            values.append(version)
    else:
        segments = ref.split("/")
        if len(segments) == 4 and segments[2] == "_history":
            conditions.append(f"{v}.ref = ? AND {v}.version = ?")
            values.extend([f"{segments[0]}/{segments[1]}", segments[3]])
        elif len(segments) == 1:  # a bare id: any target type unless `:Type` says which
            targets = [predicate.type] if predicate.type else scope.targets(predicate.param)
            conditions.append(f"{v}.ref IN ({_marks(targets)})")
            values.extend(f"{target}/{ref}" for target in targets)
        else:
            conditions.append(f"{v}.ref = ?")
            values.append(ref)
    if predicate.type is not None:
        conditions.append(f"{v}.target_type = ?")
        values.append(predicate.type)
    return REFERENCE, " AND ".join(conditions), values


# -- sort and paging ----------------------------------------------------------------------------


def _sort_expression(key: SortKey, scope: _Scope, params: Params) -> str:
    if key.param == "_id":
        return "r.id"
    if key.param == "_lastUpdated":
        return "r.last_updated"
    kind = scope.param_type(key.param)
    source = _SORT_SOURCES.get(kind or "")
    if source is None:
        raise ValueError(f"cannot sort by {key.param!r} (type {kind or 'unknown'})")
    table, ascending, descending = source
    aggregate = descending if key.descending else ascending
    # INDEXED BY: without statistics the planner prefers the (pid, lte) index for MAX(lte),
    # a scan of every value of the parameter per row; the per-resource index is a point lookup.
    condition = scope.condition("v", key.param, params)
    return (
        f"(SELECT {aggregate} FROM {table} v INDEXED BY {table}_by_resource"
        f" WHERE v.doc = r.doc AND {condition})"
    )


def _after(keys: Sequence[SortKey], cursor: list[Any], n: int, params: Params) -> str:
    """Rows strictly after `cursor` in ORDER BY order (keys, nulls last; then type, id)."""
    if n == len(keys):
        params.extend(cursor[n : n + 2])
        return "(t, i) > (?, ?)"
    column, value = f"k{n}", cursor[n]
    if value is None:  # among the missing values, which sort last: only the tie-breaker is left
        return f"({column} IS NULL AND {_after(keys, cursor, n + 1, params)})"
    params.extend([value, value])
    operator = "<" if keys[n].descending else ">"
    tail = _after(keys, cursor, n + 1, params)
    return f"({column} {operator} ? OR {column} IS NULL OR ({column} = ? AND {tail}))"


class _Scope:
    """What the searched types (every type when none is named) give a predicate: the numbers
    of a parameter, and the types it may reference."""

    def __init__(self, names: Names, types: Sequence[str], registry: SearchParamRegistry) -> None:
        self._names = names
        self._types = types
        self._registry = registry

    def condition(self, alias: str, param: str, params: Params) -> str:
        """`<alias>.pid IN (...)` for `param`, its numbers appended to `params`; a parameter
        without numbers has no values: `IN ()` is false."""
        by_type = self._names.get(param, {})
        if self._types:
            pids = [by_type[t] for t in self._types if t in by_type]
        else:
            pids = sorted(by_type.values())
        params.extend(pids)
        if len(pids) == 1:
            return f"{alias}.pid = ?"
        return f"{alias}.pid IN ({_marks(pids)})"

    def param_type(self, code: str) -> str | None:
        """The type of parameter `code` on the first searched type that defines it."""
        for resource_type in self._types or sorted(RESOURCE_TYPES):
            param = self._registry.get(resource_type, code)
            if param is not None:
                return param.type
        return None

    def targets(self, param: str) -> list[str]:
        """The types reference parameter `param` may point to (a bare id is any of them);
        every type when a definition names none."""
        targets: set[str] = set()
        for resource_type in self._types or sorted(RESOURCE_TYPES):
            definition = self._registry.get(resource_type, param)
            if definition is None:
                continue
            if not definition.target:
                return sorted(RESOURCE_TYPES)
            targets.update(definition.target)
        return sorted(targets)


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))
