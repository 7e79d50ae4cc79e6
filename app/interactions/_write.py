"""The one write path: resolve (batched store reads) -> plan (pure) -> commit -> retry on a race.

Every write interaction and every transaction Bundle goes through `execute`. Conditional
interactions are race-free because the store takes claims and versions once: the loser of a race
re-resolves and re-plans against what the winner wrote (bounded retries).
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Iterable
from dataclasses import replace

from app.fhir.clock import utc_now
from app.fhir.meta import new_id
from app.fhir.outcome import FhirError
from app.fhir.patch import apply_patch
from app.interactions._access import guard_entries, guard_writes
from app.interactions.context import Services
from app.records import Transaction
from app.search_parameters import register_written
from app.store.port import ClaimTaken, VersionConflict
from app.subscription_topics import learn_named_topics, register_topics
from app.tx.conditional import Criteria, match_ids
from app.tx.entry import Entry
from app.tx.plan import (
    PlanOptions,
    Resolution,
    TransactionPlan,
    conditional_references,
    plan_transaction,
)

_ATTEMPTS = 30


async def execute(
    services: Services, entries: list[Entry], origin: str | None = None
) -> TransactionPlan:
    guard_entries(services, entries)
    journal = services.journal
    if journal is not None:
        # An asynchronous submission (docs/implementation/async.md): a redelivered job whose
        # commit already happened answers what it planned then, and writes nothing.
        origin = origin or journal.origin(entries)
        replayed = await journal.replay(origin, entries)
        if replayed is not None:
            return TransactionPlan(Transaction(()), replayed)
    await learn_named_topics(services.store, services.topics, (e.resource or {} for e in entries))
    for attempt in range(_ATTEMPTS):
        resolution = await resolve(services, entries)
        opts = PlanOptions(
            now=utc_now(),
            new_ids=(new_id() for _ in itertools.count()),
            validate=services.validate,
            apply_patch=apply_patch,
            allow_update_create=services.settings.allow_update_create,
            rules=services.rules,
        )
        plan = plan_transaction(entries, resolution, opts)
        if not plan.transaction.writes:
            return plan
        guard_writes(services, plan, resolution)
        if journal is not None and origin is not None:
            await journal.record(origin, plan.results)
        try:
            seq = await services.store.commit(
                plan.transaction if origin is None else _with_origin(plan, origin)
            )
        except ClaimTaken:
            pass  # a concurrent conditional create won: re-resolve and find its resource
        except VersionConflict as conflict:
            _refuse_if_pinned(entries, plan, conflict)
        else:
            await services.queue.wake(seq)
            await register_written(services.registry, services.queue, seq, plan.transaction.writes)
            register_topics(services.topics, plan.transaction.writes)
            return plan
        await asyncio.sleep(min(0.2, 0.005 * (attempt + 1)) * (0.5 + random.random()))
    raise FhirError.of(
        409, "transient", "the resources in this request are being changed concurrently; retry"
    )


def _with_origin(plan: TransactionPlan, origin: str) -> Transaction:
    return replace(plan.transaction, origin=origin)


def _refuse_if_pinned(
    entries: list[Entry], plan: TransactionPlan, conflict: VersionConflict
) -> None:
    """A lost race on a resource the client pinned with If-Match is the client's 412."""
    for result in plan.results:
        if result.ref == conflict.ref and result.entry.if_match is not None:
            raise FhirError.of(
                412,
                "conflict",
                f"{conflict.ref} changed concurrently; If-Match version is no longer current",
                result.entry.at("request.ifMatch"),
            )


def _all_criteria(entries: list[Entry]) -> list[Criteria]:
    found = [c for e in entries for c in (e.criteria, e.if_none_exist) if c is not None]
    return found + conditional_references(entries)


async def resolve(services: Services, entries: list[Entry]) -> Resolution:
    """Matches for every condition and the current version of every resource the entries touch,
    in one store round trip per kind of read."""
    criteria = _all_criteria(entries)
    for c in criteria:
        if not c.store_only:
            names = ", ".join(sorted({k for k, _ in c.rest}))
            raise FhirError.of(
                412,
                "not-supported",
                f"conditional criteria on {names} are not supported; use identifier or _id "
                "(answered from the store, never from the lagging index)",
            )
    tokens_by_type: dict[str, set[str]] = {}
    for c in criteria:
        tokens_by_type.setdefault(c.type, set()).update(t for s in c.identifier_sets for t in s)
    by_type = (
        await services.store.find_by_identifiers(
            {t: sorted(tokens) for t, tokens in tokens_by_type.items()}
        )
        if tokens_by_type
        else {}
    )
    id_refs = {(c.type, i) for c in criteria for s in c.id_sets for i in s}
    live_by_ref = (
        {(r.type, r.id) for r in await services.store.read_many(sorted(id_refs)) if not r.deleted}
        if id_refs
        else set()
    )
    matches: dict[tuple[str, str], list[str]] = {}
    for c in criteria:
        live_ids = {i for (t, i) in live_by_ref if t == c.type}
        ids = match_ids(c, dict(by_type.get(c.type, {})), live_ids)
        matches[c.key] = ids or []
    refs = _touched(entries, matches)
    if services.rules is not None:
        refs |= services.rules.derived_refs(refs)
    current = {r.ref: r for r in await services.store.read_many(sorted(refs))} if refs else {}
    return Resolution(matches, current)


def _touched(
    entries: Iterable[Entry], matches: dict[tuple[str, str], list[str]]
) -> set[tuple[str, str]]:
    refs: set[tuple[str, str]] = set()
    for e in entries:
        if e.id is not None:
            refs.add((e.type, e.id))
        for c in (e.criteria, e.if_none_exist):
            if c is not None:
                refs.update((e.type, i) for i in matches.get(c.key, []))
    return refs
