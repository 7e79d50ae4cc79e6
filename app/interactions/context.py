"""What every interaction is handed: the ports and the settings, built once by the lifespan."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from app.settings import Settings
from app.store.port import CommitLog, ResourceStore


class Store(ResourceStore, CommitLog, Protocol):
    """Both store ports; every adapter implements the two."""


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: Store
    validate: Callable[[dict[str, Any]], None]
    resource_types: frozenset[str]
    # Called with the commit sequence after every commit: wakes the indexer (never blocks on it).
    on_commit: Callable[[int], Awaitable[None]]
