"""The engine-neutral search plan (search.html) — what a FHIR search means, as plain data.

`indexing/plan/parse.py` turns a search URL into a `SearchPlan`; the executor
(app/interactions/search.py) resolves chains and `_has` into `RefIn`/`IdIn` predicates with
sub-searches; then one compiler per engine (indexing/engines/*/compile.py) turns the resolved
plan into a query. Field names are the index document's (indexing/document.py): a parameter's
values live under its code; `id`, `lastUpdated` are the bookkeeping fields.

Semantics every compiler must give (the search vectors in tests/vectors pin them):

- A `Clause` is an OR of its predicates (comma-separated values); `SearchPlan.clauses` are ANDed
  (repeated parameters).
- A predicate is satisfied by a resource when SOME value of its parameter satisfies it, except
  `TokenMatch(negate=True)` (`:not`), satisfied when NO value satisfies the positive form (a
  resource without any value of the parameter satisfies `:not`).
- Date and number ranges use inclusive `[gte, lte]` bounds on both sides (query and value):
  eq: value within query; gt: value.lte > query.lte; lt: value.gte < query.gte;
  ge: gt or eq; le: lt or eq; sa: value.gte > query.lte; eb: value.lte < query.gte;
  ap: value intersects the query widened by `indexing/plan/approximate.py`; ne: this value is
  not eq (value.gte < query.gte or value.lte > query.lte), so a resource needs a value to match
  `ne` (R4 search.html: "the value for the parameter in the resource is not equal"), and for a
  quantity with a system or code, a value in that unit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Prefix = Literal["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"]
StringMode = Literal["starts", "exact", "contains"]
UriMode = Literal["exact", "above", "below"]


@dataclass(frozen=True)
class StringMatch:
    """String parameter. `starts`/`contains` compare `value` (already normalised with
    `normalize_string`) to the `norm` field; `exact` compares `value` as written to `exact`."""

    param: str
    value: str
    mode: StringMode = "starts"


@dataclass(frozen=True)
class TokenMatch:
    """Token parameter: `form` is one of the value's `forms` (`code`, `system|code`, `system|`,
    `|code`, escaped as indexing.document.token_forms escapes them). `text=True` (`:text`): `form`
    is a normalised text that the `text` field must start with. `of_type=True` (`:of-type`):
    `form` is `type-system|type-code|value`, matched against `of_type`."""

    param: str
    form: str
    negate: bool = False
    text: bool = False
    of_type: bool = False


@dataclass(frozen=True)
class DateMatch:
    """Date parameter (or `_lastUpdated`): the query's interval at its precision, with a prefix."""

    param: str
    prefix: Prefix
    gte: str
    lte: str


@dataclass(frozen=True)
class NumberMatch:
    """Number or quantity parameter. [gte, lte] is the query's implicit precision range; `value`
    is the number as given. For quantities `system`/`code` (None = any) must also match."""

    param: str
    prefix: Prefix
    value: float
    gte: float
    lte: float
    system: str | None = None
    code: str | None = None
    quantity: bool = False


@dataclass(frozen=True)
class RefMatch:
    """Reference parameter: `ref` is `Type/id` (compared with the value's `ref`), or an absolute
    URL / canonical (compared with `url`). With `identifier=True` (`:identifier`), `ref` is a token
    form compared with the value's `identifier` forms. `type` restricts the target type
    (`:Patient`, or from `Type/id`)."""

    param: str
    ref: str
    identifier: bool = False
    type: str | None = None


@dataclass(frozen=True)
class RefIn:
    """A resolved chain: the parameter references one of `refs` (each `Type/id`). Empty `refs`
    matches nothing."""

    param: str
    refs: tuple[str, ...]


@dataclass(frozen=True)
class IdIn:
    """`_id`, or a resolved `_has`: the resource's id is one of `ids` (empty matches nothing)."""

    ids: tuple[str, ...]
    negate: bool = False


@dataclass(frozen=True)
class UriMatch:
    param: str
    value: str
    mode: UriMode = "exact"


@dataclass(frozen=True)
class Missing:
    """`:missing=true` (no value) or `:missing=false` (some value)."""

    param: str
    missing: bool


@dataclass(frozen=True)
class CompositeMatch:
    """Composite parameter: all parts must hold within ONE composite value; each part's `param`
    names the component field inside the composite value (e.g. `code`, `value-quantity`)."""

    param: str
    parts: tuple[Predicate, ...]


@dataclass(frozen=True)
class Chain:
    """`subject.identifier=...` before resolution: search the `targets` types with `inner` and
    replace this by `RefIn(param, <matching refs>)`. `targets` is the `:Type` named, or the
    target types of `param` that define what `inner` searches (OR across them). Multi-level
    chains nest."""

    param: str
    targets: tuple[str, ...]
    inner: Clause


@dataclass(frozen=True)
class Has:
    """`_has:Observation:subject:code=...` before resolution: search `source` with `inner`,
    collect the `param` references of the matches that point at this type, replace by `IdIn`."""

    source: str
    param: str
    inner: Clause


Predicate = (
    StringMatch
    | TokenMatch
    | DateMatch
    | NumberMatch
    | RefMatch
    | RefIn
    | IdIn
    | UriMatch
    | Missing
    | CompositeMatch
    | Chain
    | Has
)


@dataclass(frozen=True)
class Clause:
    """OR of predicates (one search parameter occurrence with comma-separated values)."""

    any_of: tuple[Predicate, ...]


@dataclass(frozen=True)
class SortKey:
    """`param` is a search parameter code, `_id` or `_lastUpdated`. Ascending sorts by each
    resource's smallest value, descending by its largest; resources without a value sort last."""

    param: str
    descending: bool = False


@dataclass(frozen=True)
class Include:
    """`_include=Source:param[:Target]` (reverse=False) or `_revinclude` (reverse=True);
    `param='*'` for every reference parameter; `iterate` for `:iterate`."""

    source: str
    param: str
    target: str | None = None
    reverse: bool = False
    iterate: bool = False


Total = Literal["none", "estimate", "accurate"]
Summary = Literal["true", "false", "text", "data", "count"]


@dataclass(frozen=True)
class SearchPlan:
    """One search: `types` (one for type-level search; several or none (= all) for system
    search with `_type`), the ANDed clauses, sort, page size and result parameters."""

    types: tuple[str, ...]
    clauses: tuple[Clause, ...] = ()
    sort: tuple[SortKey, ...] = ()
    count: int = 20
    total: Total = "none"
    includes: tuple[Include, ...] = ()
    summary: Summary | None = None
    elements: tuple[str, ...] = ()
    # Parameters that were understood, canonicalised, for the `self` link (unknown ones left out
    # in lenient mode).
    self_params: tuple[tuple[str, str], ...] = field(default_factory=tuple)
