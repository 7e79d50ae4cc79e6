"""The full stack's `JobQueue` (workers/port.py): arq on Redis (the only module importing arq
or redis). `ArqQueue` is the port's adapter; `build_worker` the arq worker that runs its jobs,
over the job context app/deploy builds for it.

The API enqueues a projection job per commit with a job id derived from the commit sequence
(`QueueNames.project_job_id`): arq refuses a second job with the same id while the first or its kept
result exists, so ids must not repeat for different work (see arq's `enqueue_job`). Jobs are
idempotent and a cron reconciler projects whatever a lost job left behind: the commit log is the
truth, Redis only the doorbell.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

from arq import Retry, create_pool, cron
from arq.connections import ArqRedis, RedisSettings
from arq.constants import in_progress_key_prefix, retry_key_prefix
from arq.worker import Worker, func
from redis.asyncio import Redis
from redis.exceptions import LockError, RedisError

from app.search_parameters import ALL_TYPES
from app.settings import Settings
from app.store.port import Submission
from workers.context import JobContext
from workers.delivery import deliver_notifications
from workers.jobs import (
    deliver_callbacks,
    is_bulk,
    process_submission,
    project_in_turn,
    purge_submissions,
    reconcile_submissions,
    recover_transactions,
    reindex_types,
    retry_delay,
)
from workers.keys import (
    BULK_JOB,
    DELIVER_JOB,
    DELIVERY_TICK_JOB,
    PROCESS_JOB,
    PROJECT_JOB,
    RECONCILE_JOB,
    REINDEX_JOB,
    SUBMISSIONS_RECONCILE_JOB,
    QueueNames,
)
from workers.port import QueueUnavailable
from workers.subscriptions import notify_ahead

log = logging.getLogger("micdr.worker")

SUBMISSIONS_RECONCILE_SECONDS = 5
DELIVERY_TICK_SECONDS = 2  # retries, heartbeats, and what a lost ring left
PROJECT_TRIES = 10  # then the reconciler (every 15 s) projects what is left
REINDEX_TRIES = 20
BULK_TIMEOUT = 24 * 3600
AHEAD_OF_QUEUE = timedelta(hours=1)
CRON_HOLD_SECONDS = 30.0  # the longest a killed reconciler's run keeps the next ones out


class _Ahead(TypedDict):
    _defer_until: datetime
    _expires: timedelta


def _ahead() -> _Ahead:
    """Enqueue options that put a job before every job queued in the last hour: arq runs its
    queue in score order (the enqueue time), so a commit's projection and the notifications
    it rings would otherwise wait behind every asynchronous submission already queued (a
    backlog of minutes under async ingest). A score in the past needs its own expiry."""
    return {
        "_defer_until": datetime.now(UTC) - AHEAD_OF_QUEUE,
        "_expires": timedelta(days=1),
    }


def _retry_or_raise(ctx: dict[str, Any], tries: int, exc: Exception) -> None:
    """arq retries a job only when it raises `Retry`: any failure (the index or the store down)
    becomes one, with backoff, until `tries` runs; the last failure is raised as is."""
    attempt = int(ctx.get("job_try", 1))
    if attempt < tries:
        delay = retry_delay(attempt)
        log.warning(
            "%s failed (try %d), retrying in %.1fs: %s", ctx.get("job_id"), attempt, delay, exc
        )
        raise Retry(defer=delay) from exc
    raise exc


async def _project(ctx: dict[str, Any]) -> int:
    """A commit's job: its subscription events first (not behind the index), then projection."""
    try:
        await notify_ahead(ctx["job"])
        return await project_in_turn(ctx["job"])
    except Exception as exc:
        _retry_or_raise(ctx, PROJECT_TRIES, exc)
        raise


async def _reindex(ctx: dict[str, Any], types: list[str]) -> int:
    try:
        return (await reindex_types(ctx["job"], types)).written
    except Exception as exc:
        _retry_or_raise(ctx, REINDEX_TRIES, exc)
        raise


async def run_alone(
    redis: Redis, key: str, run: Callable[[], Awaitable[int]], hold: float = CRON_HOLD_SECONDS
) -> int | None:
    """Run a periodic job unless a run of it (by any worker) still holds `key`: None then.
    arq starts a cron run on schedule even while the last one is busy, and two reconcilers
    of one backlog do the same work twice. The hold is renewed while the run lasts, so a run
    killed mid-way keeps the next ones out for `hold` seconds at most, however long runs are."""
    lock = redis.lock(key, timeout=hold, blocking=False)
    if not await lock.acquire():
        return None

    async def renew() -> None:
        while True:
            await asyncio.sleep(hold / 3)
            with contextlib.suppress(LockError, RedisError):
                await lock.reacquire()

    renewing = asyncio.create_task(renew())
    try:
        return await run()
    finally:
        renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewing
        with contextlib.suppress(LockError):  # lost past `hold`: already free
            await lock.release()


async def _reconcile(ctx: dict[str, Any]) -> int | None:
    job: JobContext = ctx["job"]

    async def run() -> int:
        await recover_transactions(job)
        return await project_in_turn(job)

    return await run_alone(ctx["redis"], ctx["names"].running(RECONCILE_JOB), run)


async def _process(ctx: dict[str, Any], submission_id: str) -> str:
    """Run one asynchronous submission; a transient failure is queued again as the next attempt
    (a new job id), deferred by its backoff."""
    job: JobContext = ctx["job"]
    processed = await process_submission(job, submission_id)
    if processed.state == "queued":
        await enqueue_submission(
            ctx["redis"], ctx["names"], submission_id, processed.attempts, processed.not_before
        )
    return processed.state


async def _bulk(ctx: dict[str, Any], submission_id: str) -> str:
    """Run one bulk job, an export or an import (a submission run by `process_submission`),
    retried as above."""
    job: JobContext = ctx["job"]
    processed = await process_submission(job, submission_id)
    if processed.state == "queued":
        await enqueue_bulk(
            ctx["redis"], ctx["names"], submission_id, processed.attempts, processed.not_before
        )
    return processed.state


async def _deliver(ctx: dict[str, Any], subscriptions: list[str]) -> int:
    """Notifications for these subscriptions (rung by projection). Not retried: what fails
    is retried by the subscription's own backoff, in the delivery rounds."""
    return await deliver_notifications(ctx["job"], frozenset(subscriptions))


async def _delivery_round(ctx: dict[str, Any]) -> int:
    return await deliver_notifications(ctx["job"])


async def _reconcile_submissions(ctx: dict[str, Any]) -> int | None:
    """Re-enqueue what Redis lost (flushed, restarted) and what a dead worker held (lease
    expired); retry due callbacks; forget expired results."""
    job: JobContext = ctx["job"]

    async def run() -> int:
        now = time.time()
        due = await reconcile_submissions(job, now)
        await release_untaken(
            ctx["redis"], ctx["names"], due, ctx["held_for"], job.settings.async_lease_seconds
        )
        for sub in due:
            enqueue = enqueue_bulk if is_bulk(sub) else enqueue_submission
            await enqueue(ctx["redis"], ctx["names"], sub.id, sub.attempts, sub.not_before)
        await deliver_callbacks(job, now)
        await purge_submissions(job, now)
        return len(due)

    return await run_alone(ctx["redis"], ctx["names"].running(SUBMISSIONS_RECONCILE_JOB), run)


def _job_id(names: QueueNames, sub: Submission) -> str:
    job_id = names.bulk_job_id if is_bulk(sub) else names.submission_job_id
    return job_id(sub.id, sub.attempts)


async def release_untaken(
    redis: Redis, names: QueueNames, due: Sequence[Submission], held_for: float, grace: float
) -> list[str]:
    """Free the jobs of queued submissions that a worker took but never claimed; answers their
    ids. arq marks a job in progress when a worker takes it, for `held_for` seconds (its
    longest job timeout: a day, for bulk jobs), and no other worker takes it meanwhile. A
    worker claims its submission first thing, so a mark older than `grace` (the lease) on a
    submission still queued was left by a worker that died in between (kill -9): without this
    its submission would wait a day. Should the taker be alive after all, a second run of the
    job finds the submission claimed and skips it. arq counted the dead worker's take as the
    job's one try, so that count goes too: the next worker runs the job, not refuses it."""
    ids = [_job_id(names, sub) for sub in due if sub.state == "queued"]
    if not ids:
        return []
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.pttl(in_progress_key_prefix + job_id)
            left = await pipe.execute()
        # pttl is negative for a key that does not exist (or has no expiry: not arq's)
        stale = [i for i, ms in zip(ids, left, strict=True) if 0 < ms < (held_for - grace) * 1000]
        if stale:
            await redis.delete(
                *(in_progress_key_prefix + i for i in stale), *(retry_key_prefix + i for i in stale)
            )
    except (RedisError, OSError) as exc:
        log.warning("could not check the queue for jobs taken by stopped workers: %s", exc)
        return []
    for job_id in stale:
        log.warning("job %s was taken by a worker that stopped before it ran; released", job_id)
    return stale


async def enqueue_submission(
    pool: ArqRedis, names: QueueNames, submission_id: str, attempt: int, not_before: float = 0.0
) -> bool:
    """One job per attempt; arq refuses a second one with the same id while it exists."""
    job_id = names.submission_job_id(submission_id, attempt)
    return await _enqueue_attempt(pool, names.queue, PROCESS_JOB, job_id, submission_id, not_before)


async def enqueue_bulk(
    pool: ArqRedis, names: QueueNames, submission_id: str, attempt: int, not_before: float = 0.0
) -> bool:
    """One bulk job per attempt (its own job name: no time limit of a submission's)."""
    job_id = names.bulk_job_id(submission_id, attempt)
    return await _enqueue_attempt(pool, names.queue, BULK_JOB, job_id, submission_id, not_before)


async def _enqueue_attempt(
    pool: ArqRedis, queue: str, name: str, job_id: str, submission_id: str, not_before: float
) -> bool:
    defer = datetime.fromtimestamp(not_before, UTC) if not_before > time.time() else None
    try:
        job = await pool.enqueue_job(
            name, submission_id, _job_id=job_id, _defer_until=defer, _queue_name=queue
        )
    except (RedisError, OSError) as exc:
        # The submission is durable; the reconciler enqueues it once Redis answers again.
        log.warning("could not enqueue %s: %s", job_id, exc)
        return False
    return job is not None


def _settings_for(url: str) -> RedisSettings:
    return RedisSettings.from_dsn(url)


async def ping_redis(url: str) -> None:
    try:
        pool = await create_pool(_settings_for(url), retry=0)
    except (RedisError, OSError) as exc:
        raise QueueUnavailable(f"Redis at {url} is unreachable: {exc}") from None
    await pool.aclose()


class ArqQueue:
    """The `JobQueue` of the full stack: enqueues arq jobs, run by `micdr worker` processes. In
    the API it opens the process's one Redis pool; in a worker it borrows arq's own."""

    def __init__(self, pool: ArqRedis, names: QueueNames, owned: bool = True) -> None:
        self._pool = pool
        self._names = names
        self._owned = owned

    @classmethod
    async def open(cls, url: str, names: QueueNames) -> ArqQueue:
        try:
            pool = await create_pool(_settings_for(url), default_queue_name=names.queue)
        except (RedisError, OSError) as exc:
            raise QueueUnavailable(f"Redis at {url} is unreachable: {exc}") from None
        return cls(pool, names)

    async def wake(self, seq: int) -> None:
        try:
            await self._pool.enqueue_job(
                PROJECT_JOB,
                _job_id=self._names.project_job_id(seq),
                _queue_name=self._names.queue,
                **_ahead(),
            )
        except (RedisError, OSError) as exc:
            # The commit is durable; the reconciler will project it. Never fail the write.
            log.warning("could not enqueue projection of commit %d: %s", seq, exc)

    async def request_reindex(self, seq: int, types: Sequence[str]) -> None:
        """Queue the reindex a SearchParameter commit needs (`*` in `types`: every type)."""
        try:
            await self._pool.enqueue_job(
                REINDEX_JOB,
                sorted(types),
                _job_id=self._names.reindex_job_id(seq),
                _queue_name=self._names.queue,
            )
        except (RedisError, OSError) as exc:
            log.error("could not queue the reindex of %s (run `micdr reindex`): %s", types, exc)

    async def deliver(self, subscriptions: Sequence[str]) -> None:
        try:
            await self._pool.enqueue_job(
                DELIVER_JOB, list(subscriptions), _queue_name=self._names.queue, **_ahead()
            )
        except (RedisError, OSError) as exc:
            # The events are durable; the next delivery round sends them.
            log.warning("could not queue delivery to %s: %s", ", ".join(subscriptions), exc)

    async def rebuild_lost_index(self) -> None:
        """Queue the rebuild of every type's index (unless one is queued or running)."""
        try:
            await self._pool.enqueue_job(
                REINDEX_JOB,
                [ALL_TYPES],
                _job_id=self._names.lost_index_job_id,
                _queue_name=self._names.queue,
            )
        except (RedisError, OSError) as exc:
            log.error(
                "could not queue the rebuild of the lost index (run `micdr reindex`): %s", exc
            )

    async def submit(self, submission_id: str) -> None:
        """Rings the doorbell for a newly stored submission (its first attempt)."""
        await enqueue_submission(self._pool, self._names, submission_id, 0)

    async def bulk(self, submission_id: str) -> None:
        """Rings the doorbell for a newly stored bulk job (its first attempt)."""
        await enqueue_bulk(self._pool, self._names, submission_id, 0)

    async def drain(self) -> int:
        """The workers project, in their own processes: nothing to finish here."""
        return 0

    async def close(self) -> None:
        if self._owned:
            await self._pool.aclose()


# Builds the job context of a worker process over arq's Redis pool (app/deploy): answers the
# context and what closes it.
OpenJob = Callable[[ArqQueue], Awaitable[tuple[JobContext, Callable[[], Awaitable[None]]]]]


def build_worker(
    settings: Settings,
    open_job: OpenJob,
    burst: bool = False,
    handle_signals: bool | None = None,
    poll_delay: float = 0.5,
) -> Worker:
    """The arq worker; `handle_signals` defaults to `not burst` (tests running a long-lived
    worker inside their own event loop pass False). `poll_delay`: seconds between polls of an
    idle queue, the latency a new job may wait."""
    assert settings.redis_url is not None
    names = QueueNames.for_store(settings.mongo_database)

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["names"] = names
        ctx["held_for"] = worker.in_progress_timeout_s
        ctx["job"], ctx["close"] = await open_job(ArqQueue(ctx["redis"], names, owned=False))

    async def shutdown(ctx: dict[str, Any]) -> None:
        if "close" in ctx:
            await ctx["close"]()

    worker = Worker(
        functions=[
            func(_project, name=PROJECT_JOB, max_tries=PROJECT_TRIES),
            func(_reindex, name=REINDEX_JOB, max_tries=REINDEX_TRIES, timeout=3600, keep_result=0),
            # never retried by arq (the job stores its own retry); keep no result, so the
            # reconciler may enqueue the same attempt again once its job is gone
            func(_process, name=PROCESS_JOB, max_tries=1, keep_result=0, timeout=600),
            # an export checkpoints every batch; a day's limit only stops a stuck one
            func(_bulk, name=BULK_JOB, max_tries=1, keep_result=0, timeout=BULK_TIMEOUT),
            func(_deliver, name=DELIVER_JOB, max_tries=1, keep_result=0, timeout=600),
        ],
        cron_jobs=[
            cron(
                _reconcile,
                name=names.cron(RECONCILE_JOB),
                second={0, 15, 30, 45},
                run_at_startup=True,
            ),
            cron(
                _delivery_round,
                name=names.cron(DELIVERY_TICK_JOB),
                second=set(range(0, 60, DELIVERY_TICK_SECONDS)),
                run_at_startup=True,
                timeout=600,
            ),
            cron(
                _reconcile_submissions,
                name=names.cron(SUBMISSIONS_RECONCILE_JOB),
                second=set(range(0, 60, SUBMISSIONS_RECONCILE_SECONDS)),
                run_at_startup=True,
            ),
        ],
        redis_settings=_settings_for(settings.redis_url),
        queue_name=names.queue,
        on_startup=startup,
        on_shutdown=shutdown,
        burst=burst,
        handle_signals=not burst if handle_signals is None else handle_signals,
        keep_result=60,
        max_jobs=4,
        poll_delay=poll_delay,
    )
    return worker
