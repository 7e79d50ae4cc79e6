"""app/subscriptions/notification.py: notification Bundles exactly as the Backport IG's R4
profiles shape them (backport-subscription-notification-r4, backport-subscription-status-r4),
and the R4 rest-hook request (subscription.html)."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from app.fhir.validate import validate_resource
from app.subscriptions.notification import (
    NOTIFICATION_PROFILE,
    STATUS_PROFILE,
    Event,
    Notification,
    RestHookRequest,
    notification_bundle,
    rest_hook_request,
    status_parameters,
)

BASE = "https://cdr.example/fhir"
TOPIC = "http://micdr.org/fhir/SubscriptionTopic/imaging-report"
REPORT = {
    "resourceType": "DiagnosticReport",
    "id": "r1",
    "status": "amended",
    "code": {"text": "XR chest"},
}
EVENTS = (
    Event(4, "2026-01-01T10:00:00Z", "DiagnosticReport", "r1", "update", REPORT),
    Event(5, "2026-01-01T10:00:01Z", "DiagnosticReport", "r2", "create", None),
)
NOTE = Notification(BASE, "s1", TOPIC, "active", "event-notification", 5, EVENTS)

STATUS_HEAD: list[dict[str, Any]] = [
    {"name": "subscription", "valueReference": {"reference": f"{BASE}/Subscription/s1"}},
    {"name": "topic", "valueCanonical": TOPIC},
    {"name": "status", "valueCode": "active"},
    {"name": "type", "valueCode": "event-notification"},
    {"name": "events-since-subscription-start", "valueString": "5"},
]
STATUS_ENTRY_HEAD = {
    "fullUrl": "urn:uuid:b1",
    "request": {"method": "GET", "url": f"{BASE}/Subscription/s1/$status"},
    "response": {"status": "200"},
}


def _event_parts(number: str, timestamp: str, focus: str | None) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [
        {"name": "event-number", "valueString": number},
        {"name": "timestamp", "valueInstant": timestamp},
    ]
    if focus is not None:
        parts.append({"name": "focus", "valueReference": {"reference": focus}})
    return {"name": "notification-event", "part": parts}


def _strict(resource: dict[str, Any]) -> None:
    validate_resource(resource)
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def test_a_full_resource_notification_carries_the_status_then_each_focus() -> None:
    bundle = notification_bundle(NOTE, "full-resource", "b1", "2026-01-01T10:00:02Z")
    assert bundle == {
        "resourceType": "Bundle",
        "id": "b1",
        "meta": {"profile": [NOTIFICATION_PROFILE]},
        "type": "history",
        "timestamp": "2026-01-01T10:00:02Z",
        "entry": [
            {
                **STATUS_ENTRY_HEAD,
                "resource": {
                    "resourceType": "Parameters",
                    "meta": {"profile": [STATUS_PROFILE]},
                    "parameter": [
                        *STATUS_HEAD,
                        _event_parts("4", "2026-01-01T10:00:00Z", f"{BASE}/DiagnosticReport/r1"),
                        _event_parts("5", "2026-01-01T10:00:01Z", f"{BASE}/DiagnosticReport/r2"),
                    ],
                },
            },
            {
                "fullUrl": f"{BASE}/DiagnosticReport/r1",
                "resource": REPORT,
                "request": {"method": "PUT", "url": "DiagnosticReport/r1"},
                "response": {"status": "200"},
            },
            {  # the resource of this event is not at hand: the entry names it only
                "fullUrl": f"{BASE}/DiagnosticReport/r2",
                "request": {"method": "POST", "url": "DiagnosticReport"},
                "response": {"status": "201"},
            },
        ],
    }
    _strict(bundle)


def test_an_id_only_notification_names_each_focus_without_its_resource() -> None:
    bundle = notification_bundle(NOTE, "id-only", "b1", "2026-01-01T10:00:02Z")
    assert [e["fullUrl"] for e in bundle["entry"]] == [
        "urn:uuid:b1",
        f"{BASE}/DiagnosticReport/r1",
        f"{BASE}/DiagnosticReport/r2",
    ]
    assert ["resource" in e for e in bundle["entry"]] == [True, False, False]
    _strict(bundle)


def test_an_empty_notification_has_the_status_alone_and_no_focus() -> None:
    bundle = notification_bundle(NOTE, "empty", "b1", "2026-01-01T10:00:02Z")
    assert len(bundle["entry"]) == 1
    assert bundle["entry"][0]["resource"]["parameter"] == [
        *STATUS_HEAD,
        _event_parts("4", "2026-01-01T10:00:00Z", None),
        _event_parts("5", "2026-01-01T10:00:01Z", None),
    ]
    _strict(bundle)


@pytest.mark.parametrize("kind", ["handshake", "heartbeat"])
def test_a_handshake_or_heartbeat_carries_no_event(kind: Any) -> None:
    note = Notification(BASE, "s1", TOPIC, "requested", kind, 0)
    bundle = notification_bundle(note, "id-only", "b2", "2026-01-01T10:00:02Z")
    assert bundle["entry"] == [
        {
            "fullUrl": "urn:uuid:b2",
            "resource": {
                "resourceType": "Parameters",
                "meta": {"profile": [STATUS_PROFILE]},
                "parameter": [
                    {
                        "name": "subscription",
                        "valueReference": {"reference": f"{BASE}/Subscription/s1"},
                    },
                    {"name": "topic", "valueCanonical": TOPIC},
                    {"name": "status", "valueCode": "requested"},
                    {"name": "type", "valueCode": kind},
                    {"name": "events-since-subscription-start", "valueString": "0"},
                ],
            },
            "request": {"method": "GET", "url": f"{BASE}/Subscription/s1/$status"},
            "response": {"status": "200"},
        }
    ]
    _strict(bundle)


def test_a_status_in_error_says_why() -> None:
    note = Notification(BASE, "s1", TOPIC, "error", "query-status", 7, error="HTTP 503 x5")
    parameters = status_parameters(note, "id-only")
    assert parameters["parameter"][-1] == {
        "name": "error",
        "valueCodeableConcept": {"text": "HTTP 503 x5"},
    }
    _strict(parameters)


def test_a_delete_event_is_a_delete_entry() -> None:
    event = Event(1, "2026-01-01T10:00:00Z", "DiagnosticReport", "r1", "delete")
    note = Notification(BASE, "s1", TOPIC, "active", "event-notification", 1, (event,))
    entry = notification_bundle(note, "full-resource", "b3", "2026-01-01T10:00:00Z")["entry"][1]
    assert entry == {
        "fullUrl": f"{BASE}/DiagnosticReport/r1",
        "request": {"method": "DELETE", "url": "DiagnosticReport/r1"},
        "response": {"status": "204"},
    }


def test_an_r4_rest_hook_without_payload_is_an_empty_post() -> None:
    assert rest_hook_request("https://rx.example/hook", None, EVENTS[0]) == RestHookRequest(
        "POST", "https://rx.example/hook", None
    )


def test_an_r4_rest_hook_with_payload_puts_the_resource_under_the_endpoint() -> None:
    request = rest_hook_request("https://rx.example/fhir/", "application/fhir+json", EVENTS[0])
    assert request == RestHookRequest("PUT", "https://rx.example/fhir/DiagnosticReport/r1", REPORT)


def test_a_hidden_focus_keeps_its_number_and_time_only() -> None:
    hidden = Event(6, "2026-01-01T10:00:03Z", "DiagnosticReport", "r9", "update", REPORT, True)
    note = Notification(BASE, "s1", TOPIC, "active", "query-event", 6, (EVENTS[0], hidden))
    bundle = notification_bundle(note, "full-resource", "b4", "2026-01-01T10:00:04Z")
    assert [e["fullUrl"] for e in bundle["entry"]] == ["urn:uuid:b4", f"{BASE}/DiagnosticReport/r1"]
    assert bundle["entry"][0]["resource"]["parameter"][-1] == _event_parts(
        "6", "2026-01-01T10:00:03Z", None
    )
    assert "r9" not in repr(bundle)
    _strict(bundle)
