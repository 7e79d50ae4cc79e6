"""The embedded default's runner: projects the commit log in the API process.

No queue of its own is needed for projection: the store's commit log is the durable outbox, so a
restart simply drains whatever was left unindexed. `wake` is called after every commit; `drain`
runs until the outbox is empty (tests and `micdr load` use it, like arq's burst mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from workers.context import JobContext
from workers.jobs import project_commits

log = logging.getLogger("micdr.worker")

IDLE_POLL_SECONDS = 2.0
MAX_BACKOFF_SECONDS = 30.0


class InProcessRunner:
    def __init__(self, ctx: JobContext) -> None:
        self._ctx = ctx
        self._wakeup = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="micdr-inprocess-runner")

    async def wake(self, seq: int) -> None:
        self._wakeup.set()

    async def drain(self) -> int:
        async with self._lock:
            projected = await project_commits(self._ctx)
        await self._ctx.index.refresh()
        return projected

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), IDLE_POLL_SECONDS)
            self._wakeup.clear()
            try:
                await self.drain()
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the index is down: keep the backlog, retry later
                log.warning("projection failed, retrying in %.1fs: %s", backoff, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
