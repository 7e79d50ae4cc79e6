"""Resolve chains and `_has` into plain predicates by running their sub-searches first.

`subject:Patient.identifier=s|v` becomes `RefIn(subject, <the matching Patients>)`;
`_has:Observation:subject:code=x` becomes `IdIn(<ids the matching Observations point at>)`.
Compilers then never see a chain, and both engines answer chains identically.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from app.fhir.outcome import FhirError
from app.interactions._access import scope_search
from app.interactions.context import Services
from indexing.extract import ReferenceValue, values_of_nodes
from indexing.plan.plan import (
    Chain,
    Clause,
    CompositeMatch,
    Has,
    IdIn,
    Predicate,
    RefIn,
    SearchPlan,
)

# A chain matching more resources than this is refused rather than answered slowly.
MAX_CHAIN_MATCHES = 10_000
_SUB_PAGE = 1000


async def resolve_plan(services: Services, plan: SearchPlan) -> SearchPlan:
    here = plan.types[0] if len(plan.types) == 1 else None
    clauses = tuple([await _clause(services, c, here) for c in plan.clauses])
    return replace(plan, clauses=clauses)


async def _clause(services: Services, clause: Clause, here: str | None) -> Clause:
    return Clause(tuple([await _predicate(services, p, here) for p in clause.any_of]))


async def _predicate(services: Services, p: Predicate, here: str | None) -> Predicate:
    if isinstance(p, Chain):
        inner = await _clause(services, p.inner, p.target)
        sub = scope_search(services, SearchPlan(types=(p.target,), clauses=(inner,)))
        hits = await matching_ids(services, sub)
        return RefIn(p.param, tuple(f"{p.target}/{i}" for i in hits))
    if isinstance(p, Has):
        if here is None:
            raise FhirError.of(400, "not-supported", "_has needs a type-level search")
        inner = await _clause(services, p.inner, p.source)
        sub = scope_search(services, SearchPlan(types=(p.source,), clauses=(inner,)))
        ids = await matching_ids(services, sub)
        return IdIn(tuple(sorted(await _referenced(services, p.source, p.param, ids, here))))
    if isinstance(p, CompositeMatch):
        return p
    return p


async def matching_ids(services: Services, plan: SearchPlan) -> list[str]:
    """Every id matching a (sub-)search, refused past MAX_CHAIN_MATCHES."""
    assert services.index is not None
    found: list[str] = []
    after: Any = None
    while True:
        page = await services.index.search(replace(plan, count=_SUB_PAGE), after=after)
        found.extend(h.id for h in page.hits)
        if len(found) > MAX_CHAIN_MATCHES:
            raise FhirError.of(
                400,
                "too-costly",
                f"a chained search on {','.join(plan.types)} matches more than "
                f"{MAX_CHAIN_MATCHES} resources; narrow it",
            )
        if len(page.hits) < _SUB_PAGE:
            return found
        after = page.hits[-1].cursor


async def _referenced(
    services: Services, source: str, param: str, ids: list[str], target_type: str
) -> set[str]:
    """Ids of `target_type` resources the `param` references of the given sources point at."""
    bound = services.registry.bound(source, param)
    if bound is None:
        return set()
    out: set[str] = set()
    for stored in await services.store.read_many([(source, i) for i in ids]):
        if stored.resource is None:
            continue
        for value in values_of_nodes("reference", bound.evaluate(stored.resource)):
            if isinstance(value, ReferenceValue) and value.type == target_type and value.id:
                out.add(value.id)
    return out
