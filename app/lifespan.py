"""The API process's lifespan: opens the deployment's engines (app/engines.py), builds the
`Services` (app/services.py) and puts them on `app.state`; closes everything on shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from litestar import Litestar

from app.engines import Engines, StartupError, open_engines
from app.services import build_services
from app.settings import Settings
from app.store.port import StoreError

OpenEngines = Callable[[Settings], Awaitable[Engines]]


def lifespan(
    settings: Settings, open_with: OpenEngines = open_engines
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def run(app: Litestar) -> AsyncIterator[None]:
        engines = await open_with(settings)
        try:
            try:
                app.state.services = await build_services(settings, engines)
            except StoreError as exc:
                raise StartupError(f"recovery failed: {exc}") from None
            yield
        finally:
            await engines.close()

    return run
