"""`micdr worker`: the arq worker of the full stack, each process assembled like the API's
(app/deploy/assemble.py) over arq's own Redis pool."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from app.deploy.assemble import assemble
from app.deploy.engines import open_engines
from app.settings import Settings
from workers import arq_settings
from workers.arq_settings import ArqQueue, Worker
from workers.context import JobContext

log = logging.getLogger("micdr.worker")


def build_worker(
    settings: Settings,
    burst: bool = False,
    handle_signals: bool | None = None,
    poll_delay: float = 0.5,
) -> Worker:
    """The arq worker for `settings` (options: workers/arq_settings.py `build_worker`)."""

    async def open_job(queue: ArqQueue) -> tuple[JobContext, Callable[[], Awaitable[None]]]:
        engines = await open_engines(settings)
        try:
            deployment = await assemble(settings, engines, worker_queue=queue)
        except BaseException:
            await engines.close()
            raise
        return deployment.job, deployment.close

    return arq_settings.build_worker(settings, open_job, burst, handle_signals, poll_delay)


def run_worker(settings: Settings) -> None:
    worker = build_worker(settings)
    log.info("micdr worker started on %s", settings.redis_url)
    worker.run()
