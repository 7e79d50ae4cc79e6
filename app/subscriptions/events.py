"""The events one committed change makes, for the subscriptions that exist: pure, over values
the caller read (the versions before and after, each subscription's settings, the chained
filters already resolved).

A subscription takes part while it is `requested` or `active` and before its `end`
(subscription.html: `off` and `error` deliver nothing; `end` stops it). An R4 criteria
subscription has an event when the change's new version matches its criteria; a topic-based
one when its topic fires and its filters hold (trigger.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.subscriptions.subscription import SubscriptionSettings
from app.subscriptions.topics import Topic
from app.subscriptions.trigger import Change, Criteria, InvalidCriteria
from indexing.match import Resolver, UnresolvedPredicate
from indexing.plan.plan import Chain, Clause, Predicate, TokenMatch

__all__ = [
    "Subscriber",
    "SubscriberCache",
    "identifier_chains",
    "subscribers_of",
    "takes_part",
]

LIVE = frozenset({"requested", "active"})


@dataclass(frozen=True)
class Subscriber:
    """One subscription as the evaluation sees it."""

    id: str
    settings: SubscriptionSettings
    topic: Topic | None  # None: an R4 criteria subscription


@dataclass
class SubscriberCache:
    """A process's parsed subscriptions, as of `changes` committed Subscription writes
    (`ResourceScan.changes`): read again only when that count moved, since on some engines
    reading them is a scan. Whether each takes part is decided at each use (its `end`)."""

    changes: tuple[int, int] = (-1, -1)  # Subscription writes, topic catalog revision
    known: list[tuple[Mapping[str, Any], Subscriber]] = field(default_factory=list)

    def live(self, now: str) -> list[Subscriber]:
        return [subscriber for resource, subscriber in self.known if takes_part(resource, now)]


def takes_part(resource: Mapping[str, Any], now: str) -> bool:
    """Is this stored Subscription one that gets events now?"""
    end = resource.get("end")
    return resource.get("status") in LIVE and not (isinstance(end, str) and end <= now)


def subscribers_of(
    subscribers: Sequence[Subscriber],
    change: Change,
    criteria: Criteria,
    now: datetime,
    resolve: Resolver | None = None,
) -> list[str]:
    """The ids of the subscriptions that have an event for `change`, in the order given. A
    subscription whose criteria cannot be evaluated on it (a chain left unresolved) has none."""
    focus_type = change.focus.get("resourceType")
    fired = []
    for subscriber in subscribers:
        settings = subscriber.settings
        if focus_type not in settings.resource_types:
            continue
        try:
            if subscriber.topic is None:
                hit = criteria.r4_criteria_fire(settings.criteria, change, now)
            else:
                hit = criteria.topic_fires(subscriber.topic, change, settings.filters, now, resolve)
        except (UnresolvedPredicate, InvalidCriteria):
            hit = False
        if hit:
            fired.append(subscriber.id)
    return fired


def identifier_chains(criteria: Criteria, filters: Sequence[str]) -> list[tuple[Chain, str, str]]:
    """The `X.identifier=token` chains in the filters, as (chain, target type, token): what
    the store answers by identifier (`ResourceStore.find_by_identifier`), never the lagging
    index. Other chains are left out: they stay unresolved and match nothing."""
    found = []
    for text in filters:
        for clause in criteria.plan(text).clauses:
            for predicate in clause.any_of:
                target = _identifier_target(predicate)
                if target is not None:
                    assert isinstance(predicate, Chain)
                    found.append((predicate, *target))
    return found


def _identifier_target(predicate: Predicate) -> tuple[str, str] | None:
    if not isinstance(predicate, Chain) or len(predicate.targets) != 1:
        return None
    inner: Clause = predicate.inner
    if len(inner.any_of) != 1:
        return None
    token = inner.any_of[0]
    if isinstance(token, TokenMatch) and token.param == "identifier" and not token.negate:
        return predicate.targets[0], token.form
    return None
