"""What a job is handed (built by app/deploy): the interactions' context a submission runs
with, which also holds the settings and the registry every job uses; the job's own, wider view
of the store (the commit log and the scans are the jobs'); the index; and who runs it."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field

from app.interactions.context import Services
from app.settings import Settings
from app.store.port import Store
from app.subscriptions.events import SubscriberCache
from indexing.engines.port import EpisodeIndex, SearchIndex
from indexing.registry import SearchParamRegistry


def worker_name() -> str:
    """Who holds a submission's lease: host, process and a per-start nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class JobContext:
    store: Store
    index: SearchIndex
    services: Services
    worker: str = field(default_factory=worker_name)
    # the subscriptions projection evaluates commits against (workers/subscriptions.py)
    subscribers: SubscriberCache = field(default_factory=SubscriberCache)
    # the analysts' episode index, kept by the projection job (None: not kept)
    episodes: EpisodeIndex | None = None

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def registry(self) -> SearchParamRegistry:
        return self.services.registry
