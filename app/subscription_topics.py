"""Run-time subscription topics (`Basic` resources with the SubscriptionTopic profile) kept
current in every process's `TopicCatalog`: learnt from the store once at start, then from each
write in the process that commits it and, in the jobs, from every commit they project. Not
from a count of `Basic` writes: `Basic` holds much else, and a rescan of every `Basic` on each
of its writes would be a scan of the store on some engines."""

from __future__ import annotations

from collections.abc import Iterable

from app.records import StoredResource, Write
from app.store.port import ResourceScan
from app.subscriptions.topics import TopicCatalog

BASIC = "Basic"
_SCAN_PAGE = 500


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
