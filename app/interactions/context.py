"""What every interaction is handed: the ports and the settings, built once by the lifespan."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from app.records import Write
from app.security.scopes import OPEN, Principal
from app.settings import Settings
from app.store.port import Store
from app.tx.entry import Entry
from app.tx.plan import EntryResult, WriteRules
from indexing.engines.port import SearchIndex
from indexing.registry import SearchParamRegistry


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


async def _no_submission(id: str) -> None:
    return None


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: Store
    index: SearchIndex | None
    registry: SearchParamRegistry
    validate: Callable[[dict[str, Any]], None]
    resource_types: frozenset[str]
    # Called with the commit sequence after every commit: wakes the indexer (never blocks on it).
    on_commit: Callable[[int], Awaitable[None]]
    # Embedded only: project everything committed so far, now (tests, `micdr load`).
    drain: Callable[[], Awaitable[int]] | None = None
    # Rules over whole writes (the IG's, in IG mode); None for a plain FHIR server.
    rules: WriteRules | None = None
    # Called with a new asynchronous submission's id once it is stored: wakes its processor.
    on_submit: Callable[[str], Awaitable[None]] = _no_submission
    # Set only while a worker runs an asynchronous submission.
    journal: WriteJournal | None = None
    # Who is calling (app/security/scopes.py): set per request by the HTTP layer, and per job
    # from the submission; OPEN when no authentication is configured.
    principal: Principal = OPEN
    # Called after a commit that wrote SearchParameter resources (with that commit's sequence
    # and those writes): registers them and starts the reindex (app/search_parameters.py).
    on_search_parameters: Callable[[int, list[Write]], Awaitable[None]] | None = None
