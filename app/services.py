"""Compose `Services` from opened engines: the API's lifespan and `micdr load` share this."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from app.engines import Engines
from app.fhir.validate import resource_types, validate_resource
from app.ig.rules import IgRules
from app.interactions.context import Services
from app.settings import Settings
from workers.context import JobContext
from workers.inprocess import InProcessRunner, InProcessSubmissions

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
    services = Services(
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
    return await _serve_submissions(settings, engines, services)


async def _serve_submissions(settings: Settings, engines: Engines, services: Services) -> Services:
    """Asynchronous submissions: arq jobs (full stack) or the in-process runner (embedded).
    Answers `services` with the doorbell rung after each submit (docs/implementation/async.md)."""
    if settings.redis_url:
        from workers.arq_settings import ArqQueue

        queue = await ArqQueue.open(settings.redis_url)
        engines.closers.append(queue.close)
        return replace(services, on_submit=queue.submit)
    if not settings.async_concurrency:
        return services  # accept only: another start of this data dir runs them
    assert engines.index is not None
    ctx = JobContext(settings, engines.store, engines.index, engines.registry, services=services)
    runner = InProcessSubmissions(ctx, settings.async_concurrency)
    await runner.start()
    engines.closers.append(runner.stop)
    return replace(services, on_submit=runner.wake)
