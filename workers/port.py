"""The job queue port: what the API and the jobs ask of whatever runs background work.

Two adapters: `workers/inprocess.py` (embedded: tasks in the API process, the store as the
durable queue) and `workers/arq_queue.py` (full stack: arq jobs on Redis, run by `micdr worker`).
Both are doorbells only: the commit log and the stored submissions are the truth, so a lost
ring delays work but never loses it (a reconciler or the next start finds it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class JobQueue(Protocol):
    async def wake(self, seq: int) -> None:
        """After commit `seq`: project it (never blocks on the projection, never raises)."""
        ...

    async def submit(self, submission_id: str) -> None:
        """A new asynchronous submission is stored: run it."""
        ...

    async def bulk(self, submission_id: str) -> None:
        """A new bulk job is stored, an export or an import (a submission, workers/export.py,
        workers/bulk_import.py): run it. Run apart from short submissions: one may take
        hours."""
        ...

    async def deliver(self, subscriptions: Sequence[str]) -> None:
        """These subscriptions have new events, or were written: send what is due (never
        raises; a periodic round delivers what a lost ring left, and retries and heartbeats)."""
        ...

    async def request_reindex(self, seq: int, types: Sequence[str]) -> None:
        """Commit `seq` registered SearchParameters: rebuild the index of `types` (`*`: all)."""
        ...

    async def rebuild_lost_index(self) -> None:
        """The index was found empty while the store is not: rebuild every type."""
        ...

    async def drain(self) -> int:
        """Finish, in this process, the projection and reindexing asked for so far; answers the
        resources projected. Where other processes do the work (arq) there is nothing to finish
        here: 0 at once."""
        ...

    async def close(self) -> None: ...


class QueueUnavailable(Exception):
    """The queue's broker cannot be reached at start-up; the message is one line."""
