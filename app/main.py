"""The composition root: `create_app(settings)` is the only place that picks adapters."""

from __future__ import annotations

from litestar import Litestar, Request, get

from app.http.errors import HANDLERS
from app.http.routes import fhir_routes
from app.lifespan import OpenEngines, lifespan, open_store
from app.settings import Settings


@get("/health", name="health")
async def health(request: Request) -> dict[str, object]:
    services = request.app.state.services
    store = await services.store.status()
    lag_since = await services.store.oldest_unindexed()
    return {
        "status": "up" if store.up else "down",
        "deployment": services.settings.deployment,
        "store": {"up": store.up, "version": store.version, "detail": store.detail},
        "index": {"oldest_unindexed_commit": lag_since},
    }


def create_app(settings: Settings, open_engines: OpenEngines = open_store) -> Litestar:
    """The app for `settings`; `open_engines` lets tests hand in engines (e.g. mongomock)."""
    return Litestar(
        route_handlers=[health, *fhir_routes(settings.base_path)],
        lifespan=[lifespan(settings, open_engines)],
        exception_handlers=HANDLERS,  # type: ignore[arg-type]
        request_max_body_size=settings.max_body_bytes,
        openapi_config=None,
        debug=False,
    )
