"""The search index port: version-guarded writes of index documents, and resolved-plan queries.

Contract (executable copy: tests/contract/test_search_index.py; vectors: tests/vectors/):

- `write` is idempotent and version-guarded: an op whose version is not newer than the indexed
  one for (type, id) changes nothing, so a stale or repeated projection never overwrites a newer
  one. A delete is a tombstone op (document None) with the deleting version; tombstones are kept
  so a late, older op cannot resurrect the resource. Indexes of a type are created on its
  first write.
- `search` answers a page of hits for a plan whose chains and `_has` are already resolved
  (`RefIn`/`IdIn`), in the plan's sort order with a unique tie-breaker, never tombstones. `after`
  is the `cursor` of the previous page's last hit (opaque, JSON-serialisable): pages never repeat
  or skip a resource. A `write` has returned only once its documents are searchable; a
  rebuild's documents become visible at `finish_rebuild` (or an explicit `refresh()`).
- A rebuild (`begin_rebuild`, `rebuild_write`..., `finish_rebuild`) re-projects one type from
  the store while the index keeps serving and writers keep writing: the rebuild's writes replace
  an equal version (new parameters) but never a newer one, and whatever writers change
  meanwhile survives it. Its state is a JSON object a caller may save and hand back to
  `begin_rebuild` to resume after a crash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from indexing.alerts import AlertRule
from indexing.analytics import AnalyticsQuery
from indexing.document import IndexOp
from indexing.plan.plan import SearchPlan


class IndexUnavailable(Exception):
    """The index cannot answer now (down, or its shards not ready): a 503, retried later."""


@dataclass(frozen=True)
class Hit:
    type: str
    id: str
    version: int
    cursor: Any  # the sort values to continue after this hit


@dataclass(frozen=True)
class HitPage:
    hits: list[Hit]
    total: int | None = None  # only when asked for


@dataclass(frozen=True)
class IndexStatus:
    up: bool
    version: str = ""
    detail: str = ""


class SearchIndex(Protocol):
    async def write(self, ops: Sequence[IndexOp]) -> None: ...

    async def search(
        self, plan: SearchPlan, after: Any = None, with_total: bool = False
    ) -> HitPage: ...

    async def refresh(self) -> None:
        """Make every completed write visible to `search` (tests and `micdr load` use it)."""

    async def status(self) -> IndexStatus: ...

    async def empty(self) -> bool:
        """No document at all, not even a tombstone: the index was lost, or never built."""

    async def begin_rebuild(
        self, resource_type: str, resume: Mapping[str, Any] | None = None
    ) -> dict[str, Any]: ...

    async def rebuild_write(self, state: Mapping[str, Any], ops: Sequence[IndexOp]) -> None: ...

    async def finish_rebuild(self, state: Mapping[str, Any]) -> int:
        """Make the rebuilt documents the ones searched; answers documents caught up."""

    async def close(self) -> None: ...


# -- imaging episodes (docs/index-schema.md, Imaging episodes) -----------------------------


@dataclass(frozen=True)
class StoredEpisode:
    """An episode document as indexed, with its revision (opaque, for `EpisodeWrite.expect`)."""

    key: str
    doc: dict[str, Any]
    rev: Any


@dataclass(frozen=True)
class EpisodeWrite:
    """Put `doc` (or delete, when None) under `key` if its revision is still `expect`
    (None: only if no episode has that key)."""

    key: str
    doc: dict[str, Any] | None
    expect: Any = None


@dataclass(frozen=True)
class EpisodeStatus:
    """What `/health` says of the episode index. `rebuilding_since`: the instant a rebuild from
    the store began that has not finished (an interrupted one stays until a rebuild completes):
    meanwhile episodes are missing whose commits the projection has already marked indexed."""

    up: bool
    rebuilding_since: str | None = None
    detail: str = ""


class EpisodeIndex(Protocol):
    """The analysts' episode index (indexing/episodes.py builds its documents).

    Contract (executable copy: tests/contract/test_episode_index.py):

    - `related` answers every episode one of whose terms (`indexing.analytics.episode_terms`:
      key, member references, accession numbers, referenced patient and organisations) is
      among `terms`, with its current revision; a completed `apply` is visible to it.
    - `apply` is a compare-and-set per episode: it answers False when some write's `expect` no
      longer holds (another worker got there first), and that write is not made; the others
      may have been. The caller recomputes from the store and applies again, so every write is
      a whole recomputation and a retry converges.
    - `answer` runs one analytics question as an aggregation in the engine and answers the
      rows `indexing.analytics.reference_answer` would over the same documents.
    - `alerts` answers the episodes each rule fires for (`indexing.alerts`), one query per
      rule, as `reference_alerts` would: rule order, then episode key.
    - `begin_rebuild(since)` removes every episode (before a rebuild from the store) and
      records `since` (an instant) as `status().rebuilding_since`, until `finish_rebuild(since)`;
      a later `begin_rebuild` replaces the record, and finishing an earlier one leaves it.
    - `status` never raises: an unreachable engine is `up=False`.
    """

    async def related(self, terms: Sequence[str]) -> list[StoredEpisode]: ...

    async def apply(self, writes: Sequence[EpisodeWrite]) -> bool: ...

    async def answer(self, query: AnalyticsQuery) -> list[dict[str, Any]]: ...

    async def alerts(self, rules: Sequence[AlertRule], now: datetime) -> list[dict[str, Any]]: ...

    async def begin_rebuild(self, since: str) -> None: ...

    async def finish_rebuild(self, since: str) -> None: ...

    async def status(self) -> EpisodeStatus: ...

    async def close(self) -> None: ...
