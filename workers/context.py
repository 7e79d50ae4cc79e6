"""What a job is handed: the engines and the settings, nothing module-level."""

from __future__ import annotations

from dataclasses import dataclass

from app.settings import Settings
from app.store.port import Store
from indexing.engines.port import SearchIndex
from indexing.registry import SearchParamRegistry


@dataclass(frozen=True)
class JobContext:
    settings: Settings
    store: Store
    index: SearchIndex
    registry: SearchParamRegistry
