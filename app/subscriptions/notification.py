"""Notification Bundles of topic-based subscriptions (Backport IG STU 1.1, R4 profiles) and the
request an R4 criteria subscription's rest-hook makes.

A topic notification is a `history` Bundle whose first entry is the subscription's status, a
`Parameters` resource (profile backport-subscription-status-r4): the subscription, its topic and
status, the notification type (`handshake`, `heartbeat`, `event-notification`,
`query-status`, `query-event`), the count of events since the subscription started and one
`notification-event` part per event carried, with its number, its time and, unless the content
is `empty`, its focus. With `id-only` each focus then has an entry with its full URL and
request but no resource; with `full-resource` the resource is there too. Event numbers are the
subscription's own counter, so a receiver drops a repeated delivery by number."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "NOTIFICATION_PROFILE",
    "STATUS_PROFILE",
    "Event",
    "Notification",
    "RestHookRequest",
    "notification_bundle",
    "rest_hook_request",
    "status_parameters",
]

Content = Literal["empty", "id-only", "full-resource"]
NotificationType = Literal[
    "handshake", "heartbeat", "event-notification", "query-status", "query-event"
]
_BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
STATUS_PROFILE = _BACKPORT + "backport-subscription-status-r4"
NOTIFICATION_PROFILE = _BACKPORT + "backport-subscription-notification-r4"

_METHOD = {"create": "POST", "update": "PUT", "delete": "DELETE"}
_STATUS = {"create": "201", "update": "200", "delete": "204"}


@dataclass(frozen=True)
class Event:
    """One event of one subscription: its number (1, 2, ... per subscription), when the change
    was committed, the focus and what happened to it. `resource` is the focus version as
    committed (None after a delete, or when it is not kept)."""

    number: int
    timestamp: str
    focus_type: str
    focus_id: str
    interaction: Literal["create", "update", "delete"]
    resource: Mapping[str, Any] | None = None
    # the reader may not see the focus: the event keeps its number and time, nothing more
    hidden: bool = False


@dataclass(frozen=True)
class Notification:
    """What is being told, about which subscription."""

    base: str  # the server's base URL, without a trailing slash
    subscription_id: str
    topic: str
    status: str  # the subscription's status: requested, active, error, off
    type: NotificationType
    events_since_start: int
    events: Sequence[Event] = ()
    error: str | None = None


def status_parameters(notification: Notification, content: Content) -> dict[str, Any]:
    """The subscription status resource (R4: `Parameters`) leading a notification, also the
    answer of `$status` (type `query-status`, no events)."""
    n = notification
    parameters: list[dict[str, Any]] = [
        {
            "name": "subscription",
            "valueReference": {"reference": f"{n.base}/Subscription/{n.subscription_id}"},
        },
        {"name": "topic", "valueCanonical": n.topic},
        {"name": "status", "valueCode": n.status},
        {"name": "type", "valueCode": n.type},
        {"name": "events-since-subscription-start", "valueString": str(n.events_since_start)},
    ]
    for event in n.events:
        parts: list[dict[str, Any]] = [
            {"name": "event-number", "valueString": str(event.number)},
            {"name": "timestamp", "valueInstant": event.timestamp},
        ]
        if content != "empty" and not event.hidden:
            parts.append({"name": "focus", "valueReference": {"reference": _full_url(n, event)}})
        parameters.append({"name": "notification-event", "part": parts})
    if n.error:
        parameters.append(
            {
                "name": "error",
                "valueCodeableConcept": {"text": n.error},
            }
        )
    return {
        "resourceType": "Parameters",
        "meta": {"profile": [STATUS_PROFILE]},
        "parameter": parameters,
    }


def notification_bundle(
    notification: Notification, content: Content, bundle_id: str, timestamp: str
) -> dict[str, Any]:
    """The `history` Bundle that is POSTed to a rest-hook endpoint (and answered by
    `$events`): the status entry, then one entry per event unless the content is `empty`."""
    n = notification
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"urn:uuid:{bundle_id}",
            "resource": status_parameters(n, content),
            "request": {
                "method": "GET",
                "url": f"{n.base}/Subscription/{n.subscription_id}/$status",
            },
            "response": {"status": "200"},
        }
    ]
    if content != "empty":
        for event in (e for e in n.events if not e.hidden):
            entry: dict[str, Any] = {"fullUrl": _full_url(n, event)}
            if content == "full-resource" and event.resource is not None:
                entry["resource"] = dict(event.resource)
            entry["request"] = {
                "method": _METHOD[event.interaction],
                "url": event.focus_type
                if event.interaction == "create"
                else f"{event.focus_type}/{event.focus_id}",
            }
            entry["response"] = {"status": _STATUS[event.interaction]}
            entries.append(entry)
    return {
        "resourceType": "Bundle",
        "id": bundle_id,
        "meta": {"profile": [NOTIFICATION_PROFILE]},
        "type": "history",
        "timestamp": timestamp,
        "entry": entries,
    }


def _full_url(notification: Notification, event: Event) -> str:
    return f"{notification.base}/{event.focus_type}/{event.focus_id}"


@dataclass(frozen=True)
class RestHookRequest:
    """One HTTP request of an R4 criteria subscription (subscription.html, rest-hook)."""

    method: Literal["POST", "PUT"]
    url: str
    body: Mapping[str, Any] | None


def rest_hook_request(endpoint: str, payload: str | None, event: Event) -> RestHookRequest:
    """Without `channel.payload` the endpoint gets an empty POST: something changed. With a
    payload the endpoint is a service base and the resource is PUT to `[endpoint]/Type/id`."""
    if not payload or event.resource is None:
        return RestHookRequest("POST", endpoint, None)
    url = f"{endpoint.rstrip('/')}/{event.focus_type}/{event.focus_id}"
    return RestHookRequest("PUT", url, dict(event.resource))
