"""The API's entry point: `create_app(settings)`, the Litestar app whose lifespan assembles the
process through app/deploy and puts the interactions' context on `app.state`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime

from litestar import Litestar, Request, get

from app.deploy.assemble import Deployment, OpenEngines, deploy
from app.deploy.engines import UNAVAILABLE, open_engines
from app.fhir.clock import format_instant
from app.http.analytics import analytics_routes
from app.http.errors import handlers
from app.http.openapi import openapi
from app.http.routes import fhir_routes
from app.http.security import SecurityLayer, add_request_id
from app.http.viewer import viewer_routes
from app.interactions.context import RequestStore
from app.settings import Settings
from app.subscriptions.health import Backlog, delivery_summary
from indexing.engines.port import EpisodeStatus


@get("/health", name="health")
async def health(request: Request) -> dict[str, object]:
    deployment: Deployment = request.app.state.deployment
    services = deployment.services
    store = await services.store.status()
    lag_since = await deployment.engines.store.oldest_unindexed()
    index = await services.index.status() if services.index is not None else None
    submissions = await services.store.submission_stats()
    episodes = await services.episodes.status() if services.episodes is not None else None
    up = store.up and (index is None or index.up)
    lag = lag_seconds(lag_since)
    return {
        "status": "up" if up else "down",
        "deployment": services.settings.deployment,
        "security": security_summary(services.settings),
        "store": {"up": store.up, "version": store.version, "detail": store.detail},
        "index": {
            "up": bool(index and index.up),
            "version": index.version if index else "",
            "oldest_unindexed_commit": lag_since,
            "lag_seconds": lag,
        },
        "subscriptions": await subscription_health(services.store),
        "episodes": episode_health(episodes, lag_since, lag),
        "submissions": {
            "queue_depth": submissions.queued,
            "running": submissions.running,
            "oldest_waiting": (
                format_instant(datetime.fromtimestamp(submissions.oldest_waiting, UTC))
                if submissions.oldest_waiting is not None
                else None
            ),
            "oldest_waiting_seconds": round(max(0.0, time.time() - submissions.oldest_waiting), 3)
            if submissions.oldest_waiting is not None
            else 0.0,
            "failed": submissions.failed,
            "dead": submissions.dead,
            "callbacks_failed": submissions.callbacks_failed,
        },
    }


async def subscription_health(store: RequestStore) -> Mapping[str, object]:
    """Statuses of the subscriptions delivery has seen, and the live ones' backlog."""
    states = await store.deliveries()
    current = await store.read_many([("Subscription", s.subscription) for s in states])
    status = {c.id: str(c.resource.get("status")) for c in current if c.resource is not None}
    backlogs = []
    for state in states:
        if status.get(state.subscription) != "active":
            continue
        count = await store.events_since_start(state.subscription) - state.delivered
        first = await store.subscription_events(state.subscription, state.delivered + 1, None, 1)
        backlogs.append(
            Backlog(max(count, 0), first[0].timestamp if first else None, state.failures > 0)
        )
    return delivery_summary(list(status.values()), backlogs, datetime.now(UTC))


def security_summary(settings: Settings) -> dict[str, object]:
    """What /health says about access control (docs/security.md)."""
    if settings.auth_configured:
        return {
            "authentication": "oauth2-bearer-jwt",
            "issuer": settings.auth_issuer,
            "rate_limit_per_second": settings.rate_limit,
        }
    return {
        "authentication": "none",
        "warning": "no authentication configured: open access; serve on loopback only",
        "rate_limit_per_second": settings.rate_limit,
    }


def episode_health(
    status: EpisodeStatus | None, lag_since: str | None, lag: float
) -> dict[str, object] | None:
    """What /health says of the analysts' episode index (None: the deployment keeps none).

    The projection job writes a batch's episodes before it marks the batch indexed (decision
    0008), so the episodes are behind by exactly the projection's lag: its oldest unindexed
    commit. They can be further behind only while a rebuild from the store runs (`micdr
    reindex`, a lost index): it empties them first, so `rebuilding_since` is set until it ends."""
    if status is None:
        return None
    return {
        "up": status.up,
        "oldest_unreflected_commit": lag_since,
        "lag_seconds": lag,
        "rebuilding_since": status.rebuilding_since,
        "rebuilding_seconds": lag_seconds(status.rebuilding_since),
    }


def lag_seconds(oldest: str | None) -> float:
    """Seconds since the instant `oldest` (the oldest committed-but-unindexed transaction, the
    start of a rebuild); 0 when there is none."""
    if oldest is None:
        return 0.0
    then = datetime.fromisoformat(oldest.replace("Z", "+00:00"))
    return round(max(0.0, (datetime.now(UTC) - then).total_seconds()), 3)


def lifespan(
    settings: Settings, open_with: OpenEngines
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def run(app: Litestar) -> AsyncIterator[None]:
        deployment = await deploy(settings, open_with)
        app.state.deployment = deployment
        app.state.services = deployment.services
        try:
            yield
        finally:
            await deployment.close()

    return run


def create_app(settings: Settings, open_with: OpenEngines = open_engines) -> Litestar:
    """The app for `settings`; `open_engines` lets tests hand in engines (e.g. mongomock)."""
    layer = SecurityLayer(settings)
    return Litestar(
        route_handlers=[
            health,
            openapi,
            *fhir_routes(settings.base_path),
            *viewer_routes(),
            *analytics_routes(),
        ],
        lifespan=[lifespan(settings, open_with)],
        exception_handlers=handlers(UNAVAILABLE),  # type: ignore[arg-type]
        middleware=[layer.middleware],
        before_send=[add_request_id],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=None,
        debug=False,
    )
