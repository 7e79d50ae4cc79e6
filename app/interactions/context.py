"""What every interaction is handed: the ports and the settings, built once per process by
app/deploy."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.bulk.port import ExportFiles
from app.security.scopes import OPEN, Principal
from app.settings import Settings
from app.store.port import (
    ResourceScan,
    ResourceStore,
    SnapshotScan,
    SubmissionStore,
    SubscriptionDelivery,
    SubscriptionEventLog,
)
from app.subscriptions.topics import TopicCatalog
from app.tx.entry import Entry
from app.tx.plan import EntryResult, WriteRules
from indexing.engines.port import EpisodeIndex, SearchIndex
from indexing.registry import SearchParamRegistry
from workers.port import JobQueue


class WriteJournal(Protocol):
    """The commits of one asynchronous submission (docs/implementation/async.md, Redelivery).

    `execute` names each commit by `origin(entries)`; before committing it `record`s the planned
    results (refusing, by raising, when the submission is no longer this worker's); a redelivered
    job whose commit already happened gets those results back from `replay` instead of writing
    again."""

    def origin(self, entries: Sequence[Entry]) -> str: ...

    async def replay(
        self, origin: str, entries: Sequence[Entry]
    ) -> tuple[EntryResult, ...] | None: ...

    async def record(self, origin: str, results: Sequence[EntryResult]) -> None: ...


class RequestStore(
    ResourceStore,
    ResourceScan,
    SubmissionStore,
    SubscriptionEventLog,
    SubscriptionDelivery,
    SnapshotScan,
    Protocol,
):
    """What the interactions ask of the store: resources, asynchronous submissions, the
    subscriptions' events and delivery progress (`/health`), the snapshot bound of an
    export, and a scan of the stored topics when a Subscription names one this process does
    not know (the commit log and the other scans are the jobs')."""


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: RequestStore
    index: SearchIndex | None
    registry: SearchParamRegistry
    validate: Callable[[dict[str, Any]], None]
    resource_types: frozenset[str]
    # Woken after every commit and submission; asked for reindexing (workers/port.py).
    queue: JobQueue
    # Rules over whole writes (the IG's, in IG mode); None for a plain FHIR server.
    rules: WriteRules | None = None
    # Set only while a worker runs an asynchronous submission.
    journal: WriteJournal | None = None
    # Who is calling (app/security/scopes.py): set per request by the HTTP layer, and per job
    # from the submission; OPEN when no authentication is configured.
    principal: Principal = OPEN
    # Where Bulk Data exports keep their files (app/bulk/port.py).
    files: ExportFiles | None = None
    # The analysts' episode index (the /analytics API); None where it is not kept.
    episodes: EpisodeIndex | None = None
    # The subscription topics, built-in and run-time (app/subscription_topics.py).
    topics: TopicCatalog = field(default_factory=TopicCatalog)
