"""The analysts' JSON API at `/analytics/api/<question>` (docs/index-schema.md, Imaging
episodes): parse the filters (`indexing.analytics.parse_query`), check the analyst scope, and
let the episode index answer with one aggregation in its engine. Read-only; behind the same
authentication as the FHIR API (app/http/security.py protects the path). Bad parameters are a
400 OperationOutcome naming the parameter; a caller without the scope gets 403."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from litestar import Request, Router, get
from litestar.types import ControllerRouterHandler

from app.fhir.outcome import FhirError
from app.http.viewer import page_routes
from app.interactions.context import Services
from app.security.scopes import ANALYTICS_SCOPE, OPEN, Principal, may_read_analytics
from app.settings import Settings
from indexing.alerts import parse_rules
from indexing.analytics import GROUPS, QUESTIONS, AnalyticsError, parse_query

ANALYTICS_PATH = "/analytics"
ANALYTICS_API = f"{ANALYTICS_PATH}/api"
ASSETS = Path(__file__).resolve().parent / "assets" / "analytics"

__all__ = ["ANALYTICS_API", "analytics_routes"]


def _services(request: Request[Any, Any, Any]) -> Services:
    services: Services = request.app.state.services
    principal: Principal = request.scope["state"].get("principal", OPEN)
    if not may_read_analytics(principal):
        raise FhirError.of(403, "forbidden", f"the analytics API needs the scope {ANALYTICS_SCOPE}")
    if services.episodes is None:
        raise FhirError.of(503, "transient", "this deployment keeps no episode index")
    return services


@get("/", name="analytics-questions")
async def questions(request: Request[Any, Any, Any]) -> dict[str, Any]:
    _services(request)
    return {"questions": [{"name": q, "groups": list(GROUPS[q])} for q in QUESTIONS]}


@get("/alerts", name="analytics-alerts")
async def alerts(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The episodes each turnaround rule fires for now (MICDR_ALERT_RULES)."""
    services = _services(request)
    assert services.episodes is not None
    if request.query_params:
        raise FhirError.of(400, "invalid", "the alerts take no parameters")
    rules = parse_rules(services.settings.alert_rules)
    now = datetime.now(UTC)
    return {
        "now": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "rules": [
            {"name": r.name, "statuses": list(r.statuses), "field": r.field, "hours": r.hours}
            for r in rules
        ],
        "alerts": await services.episodes.alerts(rules, now),
    }


@get("/{question:str}", name="analytics-answer")
async def answer(request: Request[Any, Any, Any]) -> dict[str, Any]:
    question = str(request.path_params["question"])
    services = _services(request)
    assert services.episodes is not None
    params: dict[str, str] = {}
    for name, values in request.query_params.dict().items():
        if len(values) != 1:
            raise FhirError.of(400, "invalid", f"parameter {name!r} given {len(values)} times")
        params[name] = values[0]
    try:
        query = parse_query(question, params, datetime.now(UTC))
    except AnalyticsError as err:
        status = 404 if question not in GROUPS else 400
        raise FhirError.of(status, "not-found" if status == 404 else "invalid", str(err)) from None
    rows = await services.episodes.answer(query)
    return {
        "question": question,
        "filters": {k: v for k, v in params.items()},
        "now": query.now,
        "rows": rows,
    }


@get("/config.json", name="analytics-config", sync_to_thread=False)
def config(request: Request[Any, Any, Any]) -> dict[str, Any]:
    settings: Settings = request.app.state.services.settings
    return {"api": ANALYTICS_API, "auth": {"required": settings.auth_configured}}


def analytics_routes() -> list[ControllerRouterHandler]:
    """The dashboard `/analytics/` (static files, assets/analytics/), its configuration and the
    JSON API it reads."""
    return [
        Router(path=ANALYTICS_API, route_handlers=[questions, alerts, answer]),
        *page_routes(ANALYTICS_PATH, ASSETS, "analytics", config),
    ]
