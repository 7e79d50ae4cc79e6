"""Resolve chains and `_has` into plain predicates by running their sub-searches first.

`subject.identifier=s|v` becomes `RefIn(subject, <the matching Patients, Groups, Devices and
Locations>)`; `_has:Observation:subject:code=x` becomes `IdIn(<ids the matching Observations
point at>)`.
Compilers then never see a chain, and both engines answer chains identically.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from app.fhir.outcome import FhirError
from app.interactions._access import scope_search
from app.interactions.context import Services
from indexing.engines.port import Hit
from indexing.extract import ReferenceValue, values_of_nodes
from indexing.plan.plan import (
    Chain,
    Clause,
    Has,
    IdIn,
    Predicate,
    RefIn,
    SearchPlan,
)

# A chain matching more resources than this is refused rather than answered slowly.
MAX_CHAIN_MATCHES = 10_000
_SUB_PAGE = 1000
# A reference to any type reaches up to 146 types; Elasticsearch names each index in the request
# line, which it limits to 4 KB, so a sub-search covers this many types at most.
_TYPES_PER_SEARCH = 24


async def resolve_plan(services: Services, plan: SearchPlan) -> SearchPlan:
    here = plan.types[0] if len(plan.types) == 1 else None
    resolver = _Resolver(services)
    clauses = tuple([await resolver.clause(c, here) for c in plan.clauses])
    return replace(plan, clauses=clauses)


class _Resolver:
    """The resolution of one plan. A chain through several types can repeat one criterion under
    each of them (`focus._has:...` under every type `focus` reaches), so each chain and each
    `_has` is searched once per plan."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.chains: dict[Chain, RefIn] = {}
        self.referenced: dict[Has, set[tuple[str, str]]] = {}

    async def clause(self, clause: Clause, here: str | None) -> Clause:
        return Clause(tuple([await self.predicate(p, here) for p in clause.any_of]))

    async def predicate(self, p: Predicate, here: str | None) -> Predicate:
        if isinstance(p, Chain):
            if p not in self.chains:
                self.chains[p] = await self._chain(p)
            return self.chains[p]
        if isinstance(p, Has):
            if here is None:
                raise FhirError.of(400, "not-supported", "_has needs a type-level search")
            if p not in self.referenced:
                self.referenced[p] = await self._has(p)
            return IdIn(tuple(sorted(i for t, i in self.referenced[p] if t == here)))
        return p

    async def _chain(self, p: Chain) -> RefIn:
        inner = await self.clause(p.inner, p.targets[0] if len(p.targets) == 1 else None)
        hits: list[Hit] = []
        for plan in _chain_searches(self.services, p.targets, inner):
            hits.extend(await matching(self.services, plan))
        return RefIn(p.param, tuple(f"{h.type}/{h.id}" for h in hits))

    async def _has(self, p: Has) -> set[tuple[str, str]]:
        """(type, id) of everything the `p.param` references of the matching sources point at."""
        inner = await self.clause(p.inner, p.source)
        sub = scope_search(self.services, SearchPlan(types=(p.source,), clauses=(inner,)))
        ids = [h.id for h in await matching(self.services, sub)]
        return await _referenced(self.services, p.source, p.param, ids)


def _chain_searches(
    services: Services, targets: tuple[str, ...], inner: Clause
) -> list[SearchPlan]:
    """The sub-searches of a chain over `targets`: over them all (a few dozen types a time) when
    the caller may search everything; else one per type within the caller's scopes, leaving out
    the types it may not search (what it cannot search cannot match), refused only when it may
    search none."""
    if services.principal.open:
        return [
            SearchPlan(types=targets[start : start + _TYPES_PER_SEARCH], clauses=(inner,))
            for start in range(0, len(targets), _TYPES_PER_SEARCH)
        ]
    plans: list[SearchPlan] = []
    refused: FhirError | None = None
    for target in targets:
        try:
            plans.append(scope_search(services, SearchPlan(types=(target,), clauses=(inner,))))
        except FhirError as error:
            if error.status != 403:
                raise
            refused = refused or error
    if not plans and refused is not None:
        raise refused
    return plans


async def matching(services: Services, plan: SearchPlan) -> list[Hit]:
    """Every hit of a (sub-)search, refused past MAX_CHAIN_MATCHES."""
    assert services.index is not None
    found: list[Hit] = []
    after: Any = None
    while True:
        page = await services.index.search(replace(plan, count=_SUB_PAGE), after=after)
        found.extend(page.hits)
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
    services: Services, source: str, param: str, ids: list[str]
) -> set[tuple[str, str]]:
    """(type, id) of the resources the `param` references of the given sources point at."""
    bound = services.registry.bound(source, param)
    if bound is None:
        return set()
    out: set[tuple[str, str]] = set()
    for stored in await services.store.read_many([(source, i) for i in ids]):
        if stored.resource is None:
            continue
        for value in values_of_nodes("reference", bound.evaluate(stored.resource)):
            if isinstance(value, ReferenceValue) and value.type and value.id:
                out.add((value.type, value.id))
    return out
