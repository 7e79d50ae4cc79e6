"""Run-time subscription topics (`Basic` resources with the SubscriptionTopic profile) kept
current in every process's `TopicCatalog`, as SearchParameters are in the registry
(app/search_parameters.py): learnt from the store at start-up and by the jobs, from each write
in the process that commits it, and by a periodic sync where several API processes share the
store."""

from __future__ import annotations

from collections.abc import Iterable

from app.records import Write
from app.store.port import ResourceScan
from app.subscriptions.topics import TopicCatalog

BASIC = "Basic"
_SCAN_PAGE = 500


async def sync_topics(store: ResourceScan, catalog: TopicCatalog) -> None:
    """Learn every stored topic again, unless no `Basic` was committed since the last sync
    (on some engines the scan reads every resource)."""
    changes = await store.changes(BASIC)
    if changes == catalog.synced_changes:
        return
    basics = []
    after: str | None = None
    while page := await store.scan(BASIC, after, _SCAN_PAGE):
        basics += [(s.id, s.resource) for s in page if not s.deleted and s.resource is not None]
        after = page[-1].id
    catalog.replace(basics)
    # counted before the scan: a commit the scan missed has raised the count since
    catalog.synced_changes = changes


def register_topics(catalog: TopicCatalog, writes: Iterable[Write]) -> None:
    """After a commit: what its `Basic` writes now define (or no longer do)."""
    for write in writes:
        if write.type == BASIC:
            catalog.apply(write.id, write.resource if write.op != "delete" else None)
