"""The embedded default's `JobQueue` (workers/port.py): background work in the API process.

No queue of its own is needed for projection: the store's commit log is the durable outbox, so a
restart simply drains whatever was left unindexed. `wake` is called after every commit; `drain`
runs until the outbox is empty (tests and `micdr load` use it, like arq's burst mode). Each wake
also starts a subscription evaluation of the new commits (`notify_ahead`) beside projection, so
that notifications do not wait for the index.
`InProcessQueue` puts the runners below behind the port.

Asynchronous submissions run here too (`InProcessSubmissions`), picked from the store's durable
`submissions`: a restart finds whatever was accepted and not finished.

A reindex asked for by a newly registered SearchParameter (`request_reindex`) runs as a second
background task, checkpointed in the data dir: a restart resumes it. So does the rebuild of an
index found empty at start-up while the store holds resources (`rebuild_lost_index`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from app.reindex import Checkpoint
from app.search_parameters import ALL_TYPES
from app.subscriptions.trigger import Criteria
from workers.context import JobContext
from workers.delivery import deliver_to, due_subscriptions
from workers.jobs import (
    deliver_callbacks,
    is_bulk,
    process_submission,
    project_commits,
    purge_submissions,
    reconcile_submissions,
    reindex_types,
)
from workers.subscriptions import notify_ahead

log = logging.getLogger("micdr.worker")

IDLE_POLL_SECONDS = 2.0
MAX_BACKOFF_SECONDS = 30.0
SUBMISSION_POLL_SECONDS = 0.5
SUBMISSION_CONCURRENCY = 8
PURGE_EVERY_SECONDS = 60.0
DELIVERY_POLL_SECONDS = 1.0  # retries and heartbeats between rings


class InProcessRunner:
    def __init__(self, ctx: JobContext, reindex_checkpoint: Path | None = None) -> None:
        self._ctx = ctx
        self._wakeup = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._checkpoint = reindex_checkpoint
        self._pending: set[str] = set()
        self._reindexing: asyncio.Task[None] | None = None
        self._notify_wakeup = asyncio.Event()
        self._notifying: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="micdr-inprocess-runner")
        self._notifying = asyncio.create_task(self._notify(), name="micdr-notify-ahead")
        saved = Checkpoint.load(self._checkpoint) if self._checkpoint is not None else None
        # a reindex the last process did not finish, or a rebuild asked for
        await self.request_reindex(saved.types if saved is not None else ())

    async def wake(self, seq: int) -> None:
        self._wakeup.set()
        self._notify_wakeup.set()

    def rebuild(self) -> None:
        """Before `start`: re-project every type from the store (the index lost its rows). The
        checkpoint is saved at once: the projection's first writes end the index's emptiness,
        and a restart must still finish the rebuild."""
        if self._checkpoint is not None:
            Checkpoint(types=[ALL_TYPES]).save(self._checkpoint)
        self._pending.add(ALL_TYPES)

    async def request_reindex(self, types: Iterable[str]) -> None:
        self._pending.update(types)
        if self._pending and (self._reindexing is None or self._reindexing.done()):
            self._reindexing = asyncio.create_task(self._reindex(), name="micdr-reindex")

    async def drain(self) -> int:
        """Project everything committed so far and wait for a running reindex to finish."""
        projected = await self._project()
        if self._reindexing is not None:
            await asyncio.shield(self._reindexing)
            await self._ctx.index.refresh()
        return projected

    async def _project(self) -> int:
        async with self._lock:
            return await project_commits(self._ctx)

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            await _wait(self._wakeup, IDLE_POLL_SECONDS)
            self._wakeup.clear()
            try:
                await self._project()
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the index is down: keep the backlog, retry later
                log.warning("projection failed, retrying in %.1fs: %s", backoff, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    async def _notify(self) -> None:
        """Subscription events of new commits, ahead of projection; a failure leaves them to
        projection, which evaluates whatever this did not."""
        while True:
            await self._notify_wakeup.wait()
            self._notify_wakeup.clear()
            try:
                await notify_ahead(self._ctx)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("subscription evaluation ahead of projection failed: %s", exc)

    async def _reindex(self) -> None:
        backoff = 0.5
        while self._pending:
            types = sorted(self._pending)
            self._pending.clear()
            try:
                await reindex_types(self._ctx, types, self._checkpoint)
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the index is down: the checkpoint keeps the place
                log.warning("reindex of %s failed, retrying in %.1fs: %s", types, backoff, exc)
                self._pending.update(types)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    async def stop(self) -> None:
        await _cancel(self._task, self._reindexing, self._notifying)
        self._task = self._reindexing = self._notifying = None


class InProcessSubmissions:
    """The embedded runner of asynchronous submissions: it picks them from the store (the
    durable queue), woken by `wake` on every submit and polling otherwise (a retry's backoff,
    a lost wake-up). Its first round after start takes over every submission left `running`:
    in the embedded deployment only this process runs them, so those belonged to a process that
    died. Each round also retries due callbacks; expired results are purged now and then."""

    def __init__(self, ctx: JobContext, concurrency: int = SUBMISSION_CONCURRENCY) -> None:
        self._ctx = ctx
        self._concurrency = concurrency
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Bulk jobs (exports, imports) run for long: each in a task of its own, so a round does
        # not wait for them and those started later run beside earlier ones (each yields
        # between batches).
        self._bulk: dict[str, asyncio.Task[None]] = {}
        self._bulk_gate = asyncio.Semaphore(concurrency)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="micdr-inprocess-submissions")

    def _start_bulk(self, submission_id: str) -> None:
        if submission_id in self._bulk:
            return

        async def run() -> None:
            async with self._bulk_gate:
                processed = await process_submission(self._ctx, submission_id)
            if processed.state == "queued":  # a retry: the next rounds pick it up
                self._wakeup.set()

        task = asyncio.create_task(run(), name=f"micdr-bulk-{submission_id}")
        self._bulk[submission_id] = task
        task.add_done_callback(lambda _: self._bulk.pop(submission_id, None))

    async def wake(self, submission_id: str) -> None:
        self._wakeup.set()

    async def run_due(self, now: float) -> int:
        """One round: every submission due by `now`, `concurrency` at a time; answers how many
        this round finished or re-queued."""
        due = await reconcile_submissions(self._ctx, now)
        gate = asyncio.Semaphore(self._concurrency)

        async def one(submission_id: str) -> bool:
            async with gate:
                return (await process_submission(self._ctx, submission_id)).state != "skipped"

        for sub in due:
            if is_bulk(sub):
                self._start_bulk(sub.id)
        ran = await asyncio.gather(*(one(s.id) for s in due if not is_bulk(s)))
        await deliver_callbacks(self._ctx, time.time())
        return sum(ran)

    async def _run(self) -> None:
        takeover, purged, backoff = True, 0.0, 0.5
        while True:
            self._wakeup.clear()
            try:
                # the clock is read at each round: one read before the wait would leave out the
                # submissions whose wake-up ended it
                while await self.run_due(math.inf if takeover else time.time()):
                    takeover = False
                takeover = False
                now = time.time()
                if now - purged > min(PURGE_EVERY_SECONDS, self._ctx.settings.async_result_ttl):
                    await purge_submissions(self._ctx, now)
                    purged = now
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store is unavailable: everything stays queued
                log.warning("submissions round failed, retrying in %.1fs: %s", backoff, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            await _wait(self._wakeup, SUBMISSION_POLL_SECONDS)

    async def stop(self) -> None:
        await _cancel(self._task, *self._bulk.values())
        self._task = None
        self._bulk.clear()


class InProcessDelivery:
    """The embedded sender of subscription notifications: a round after every ring, and every
    second for retries and heartbeats. A round starts a task per subscription that something
    is due for and that has none running, so a subscription busy with a stream of events or
    waiting on a slow endpoint holds no other back; a task's end starts a round, for what was
    rung while it ran. One process delivers a data dir; a lease left by one that died runs
    out after `async_lease_seconds`."""

    def __init__(self, ctx: JobContext) -> None:
        self._ctx = ctx
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sending: dict[str, asyncio.Task[None]] = {}

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="micdr-inprocess-delivery")

    def wake(self) -> None:
        self._wakeup.set()

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            self._wakeup.clear()
            try:
                criteria = Criteria(self._ctx.registry)
                for sid in await due_subscriptions(self._ctx, criteria):
                    if sid not in self._sending:
                        self._send(sid, criteria)
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store is down: the events wait in it
                log.warning("delivery round failed, retrying in %.1fs: %s", backoff, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            await _wait(self._wakeup, DELIVERY_POLL_SECONDS)

    def _send(self, sid: str, criteria: Criteria) -> None:
        async def send() -> None:
            try:
                await deliver_to(self._ctx, criteria, sid)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store is down: the next rounds try again
                log.warning("delivery to Subscription/%s failed: %s", sid, exc)

        def ended(_: asyncio.Task[None]) -> None:
            self._sending.pop(sid, None)
            self._wakeup.set()

        task = asyncio.create_task(send(), name=f"micdr-deliver-{sid}")
        self._sending[sid] = task
        task.add_done_callback(ended)

    async def stop(self) -> None:
        await _cancel(self._task, *self._sending.values())
        self._task = None


class InProcessQueue:
    """The embedded `JobQueue`. Built before the job context it runs with (that context's
    interactions ring this queue), so it runs nothing until `start`; asked before that, a
    rebuild or reindex waits for it and a wake-up is answered by the first round."""

    def __init__(self, reindex_checkpoint: Path | None, concurrency: int) -> None:
        self._checkpoint = reindex_checkpoint
        self._concurrency = concurrency
        self._rebuild = False
        self._projection: InProcessRunner | None = None
        self._submissions: InProcessSubmissions | None = None
        self._delivery: InProcessDelivery | None = None

    async def start(self, ctx: JobContext) -> None:
        """Run projection and reindexing, and submissions unless `concurrency` is 0 (accept
        only: another start of this data dir runs them)."""
        self._projection = InProcessRunner(ctx, reindex_checkpoint=self._checkpoint)
        if self._rebuild:
            self._projection.rebuild()
        await self._projection.start()
        if self._concurrency:
            self._submissions = InProcessSubmissions(ctx, self._concurrency)
            await self._submissions.start()
            self._delivery = InProcessDelivery(ctx)
            await self._delivery.start()

    async def wake(self, seq: int) -> None:
        if self._projection is not None:
            await self._projection.wake(seq)

    async def submit(self, submission_id: str) -> None:
        if self._submissions is not None:
            await self._submissions.wake(submission_id)

    async def bulk(self, submission_id: str) -> None:
        if self._submissions is not None:
            await self._submissions.wake(submission_id)

    async def deliver(self, subscriptions: Sequence[str]) -> None:
        if self._delivery is not None:
            self._delivery.wake()

    async def request_reindex(self, seq: int, types: Sequence[str]) -> None:
        assert self._projection is not None, "a SearchParameter commit needs a started queue"
        await self._projection.request_reindex(types)

    async def rebuild_lost_index(self) -> None:
        if self._projection is None:
            self._rebuild = True
        else:
            self._projection.rebuild()
            await self._projection.request_reindex(())

    async def drain(self) -> int:
        return await self._projection.drain() if self._projection is not None else 0

    async def close(self) -> None:
        if self._delivery is not None:
            await self._delivery.stop()
        if self._submissions is not None:
            await self._submissions.stop()
        if self._projection is not None:
            await self._projection.stop()
        self._projection = self._submissions = self._delivery = None


async def _wait(event: asyncio.Event, seconds: float) -> None:
    """Until `event` is set or `seconds` pass. `asyncio.timeout`, not `wait_for`: on Python 3.11
    `wait_for` can swallow a cancellation that races its inner future, and then `stop` waited
    forever for a loop that never saw it (an intermittent hang at shutdown)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


async def _cancel(*tasks: asyncio.Task[None] | None) -> None:
    """Cancel the runner's tasks and wait for them, re-cancelling any that keeps running."""
    for task in tasks:
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        if task is not None and task.done() and not task.cancelled():
            with contextlib.suppress(Exception):
                task.result()
