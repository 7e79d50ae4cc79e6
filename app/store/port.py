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
from dataclasses import dataclass
from typing import Any, Protocol

from app.tx.commands import Transaction


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
class StoredResource:
    type: str
    id: str
    version: int
    last_updated: str
    deleted: bool
    resource: dict[str, Any] | None
    op: str = "update"

    @property
    def ref(self) -> str:
        return f"{self.type}/{self.id}"


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

    async def history(self, query: HistoryQuery) -> list[StoredResource]: ...

    async def find_by_identifier(self, type: str, tokens: Sequence[str]) -> Mapping[str, list[str]]:
        """For each token (`system|value`, `|value` or `value`), the ids of the live resources of
        `type` carrying it. One round trip for all tokens."""

    async def status(self) -> ServiceStatus: ...


class CommitLog(Protocol):
    """The committed transactions as the indexing outbox, and crash recovery."""

    async def unindexed(self, limit: int) -> list[CommittedTransaction]: ...

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
    """

    async def resource_types(self) -> list[str]: ...

    async def scan(self, type: str, after_id: str | None, limit: int) -> list[StoredResource]: ...

    async def count(self, type: str) -> int: ...


class Store(ResourceStore, CommitLog, ResourceScan, Protocol):
    """The store ports; every adapter implements all three."""
