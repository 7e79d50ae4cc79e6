"""Run-time subscription topics (`Basic` resources with the SubscriptionTopic profile) kept
current in every process's `TopicCatalog`: learnt from the store once at start, then from each
write in the process that commits it and, in the jobs, from every commit they project. Not
from a count of `Basic` writes: `Basic` holds much else, and a rescan of every `Basic` on each
of its writes would be a scan of the store on some engines. An API process does not project:
a topic another process defined since it started is learnt when a Subscription names it
(`learn_named_topics`)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from app.records import StoredResource, Write
from app.store.port import ResourceScan
from app.subscriptions.subscription import SUBSCRIPTION_PROFILE
from app.subscriptions.topics import TopicCatalog

BASIC = "Basic"
_SCAN_PAGE = 500
RESYNC_SECONDS = 10.0  # at most one rescan on a miss per process this often


async def sync_topics(store: ResourceScan, catalog: TopicCatalog) -> None:
    """Learn every stored topic, once per process (a scan of every `Basic`; on some engines
    of every resource): afterwards each process learns them from the writes it commits
    (`register_topics`) and, in the jobs, from the commits it projects (`learn_topics`)."""
    if catalog.synced:
        return
    basics = []
    after: str | None = None
    while page := await store.scan(BASIC, after, _SCAN_PAGE):
        basics += [(s.id, s.resource) for s in page if not s.deleted and s.resource is not None]
        after = page[-1].id
    catalog.replace(basics)
    catalog.synced = True


async def learn_named_topics(
    store: ResourceScan, catalog: TopicCatalog, resources: Iterable[Mapping[str, Any]]
) -> None:
    """Before planning a write: a topic-based Subscription naming a topic this process does
    not know may name one that another API process defined since this one started. Read the
    stored topics again then, at most once every RESYNC_SECONDS (a scan of every `Basic`:
    clients naming unknown topics cannot make it more often)."""
    named = {
        r.get("criteria")
        for r in resources
        if r.get("resourceType") == "Subscription"
        and SUBSCRIPTION_PROFILE in ((r.get("meta") or {}).get("profile") or [])
    }
    if not any(isinstance(url, str) and url not in catalog for url in named):
        return
    if time.monotonic() - catalog.rescanned_at < RESYNC_SECONDS:
        return
    catalog.rescanned_at = time.monotonic()
    catalog.synced = False
    await sync_topics(store, catalog)


def register_topics(catalog: TopicCatalog, writes: Iterable[Write]) -> None:
    """After a commit: what its `Basic` writes now define (or no longer do)."""
    for write in writes:
        if write.type == BASIC:
            catalog.apply(write.id, write.resource if write.op != "delete" else None)


def learn_topics(catalog: TopicCatalog, projected: Iterable[StoredResource]) -> None:
    """What the projected current versions of `Basic` resources define: every commit is
    projected, so a worker learns each topic another process wrote, in commit order."""
    for stored in projected:
        if stored.type == BASIC:
            catalog.apply(stored.id, None if stored.deleted else stored.resource)
