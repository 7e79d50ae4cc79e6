"""Compose `Services` from opened engines: the API's lifespan and `micdr load` share this."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from app.engines import Engines
from app.fhir.validate import resource_types, validate_resource
from app.ig.rules import IgRules
from app.interactions.context import Services
from app.settings import Settings
from workers.context import JobContext
from workers.inprocess import InProcessRunner

STALE_TRANSACTION_SECONDS = 60.0


async def _doorbell(
    settings: Settings, engines: Engines
) -> tuple[Callable[[int], Awaitable[None]], Callable[[], Awaitable[int]] | None]:
    """(on_commit, drain): in-process projection (embedded) or arq (full stack)."""
    assert engines.index is not None, "open_engines always opens an index"
    if settings.redis_url:
        from workers.arq_settings import ArqQueue

        queue = await ArqQueue.open(settings.redis_url)
        engines.closers.append(queue.close)
        return queue.wake, None
    runner = InProcessRunner(JobContext(settings, engines.store, engines.index, engines.registry))
    await runner.start()
    engines.closers.append(runner.stop)
    return runner.wake, runner.drain


async def build_services(settings: Settings, engines: Engines) -> Services:
    """Recover the store, start the projection doorbell, and hand out the ports."""
    await engines.store.recover(STALE_TRANSACTION_SECONDS)
    on_commit, drain = await _doorbell(settings, engines)
    return Services(
        settings=settings,
        store=engines.store,
        index=engines.index,
        registry=engines.registry,
        validate=validate_resource,
        resource_types=resource_types(),
        on_commit=on_commit,
        drain=drain,
        rules=IgRules.from_settings(settings) if settings.ig_mode else None,
    )
