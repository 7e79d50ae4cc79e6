"""subscription-status: `GET [base]/Subscription/[id]/$status` (Subscriptions R5 Backport IG
STU 1.1, OperationDefinition backport-subscription-status): a `searchset` Bundle holding the
subscription's status, an R4 `Parameters` of profile backport-subscription-status-r4 with
type `query-status`. Defined for topic-based subscriptions; an R4 criteria subscription has no
topic to report (422). The event count is the subscription's events so far (its event log,
docs/implementation/subscriptions.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.fhir.bundles import bundle
from app.fhir.clock import utc_now
from app.fhir.outcome import FhirError
from app.interactions._access import require, visible
from app.interactions._respond import gone, not_found
from app.interactions.context import Services
from app.interactions.result import FhirRequest, FhirResponse
from app.subscriptions.notification import (
    Event,
    Notification,
    NotificationType,
    status_parameters,
)
from app.subscriptions.subscription import SUBSCRIPTION_PROFILE

SUBSCRIPTION = "Subscription"


async def topic_subscription(
    services: Services, request: FhirRequest
) -> tuple[str, dict[str, Any]]:
    """The id and current resource of the topic-based Subscription the URL names, or the
    FhirError saying why not (another type, not found, deleted, an R4 criteria one)."""
    assert request.id is not None
    if request.type != SUBSCRIPTION:
        raise FhirError.of(
            404, "not-supported", f"this is an operation on Subscription, not {request.type}"
        )
    access = require(services, SUBSCRIPTION, "r")
    stored = await services.store.read(SUBSCRIPTION, request.id)
    if stored is None or (access.kind != "all" and not visible(services, access, stored)):
        raise not_found(SUBSCRIPTION, request.id)
    if stored.deleted or stored.resource is None:
        raise gone(stored, request.base)
    resource = stored.resource
    criteria = str(resource.get("criteria", ""))
    profiles = (resource.get("meta") or {}).get("profile") or []
    if SUBSCRIPTION_PROFILE not in profiles and criteria not in services.topics:
        raise FhirError.of(
            422,
            "not-supported",
            f"Subscription/{request.id} is an R4 criteria subscription: this operation reports "
            "on topic-based subscriptions (Subscriptions Backport IG)",
        )
    return request.id, resource


async def answer_of(
    services: Services,
    base: str,
    subscription: tuple[str, Mapping[str, Any]],
    kind: NotificationType,
    events: Sequence[Event] = (),
) -> Notification:
    """What `$status` (`query-status`) or `$events` (`query-event`, with `events`) says of a
    Subscription (its id and current resource): topic, status, error, event count as of now."""
    subscription_id, resource = subscription
    error = resource.get("error")
    return Notification(
        base=base,
        subscription_id=subscription_id,
        topic=str(resource.get("criteria")),
        status=str(resource.get("status")),
        type=kind,
        events_since_start=await services.store.events_since_start(subscription_id),
        events=tuple(events),
        error=error if isinstance(error, str) else None,
    )


async def subscription_status(services: Services, request: FhirRequest) -> FhirResponse:
    subscription = await topic_subscription(services, request)
    subscription_id = subscription[0]
    status = await answer_of(services, request.base, subscription, "query-status")
    entry = {
        "fullUrl": f"{request.base}/Subscription/{subscription_id}/$status",
        "resource": status_parameters(status, "id-only"),
        "search": {"mode": "match"},
    }
    return FhirResponse(200, bundle("searchset", [entry], utc_now(), total=1))
