"""`_include` and `_revinclude` (search.html#include): resolved from the stored resources of the
page (forward) or by an index query on the referring type (reverse); deduplicated; `:iterate`
repeats on what was included, a bounded number of times (MICDR_MAX_INCLUDE_ITERATIONS rounds,
MICDR_MAX_INCLUDED resources)."""

from __future__ import annotations

from app.interactions._chains import matching
from app.interactions.context import Services
from app.records import StoredResource
from indexing.extract import ReferenceValue, values_of_nodes
from indexing.plan.plan import Clause, Include, RefIn, SearchPlan


def _reference_params(services: Services, source: str, param: str) -> list[str]:
    if param != "*":
        return [param]
    return [p.code for p in services.registry.for_type(source).values() if p.type == "reference"]


def _forward_refs(
    services: Services, include: Include, resources: list[StoredResource]
) -> set[tuple[str, str]]:
    refs: set[tuple[str, str]] = set()
    for stored in resources:
        if stored.type != include.source or stored.resource is None:
            continue
        for code in _reference_params(services, include.source, include.param):
            bound = services.registry.bound(include.source, code)
            if bound is None:
                continue
            for value in values_of_nodes("reference", bound.evaluate(stored.resource)):
                if not isinstance(value, ReferenceValue) or not value.type or not value.id:
                    continue
                if include.target is None or value.type == include.target:
                    refs.add((value.type, value.id))
    return refs


async def _reverse(
    services: Services, include: Include, resources: list[StoredResource]
) -> list[StoredResource]:
    targets = tuple(sorted(s.ref for s in resources))
    if not targets:
        return []
    found: list[StoredResource] = []
    for code in _reference_params(services, include.source, include.param):
        plan = SearchPlan(types=(include.source,), clauses=(Clause((RefIn(code, targets),)),))
        ids = [hit.id for hit in await matching(services, plan)]
        found.extend(await services.store.read_many([(include.source, i) for i in ids]))
    return found


async def included(
    services: Services, includes: tuple[Include, ...], matches: list[StoredResource]
) -> list[StoredResource]:
    """The resources the includes add to a page, without the page's own matches."""
    seen = {s.ref for s in matches}
    out: list[StoredResource] = []
    frontier = matches
    iterations = services.settings.max_include_iterations
    limit = services.settings.max_included
    for round_ in range(iterations + 1):
        active = [i for i in includes if round_ == 0 or i.iterate]
        if not active or not frontier:
            break
        new: list[StoredResource] = []
        forward = {
            ref for i in active if not i.reverse for ref in _forward_refs(services, i, frontier)
        }
        wanted = sorted(r for r in forward if f"{r[0]}/{r[1]}" not in seen)
        candidates = await services.store.read_many(wanted) if wanted else []
        for i in active:
            if i.reverse:
                candidates.extend(await _reverse(services, i, frontier))
        for stored in candidates:
            if stored.ref not in seen and not stored.deleted:
                seen.add(stored.ref)
                new.append(stored)
        out.extend(new)
        frontier = new
        if len(out) >= limit:
            return out[:limit]
    return out
