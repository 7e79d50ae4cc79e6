"""The store's ports: what the interactions and the workers need from the source of truth.

Contract (executable copy: tests/contract/test_resource_store.py; mechanism:
docs/implementation/write-path.md):

- `commit` is all-or-nothing. Its commit point is one single-record write; a crash before it
  leaves nothing visible after `recover`, a crash after it is rolled forward by `recover`.
- A version number is taken once: of two transactions creating `Type/id` version N, one wins and
  the other raises `VersionConflict` having written nothing.
- A claim key is taken once: the loser raises `ClaimTaken` having written nothing.
- `read` answers the current version (a deleted resource answers its tombstone) as soon as
  `commit` has returned; it never waits for the search index.
- Every committed transaction stays in the commit log, unindexed, until `mark_indexed`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from app.records import StoredResource, Transaction


class StoreError(Exception):
    """The store cannot be reached or answered unexpectedly."""


class VersionConflict(StoreError):
    """Another transaction already took a version this one wanted."""

    def __init__(self, ref: str, version: int) -> None:
        super().__init__(f"{ref} version {version} was taken by a concurrent write")
        self.ref = ref
        self.version = version


class ClaimTaken(StoreError):
    """Another transaction holds a business-key claim this one wanted."""

    def __init__(self, key: str, holder: str) -> None:
        super().__init__(f"{key} is claimed by {holder}")
        self.key = key
        self.holder = holder


@dataclass(frozen=True)
class HistoryQuery:
    """Instance (`type` and `id`), type (`type`) or system history, newest first."""

    type: str | None = None
    id: str | None = None
    since: str | None = None
    at: str | None = None
    count: int = 20
    # keyset paging: only entries strictly older than (last_updated, type, id, version)
    before: tuple[str, str, str, int] | None = None


@dataclass(frozen=True)
class CommittedTransaction:
    seq: int
    refs: tuple[tuple[str, str, int], ...]
    committed_at: str


def leading_commits(
    commits: Sequence[CommittedTransaction], resources: int
) -> list[CommittedTransaction]:
    """The first of `commits` holding at most `resources` resources together (at least one
    commit): a batch of the outbox sized by its work, whether its commits hold one resource
    each or a bulk load's thousand."""
    taken: list[CommittedTransaction] = []
    held = 0
    for commit in commits:
        held += len(commit.refs)
        if taken and held > resources:
            break
        taken.append(commit)
    return taken


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    up: bool
    version: str = ""
    detail: str = ""


class ResourceStore(Protocol):
    """The versioned resource store (source of truth)."""

    async def commit(self, tx: Transaction) -> int:
        """Apply `tx` atomically; answers its commit sequence number."""

    async def read(self, type: str, id: str) -> StoredResource | None: ...

    async def read_many(self, refs: Sequence[tuple[str, str]]) -> list[StoredResource]:
        """Current versions of `refs` (missing ones left out), in no particular order."""

    async def vread(self, type: str, id: str, version: int) -> StoredResource | None: ...

    async def vread_many(self, keys: Sequence[tuple[str, str, int]]) -> list[StoredResource]:
        """The committed versions among `keys` (type, id, version), in no particular order."""
        ...

    async def history(self, query: HistoryQuery) -> list[StoredResource]: ...

    async def find_by_identifier(self, type: str, tokens: Sequence[str]) -> Mapping[str, list[str]]:
        """For each token (`system|value`, `|value` or `value`), the ids of the live resources of
        `type` carrying it (sorted). One round trip for all tokens."""

    async def find_by_identifiers(
        self, wanted: Mapping[str, Sequence[str]]
    ) -> Mapping[str, Mapping[str, list[str]]]:
        """`find_by_identifier` of several types at once (type -> tokens): as many round trips
        as for one type. A transaction's conditional entries name half a dozen types."""

    async def status(self) -> ServiceStatus: ...


class CommitLog(Protocol):
    """The committed transactions as the indexing outbox, and crash recovery."""

    async def unindexed(self, limit: int, after: int = 0) -> list[CommittedTransaction]:
        """The oldest committed, unindexed transactions whose sequence is above `after`, in
        sequence order."""

    async def mark_indexed(self, seqs: Sequence[int]) -> None: ...

    async def oldest_unindexed(self) -> str | None:
        """`committed_at` of the oldest committed, unindexed transaction (the index lag)."""

    async def committed_origin(self, origin: str) -> int | None:
        """The sequence of the committed transaction carrying `origin` (an async job), if any."""

    async def recover(self, stale_after_seconds: float) -> tuple[int, int]:
        """Roll committed-but-unapplied transactions forward and stale pending ones back;
        answers (rolled forward, rolled back)."""

    async def close(self) -> None: ...


class ResourceScan(Protocol):
    """Every current resource, type by type, in id order: what a reindex reads.

    - `resource_types` names every type with at least one current document (deleted included).
    - `scan` answers the current versions (tombstones included: a reindex projects them as
      tombstones) of `type` with an id greater than `after_id` (None: from the first), in id
      order, at most `limit`; paging on the last id never repeats or skips a resource that
      existed throughout the scan.
    - `count` answers the live (undeleted) current resources of `type`.
    - `changes` answers how many committed transactions wrote a resource of `type` (one of
      `COUNTED_TYPES`), each counted once its resources are current: a reader that finds the
      number unchanged since its last scan of `type` need not scan again.
    """

    async def resource_types(self) -> list[str]: ...

    async def scan(self, type: str, after_id: str | None, limit: int) -> list[StoredResource]: ...

    async def count(self, type: str) -> int: ...

    async def changes(self, type: str) -> int: ...


@dataclass(frozen=True)
class SnapshotPage:
    """One page of `SnapshotScan.scan_as_of`: the resources as of the snapshot (tombstones
    included), and the id to continue after (None: the type is done)."""

    resources: list[StoredResource]
    after: str | None


class SnapshotScan(Protocol):
    """Every resource as it was at a commit sequence: what a bulk export reads
    (docs/api/export.md, Consistency).

    - `sequence` answers the greatest commit sequence taken so far: the bound of a snapshot.
    - `settled(seq)` answers whether every transaction numbered up to `seq` has finished
      (rolled forward or back); only then do `snapshot_types` and `scan_as_of` with that `seq`
      answer for good.
    - `snapshot_types(seq)` names every type with a resource (deleted included) in the snapshot,
      and may name more (a type with none scans empty).
    - `scan_as_of(type, seq, after_id, limit)` answers, for the resources of `type` with an id
      greater than `after_id` (None: from the first), in id order, at most `limit`, each one's
      latest version written by a committed transaction numbered `seq` or lower (its tombstone
      if that was a delete; nothing if it was created later). Paging on `after` never repeats or
      skips a resource, however the store changes meanwhile.
    """

    async def sequence(self) -> int: ...

    async def settled(self, seq: int) -> bool: ...

    async def snapshot_types(self, seq: int) -> list[str]: ...

    async def scan_as_of(
        self, type: str, seq: int, after_id: str | None, limit: int
    ) -> SnapshotPage: ...


# The types whose commits `ResourceScan.changes` counts: every process follows the stored
# SearchParameters (app/search_parameters.py) and Subscriptions, and on some engines a scan
# reads every resource.
COUNTED_TYPES = frozenset({"SearchParameter", "Subscription"})


def idempotency_claim(contributor: str, key: str | None) -> str | None:
    """The claim that keeps a contributor's idempotency key to one submission."""
    return f"{contributor}|{key}" if key else None


@dataclass(frozen=True)
class Submission:
    """One asynchronous request (docs/implementation/async.md has the states and fields).

    `request` holds what is needed to run it: `interaction`, `method`, `base`, `type`, `id`,
    `query` (pairs), `headers` (the ones that matter) and `body`. `result` is the answer
    (`status`, `headers`, `body`); `journal` maps a commit origin to the entry results planned
    for it (written before that commit, so a redelivery can answer from it)."""

    id: str
    contributor: str
    request: Mapping[str, Any]
    created: float
    idempotency_key: str | None = None
    state: str = "queued"  # queued | running | done | failed | cancelled | dead
    attempts: int = 0
    progress: str = ""
    not_before: float = 0.0
    lease_until: float = 0.0
    owner: str | None = None
    updated: float = 0.0
    finished: float | None = None
    expires: float | None = None
    result: Mapping[str, Any] | None = None
    error: str | None = None
    callback: Mapping[str, Any] | None = None
    journal: Mapping[str, Any] = field(default_factory=dict)
    # Who submitted it (app/security/scopes.py `Principal.to_json`), and so who it runs as;
    # None: no authentication was configured.
    principal: Mapping[str, Any] | None = None

    @property
    def claim_key(self) -> str | None:
        """The idempotency claim: one submission per contributor and key."""
        return idempotency_claim(self.contributor, self.idempotency_key)

    def to_doc(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Submission:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in names})


@dataclass(frozen=True)
class SubmissionStats:
    queued: int
    running: int
    failed: int  # processed, answered with an error outcome
    dead: int  # could not be processed (permanent error or retries exhausted)
    oldest_waiting: float | None  # `created` of the oldest queued submission
    callbacks_failed: int


class SubmissionStore(Protocol):
    """Durable asynchronous submissions (docs/implementation/async.md). Every change is one
    single-record write; `claim_submission` and `update_submission` are compare-and-set.

    - `submit` stores the submission, or answers the existing one when its idempotency claim
      (`Submission.claim_key`) is held by a submission that still exists.
    - `claim_submission` moves a due `queued` submission to `running` for `owner` until
      `lease_until`; None when it is not queued, not due, or another worker won.
    - `update_submission` applies `changes` (top-level fields, or `journal.<key>`) only if every
      `expect` field still has its value, and answers the submission after; None when not.
    - `amend_submission` is the same change answering only whether it was made: a batch
      records a journal entry per entry, and reading its whole submission back each time
      would cost the square of its size.
    - `submission_request_limit`: the largest request (its JSON, in bytes) a submission may
      carry on this store; None when only the HTTP body's limit applies.
    """

    submission_request_limit: int | None

    async def submit(self, submission: Submission) -> Submission: ...

    async def submission(self, id: str) -> Submission | None: ...

    async def claim_submission(
        self, id: str, owner: str, now: float, lease_until: float
    ) -> Submission | None: ...

    async def update_submission(
        self, id: str, expect: Mapping[str, Any], changes: Mapping[str, Any]
    ) -> Submission | None: ...

    async def amend_submission(
        self, id: str, expect: Mapping[str, Any], changes: Mapping[str, Any]
    ) -> bool: ...

    async def due_submissions(self, now: float, limit: int) -> list[Submission]:
        """Queued ones due by `now`, and running ones whose lease ended by `now`, oldest first."""

    async def undelivered_callbacks(self, now: float, limit: int) -> list[Submission]:
        """Finished submissions whose callback is pending and due by `now`."""

    async def submission_stats(self) -> SubmissionStats: ...

    async def purge_submissions(self, before: float) -> int:
        """Delete finished submissions whose `expires` is before `before`; answers how many."""


@dataclass(frozen=True)
class FoundEvent:
    """A committed change that is an event for one subscription, before it has a number."""

    seq: int  # the commit that made it
    focus: str  # `Type/id`
    version: int  # the focus version committed (after a delete: the deletion's version)
    interaction: str  # create | update | delete
    timestamp: str  # the commit time

    def numbered(self, subscription: str, number: int) -> SubscriptionEvent:
        return SubscriptionEvent(
            subscription,
            number,
            self.seq,
            self.focus,
            self.version,
            self.interaction,
            self.timestamp,
        )


@dataclass(frozen=True)
class SubscriptionEvent:
    subscription: str  # the Subscription's id
    number: int  # 1, 2, ... per subscription
    seq: int
    focus: str
    version: int
    interaction: str
    timestamp: str


class SubscriptionEventLog(Protocol):
    """The events of each subscription, numbered, kept for delivery and `$events`
    (docs/api/subscriptions.md).

    - `record_events` numbers the events found for one subscription, in the order given, after
      every number it gave before; an event already recorded (same commit and focus) keeps its
      number and is not recorded again, so evaluating a commit again after a crash repeats
      nothing. Numbers are never reused; a crash while recording, or two evaluators drawing
      the same numbers at once (FerretDB), may leave some unused.
    - `subscription_events` answers events with `since <= number <= until`, by number.
    - `events_since_start` is the highest number given (0 before the first event).
    """

    async def record_events(
        self, subscription: str, found: Sequence[FoundEvent]
    ) -> list[SubscriptionEvent]: ...

    async def subscription_events(
        self, subscription: str, since: int, until: int | None, limit: int
    ) -> list[SubscriptionEvent]: ...

    async def events_since_start(self, subscription: str) -> int: ...


@dataclass(frozen=True)
class DeliveryState:
    """Where the delivery of one subscription's notifications stands (workers/delivery.py)."""

    subscription: str  # the Subscription's id
    delivered: int = 0  # the highest event number its endpoint took
    failures: int = 0  # consecutive failed attempts
    retry_at: float = 0.0  # no attempt before this time (epoch seconds)
    last_sent: float = 0.0  # when the endpoint last took a notification (heartbeats)
    owner: str | None = None  # the worker delivering it now, if any
    lease_until: float = 0.0
    turns: int = 0  # how many times a worker took it (each take is taken once)


class SubscriptionDelivery(Protocol):
    """Delivery progress, one record per subscription, and who delivers it: one worker at a
    time (a lease), so each subscription's notifications go out in event-number order.

    - `claim_delivery` answers the record (a new one at 0) with `worker` holding it until
      `lease_until`, or None while another worker's lease runs; of concurrent claims one
      wins (a take is counted in `turns`, and each count is taken once).
    - `save_delivery` writes the record if `worker` still holds it (False otherwise: the lease
      ran out and was taken); saving `owner=None` releases it.
    - `deliveries` answers every record, for `/health`.
    """

    async def claim_delivery(
        self, subscription: str, worker: str, now: float, lease_until: float
    ) -> DeliveryState | None: ...

    async def save_delivery(self, state: DeliveryState, worker: str) -> bool: ...

    async def deliveries(self) -> list[DeliveryState]: ...


class Store(
    ResourceStore,
    CommitLog,
    ResourceScan,
    SnapshotScan,
    SubmissionStore,
    SubscriptionEventLog,
    SubscriptionDelivery,
    Protocol,
):
    """The store ports; every adapter implements all of them."""
