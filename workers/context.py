"""What a job is handed: the engines and the settings, nothing module-level."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field

from app.interactions.context import Services
from app.settings import Settings
from app.store.port import Store
from indexing.engines.port import SearchIndex
from indexing.registry import SearchParamRegistry


def worker_name() -> str:
    """Who holds a submission's lease: host, process and a per-start nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class JobContext:
    settings: Settings
    store: Store
    index: SearchIndex
    registry: SearchParamRegistry
    # The interactions' ports, for running asynchronous submissions (None: projection only).
    services: Services | None = None
    worker: str = field(default_factory=worker_name)
