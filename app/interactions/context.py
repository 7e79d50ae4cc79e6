"""What every interaction is handed: the ports and the settings, built once by the lifespan."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from app.settings import Settings
from app.store.port import Store
from app.tx.plan import WriteRules
from indexing.engines.port import SearchIndex
from indexing.registry import SearchParamRegistry


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
