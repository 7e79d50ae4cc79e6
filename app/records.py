"""The records that the write planner (app/tx), the IG rules (app/ig) and the store (app/store)
exchange, as plain frozen values: what a transaction asks the store to write, and what the store
answers for one version of a resource. Those three packages depend on this module, not on each
other (docs/layering.md).

Pure planning code (single interactions and Bundles alike) produces a `Transaction`; the store
performs it atomically or not at all (see docs/implementation/write-path.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Operation = Literal["create", "update", "delete"]


@dataclass(frozen=True)
class Write:
    """One new version of one resource.

    `version` is the version this write creates; the store lets exactly one writer take it, so two
    writers that read the same current version cannot both win. `resource` is the full JSON with
    `id` and `meta` already set (None for a delete). `identifiers` are the store-side lookup tokens
    (`system|value`, `|value`, `value`) for conditional interactions.
    """

    type: str
    id: str
    version: int
    op: Operation
    resource: dict[str, Any] | None
    identifiers: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.type}/{self.id}"


@dataclass(frozen=True)
class Claim:
    """A race-free reservation of a business identifier of one resource type for `ref`.

    Two concurrent conditional creates of `ServiceRequest?identifier=s|v`: one claim wins, the other
    transaction is refused with `ClaimTaken` and re-resolves its condition (then finds the
    winner's resource). A claim whose holder no longer carries the identifier (deleted, changed,
    rolled back) is stale and is taken over.
    """

    type: str
    token: str
    ref: str

    @property
    def key(self) -> str:
        return f"{self.type}|{self.token}"


@dataclass(frozen=True)
class Transaction:
    writes: tuple[Write, ...]
    claims: tuple[Claim, ...] = ()
    last_updated: str = ""
    # The async job (if any) this transaction completes; stored with the commit so a job that is
    # delivered twice can find that it already committed.
    origin: str | None = None


@dataclass(frozen=True)
class StoredResource:
    """One version of one resource as the store answers it (a deleted one is its tombstone:
    `deleted`, no `resource`)."""

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
