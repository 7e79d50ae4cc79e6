"""The API process's lifespan: opens the deployment's engines (app/engines.py), recovers the
store, starts the projection doorbell, and puts `Services` on `app.state`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from litestar import Litestar

from app.engines import Engines, StartupError, open_engines
from app.fhir.validate import resource_types, validate_resource
from app.interactions.context import Services
from app.settings import Settings
from app.store.port import StoreError
from workers.context import JobContext
from workers.inprocess import InProcessRunner

STALE_TRANSACTION_SECONDS = 60.0

OpenEngines = Callable[[Settings], Awaitable[Engines]]


async def _doorbell(
    settings: Settings, engines: Engines
) -> tuple[Callable[[int], Awaitable[None]], Callable[[], Awaitable[int]] | None]:
    """(on_commit, drain): in-process projection (embedded) or arq (full stack)."""
    if engines.index is None:  # TEMPORARY until the embedded index engine lands (same session)
        return _nothing, None
    if settings.redis_url:
        from workers.arq_settings import ArqQueue

        queue = await ArqQueue.open(settings.redis_url)
        engines.closers.append(queue.close)
        return queue.wake, None
    runner = InProcessRunner(JobContext(settings, engines.store, engines.index, engines.registry))
    await runner.start()
    engines.closers.append(runner.stop)
    return runner.wake, runner.drain


async def _nothing(seq: int) -> None:
    return None


def lifespan(
    settings: Settings, open_with: OpenEngines = open_engines
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def run(app: Litestar) -> AsyncIterator[None]:
        engines = await open_with(settings)
        try:
            try:
                await engines.store.recover(STALE_TRANSACTION_SECONDS)
            except StoreError as exc:
                raise StartupError(f"recovery failed: {exc}") from None
            on_commit, drain = await _doorbell(settings, engines)
            app.state.services = Services(
                settings=settings,
                store=engines.store,
                index=engines.index,
                registry=engines.registry,
                validate=validate_resource,
                resource_types=resource_types(),
                on_commit=on_commit,
                drain=drain,
            )
            yield
        finally:
            await engines.close()

    return run
