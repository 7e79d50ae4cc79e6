"""Subscription events from the commit outbox: the commits projection takes are evaluated
against the subscriptions before they are marked indexed, and their events recorded in the
store's event log (docs/implementation/subscriptions.md). A crash before the mark evaluates
the same commits again; the log keeps each event's number, so nothing is recorded twice and
nothing is skipped. Only committed transactions reach the outbox, so a refused or rolled-back
write makes no event.

`notify_ahead` evaluates the newest commits of the same outbox before projection reaches
them, so that a notification waits for its commit only, not for the index behind it;
projection skips what it evaluated and still evaluates everything else."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from app.records import StoredResource
from app.store.port import CommittedTransaction, FoundEvent, leading_commits
from app.subscription_topics import learn_topics, sync_topics
from app.subscriptions.events import Subscriber, identifier_chains, subscribers_of
from app.subscriptions.subscription import InvalidSubscription, parse_subscription
from app.subscriptions.trigger import Change, Criteria
from indexing.match import UnresolvedPredicate
from indexing.plan.plan import Chain, Has, Predicate, RefIn
from workers.context import JobContext
from workers.turns import take_turn

log = logging.getLogger("micdr.subscriptions")

SUBSCRIPTION = "Subscription"
BASIC = "Basic"
_SCAN_PAGE = 500
NOTIFY_BATCH = 500  # commits per evaluation ahead: all that arrived since, under load
NOTIFY_RESOURCES = 5000  # at most, per evaluation ahead


async def notify_ahead(ctx: JobContext, batch: int = NOTIFY_BATCH) -> int:
    """Evaluate the unindexed commits this process has not evaluated yet, in sequence order,
    and ring the delivery of what they make; answers how many commits it evaluated. One job
    of a process does so at a time (`take_turn`): the others leave at once, so that under a
    backlog the worker's slots are free for the deliveries this rings. Nothing when no
    subscription takes part. It never evaluates past a transaction still committing
    (`_in_order`): a commit numbered earlier but visible later is not overtaken, so events
    keep commit order. Whether any subscription takes part
    is answered by the subscriptions projection last read (no store call): a new one's first
    events may wait for projection."""
    return await take_turn(ctx.notifying, lambda until: _evaluate_ahead(ctx, batch, until))


async def _evaluate_ahead(ctx: JobContext, batch: int, until: float) -> int:
    ahead, evaluated = ctx.ahead, 0
    while True:
        async with ahead.lock:
            if not ctx.subscribers.live(datetime.now(UTC).isoformat()):
                return evaluated
            found = await ctx.store.unindexed(batch, after=ahead.after)
            commits = await _in_order(ctx, ahead.after, leading_commits(found, NOTIFY_RESOURCES))
            if not commits:
                return evaluated
            # the topics they define, as projection would learn them
            topics = sorted({(t, i) for c in commits for t, i, _ in c.refs if t == BASIC})
            defined = await ctx.store.read_many(topics) if topics else []
            notified = await record_subscription_events(ctx, commits, defined)
            ahead.add(c.seq for c in commits)
        if notified:
            await ctx.services.queue.deliver(sorted(notified))
        evaluated += len(commits)
        if time.monotonic() >= until:  # projection evaluates what is left
            return evaluated


async def _in_order(
    ctx: JobContext, after: int, commits: Sequence[CommittedTransaction]
) -> list[CommittedTransaction]:
    """The leading `commits` that no unfinished transaction precedes. A sequence number
    missing before one of them is a transaction still committing (it drew its number first
    and will be visible later), or one aborted or already projected: evaluating past the
    first kind would number its events after those of a later commit, so the evaluation
    stops there and takes it up in order once it is visible (the store says which kind)."""
    expected = after + 1
    for n, commit in enumerate(commits):
        if commit.seq != expected and not await ctx.store.settled(commit.seq - 1):
            return list(commits[:n])
        expected = commit.seq + 1
    return list(commits)


async def record_subscription_events(
    ctx: JobContext,
    commits: Sequence[CommittedTransaction],
    projected: Sequence[StoredResource] = (),
) -> set[str]:
    """Record the events these commits make for every live subscription; answers the ids of
    the subscriptions that have new events."""
    criteria = Criteria(ctx.registry)
    learn_topics(ctx.services.topics, projected)  # before the subscribers that name them
    if not commits:
        return set()
    subscribers = await _subscribers(ctx, criteria)
    if not subscribers:
        return set()
    types = frozenset(t for s in subscribers for t in s.settings.resource_types)
    resolved = await _resolve_chains(ctx, criteria, subscribers)

    def resolve(predicate: Chain | Has) -> Predicate:
        if predicate in resolved:
            return resolved[predicate]
        raise UnresolvedPredicate(f"{predicate} is not resolved")

    now = datetime.now(UTC)
    found: dict[str, list[FoundEvent]] = defaultdict(list)
    versions = await _versions(ctx, commits, types)
    for commit in sorted(commits, key=lambda c: c.seq):
        for type_, id_, version in commit.refs:
            if type_ not in types:
                continue
            change = _change(versions, type_, id_, version)
            if change is None:
                continue
            for sid in subscribers_of(subscribers, change, criteria, now, resolve):
                found[sid].append(
                    FoundEvent(
                        commit.seq,
                        f"{type_}/{id_}",
                        version,
                        change.interaction,
                        commit.committed_at,
                    )
                )
    for sid, events in found.items():
        await ctx.store.record_events(sid, events)
    return set(found)


async def _subscribers(ctx: JobContext, criteria: Criteria) -> list[Subscriber]:
    await known_subscriptions(ctx, criteria)
    return ctx.subscribers.live(datetime.now(UTC).isoformat())


async def known_subscriptions(
    ctx: JobContext, criteria: Criteria
) -> list[tuple[Mapping[str, Any], Subscriber]]:
    """Every valid stored Subscription with its settings, whatever its status, as of the last
    committed Subscription write (read again only when that count moved)."""
    cache, topics = ctx.subscribers, ctx.services.topics
    await sync_topics(ctx.store, topics)
    # read again when a subscription or a topic was written: a subscription naming a topic
    # this process had not learnt yet is valid now
    changes = (await ctx.store.changes(SUBSCRIPTION), topics.revision)
    if changes != cache.changes:
        known: list[tuple[Mapping[str, Any], Subscriber]] = []
        after: str | None = None
        while page := await ctx.store.scan(SUBSCRIPTION, after, _SCAN_PAGE):
            for stored in page:
                if not stored.deleted and stored.resource is not None:
                    subscriber = subscriber_of(ctx, criteria, stored.id, stored.resource)
                    if subscriber is not None:
                        known.append((stored.resource, subscriber))
            after = page[-1].id
        # counted before the scan: a commit the scan missed has raised the count since
        cache.changes, cache.known = changes, known
    return cache.known


def subscriber_of(
    ctx: JobContext, criteria: Criteria, id_: str, resource: Mapping[str, Any]
) -> Subscriber | None:
    """The stored Subscription's settings; None (logged) when it cannot be evaluated."""
    try:
        settings = parse_subscription(
            resource,
            ctx.services.topics,
            criteria,
            ctx.settings.subscription_allow_list,
            creating=False,
        )
    except InvalidSubscription as error:
        log.warning("Subscription/%s is not evaluated: %s", id_, error)
        return None
    topic = ctx.services.topics.get(settings.criteria) if settings.style == "topic" else None
    return Subscriber(id_, settings, topic)


async def _resolve_chains(
    ctx: JobContext, criteria: Criteria, subscribers: Sequence[Subscriber]
) -> dict[Chain | Has, Predicate]:
    """`patient.identifier=system|value` filters, answered by the store (one lookup for all
    the subscribers' chains)."""
    chains = [
        found
        for subscriber in subscribers
        for found in identifier_chains(criteria, subscriber.settings.filters)
    ]
    if not chains:
        return {}
    wanted: dict[str, set[str]] = {}
    for _, target, token in chains:
        wanted.setdefault(target, set()).add(token)
    found = await ctx.store.find_by_identifiers({t: sorted(ts) for t, ts in wanted.items()})
    return {
        chain: RefIn(chain.param, tuple(f"{target}/{i}" for i in found[target].get(token, [])))
        for chain, target, token in chains
    }


async def _versions(
    ctx: JobContext, commits: Sequence[CommittedTransaction], types: frozenset[str]
) -> dict[tuple[str, str, int], StoredResource]:
    """Every version the commits wrote of the subscribed types, and the one before each: one
    store call for the batch."""
    keys = [
        (type_, id_, v)
        for commit in commits
        for type_, id_, version in commit.refs
        if type_ in types
        for v in (version, version - 1)
        if v > 0
    ]
    return {(s.type, s.id, s.version): s for s in await ctx.store.vread_many(keys)}


def _change(
    versions: Mapping[tuple[str, str, int], StoredResource], type_: str, id_: str, version: int
) -> Change | None:
    """The committed version and the one before it, as a change."""
    current = versions.get((type_, id_, version))
    if current is None:
        return None
    before = versions.get((type_, id_, version - 1))
    previous = before.resource if before is not None and not before.deleted else None
    if current.deleted:
        return Change("delete", previous, None) if previous is not None else None
    if previous is None:
        return Change("create", None, current.resource)
    return Change("update", previous, current.resource)
