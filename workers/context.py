"""What a job is handed (built by app/deploy): the interactions' context a submission runs
with, which also holds the settings and the registry every job uses; the job's own, wider view
of the store (the commit log and the scans are the jobs'); the index; and who runs it."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx

from app.interactions.context import Services
from app.settings import Settings
from app.store.port import Store
from app.subscriptions.events import SubscriberCache
from indexing.engines.port import EpisodeIndex, SearchIndex
from indexing.registry import SearchParamRegistry


def worker_name() -> str:
    """Who holds a submission's lease: host, process and a per-start nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class EvaluatedAhead:
    """The commits this process evaluated for subscriptions before projecting them
    (workers/subscriptions.py `notify_ahead`), which projection therefore skips. In memory
    only: after a restart projection evaluates them again, and the event log records nothing
    twice. `lock` keeps the two evaluations of one process from interleaving, so each records
    a subscription's events in commit order."""

    after: int = 0  # the highest sequence evaluated ahead
    seqs: set[int] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def add(self, seqs: Iterable[int]) -> None:
        added = set(seqs)
        self.seqs |= added
        self.after = max(self.after, max(added, default=0))

    def forget(self, seqs: Iterable[int]) -> None:
        self.seqs.difference_update(seqs)


@dataclass
class Turn:
    """One job per process at a time drains the outbox for one purpose (workers/turns.py):
    arq runs four jobs of a worker at once, and during a backlog every commit's job would
    otherwise hold a slot repeating the same work. `again`: a job that left while another
    worked asks it to look once more before it ends."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    again: bool = False


@dataclass(frozen=True)
class JobContext:
    store: Store
    index: SearchIndex
    services: Services
    worker: str = field(default_factory=worker_name)
    # the subscriptions projection evaluates commits against (workers/subscriptions.py)
    subscribers: SubscriberCache = field(default_factory=SubscriberCache)
    ahead: EvaluatedAhead = field(default_factory=EvaluatedAhead)
    projecting: Turn = field(default_factory=Turn)  # projection of the outbox
    notifying: Turn = field(default_factory=Turn)  # its subscription events, ahead of projection
    # the client of every notification and callback this process sends: one, since each new
    # client builds an SSL context (17 % of the API's time under the benchmark's notifications)
    outbound: httpx.AsyncClient = field(
        default_factory=lambda: httpx.AsyncClient(follow_redirects=False)
    )
    # the analysts' episode index, kept by the projection job (None: not kept)
    episodes: EpisodeIndex | None = None

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def registry(self) -> SearchParamRegistry:
        return self.services.registry
