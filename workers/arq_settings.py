"""The full stack's queue: arq on Redis (the only module importing arq or redis).

The API enqueues a projection job per commit with a job id derived from the commit sequence
(`keys.project_job_id`): arq refuses a second job with the same id while the first or its kept
result exists, so ids must not repeat for different work (STYLE.md, arq). Jobs are idempotent
and a cron reconciler projects whatever a lost job left behind: the commit log is the truth,
Redis only the doorbell.
"""

from __future__ import annotations

import logging
from typing import Any

from arq import create_pool, cron
from arq.connections import ArqRedis, RedisSettings
from arq.worker import Worker
from redis.exceptions import RedisError

from app.engines import StartupError, open_engines
from app.settings import Settings
from workers.context import JobContext
from workers.jobs import project_commits
from workers.keys import PROJECT_JOB, RECONCILE_JOB, project_job_id

log = logging.getLogger("micdr.worker")


async def _project(ctx: dict[str, Any]) -> int:
    return await project_commits(ctx["job"])


async def _reconcile(ctx: dict[str, Any]) -> int:
    job: JobContext = ctx["job"]
    forward, back = await job.store.recover(stale_after_seconds=60.0)
    if forward or back:
        log.info("recovered transactions: %d rolled forward, %d rolled back", forward, back)
    return await project_commits(job)


def _settings_for(url: str) -> RedisSettings:
    return RedisSettings.from_dsn(url)


async def ping_redis(url: str) -> None:
    try:
        pool = await create_pool(_settings_for(url), retry=0)
    except (RedisError, OSError) as exc:
        raise StartupError(f"Redis at {url} is unreachable: {exc}") from None
    await pool.aclose()


class ArqQueue:
    """The API side: rings the doorbell after a commit."""

    def __init__(self, pool: ArqRedis) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, url: str) -> ArqQueue:
        try:
            return cls(await create_pool(_settings_for(url)))
        except (RedisError, OSError) as exc:
            raise StartupError(f"Redis at {url} is unreachable: {exc}") from None

    async def wake(self, seq: int) -> None:
        try:
            await self._pool.enqueue_job(PROJECT_JOB, _job_id=project_job_id(seq))
        except (RedisError, OSError) as exc:
            # The commit is durable; the reconciler will project it. Never fail the write.
            log.warning("could not enqueue projection of commit %d: %s", seq, exc)

    async def close(self) -> None:
        await self._pool.aclose()


def build_worker(settings: Settings, burst: bool = False) -> Worker:
    assert settings.redis_url is not None

    async def startup(ctx: dict[str, Any]) -> None:
        engines = await open_engines(settings)
        assert engines.index is not None
        ctx["engines"] = engines
        ctx["job"] = JobContext(settings, engines.store, engines.index, engines.registry)

    async def shutdown(ctx: dict[str, Any]) -> None:
        if "engines" in ctx:
            await ctx["engines"].close()

    return Worker(
        functions=[_project_function()],
        cron_jobs=[
            cron(_reconcile, name=RECONCILE_JOB, second={0, 15, 30, 45}, run_at_startup=True)
        ],
        redis_settings=_settings_for(settings.redis_url),
        on_startup=startup,
        on_shutdown=shutdown,
        burst=burst,
        handle_signals=not burst,
        keep_result=60,
        max_jobs=4,
    )


def _project_function() -> Any:
    from arq.worker import func

    return func(_project, name=PROJECT_JOB, max_tries=10)


def run_worker(settings: Settings) -> None:
    worker = build_worker(settings)
    log.info("micdr worker started on %s", settings.redis_url)
    worker.run()
