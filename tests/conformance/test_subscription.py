"""Subscription resources (R4 subscription.html; Subscriptions R5 Backport IG STU 1.1, R4
profile; issue 17), as far as they are written and read: the server refuses a Subscription it
could not honour, with the element at fault, an endpoint into an internal network included;
`channel.header` values never come back in a read, a search or the history; a run-time topic is
a `Basic` resource with the cross-version SubscriptionTopic profile, checked when written."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.conformance._clients import plain_client
from tests.conformance._receiver import Receiver, receiver
from tests.conformance.conftest import indexed

__all__ = ["plain_client"]

BP = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
TOPIC_EXT = "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic."
SECRET = "Bearer s3cret-token"


def subscription(**changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "new imaging reports for my patient",
        "criteria": "DiagnosticReport?patient=Patient/p1&status=final",
        "channel": {
            "type": "rest-hook",
            "endpoint": "https://receiver.example.org/hook",
            "payload": "application/fhir+json",
            "header": [f"Authorization: {SECRET}"],
        },
    }
    resource.update(changes)
    return resource


def topic_subscription(
    topic: str, *filters: str, endpoint: str = "https://receiver.example.org/hook"
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "meta": {"profile": [BP + "backport-subscription"]},
        "status": "requested",
        "reason": "reports",
        "criteria": topic,
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint,
            "payload": "application/fhir+json",
            "_payload": {
                "extension": [{"url": BP + "backport-payload-content", "valueCode": "id-only"}]
            },
        },
    }
    if filters:
        resource["_criteria"] = {
            "extension": [
                {"url": BP + "backport-filter-criteria", "valueString": f} for f in filters
            ]
        }
    return resource


@pytest.fixture
async def hook() -> AsyncIterator[Receiver]:
    """A loopback rest-hook endpoint: the subscriptions sent to it pass their handshake."""
    async with receiver() as endpoint:
        yield endpoint


def outcome(response: Any) -> tuple[int, str, list[str], str]:
    issue = response.json()["issue"][0]
    return response.status_code, issue["code"], issue.get("expression", []), issue["diagnostics"]


async def test_header_values_never_come_back(plain_client: AsyncTestClient[Any]) -> None:
    created = await plain_client.post("/fhir/Subscription", json=subscription())
    assert created.status_code == 201, created.text
    assert created.json()["channel"]["header"] == ["Authorization: [redacted]"]
    sid = created.json()["id"]
    read = await plain_client.get(f"/fhir/Subscription/{sid}")
    history = await plain_client.get(f"/fhir/Subscription/{sid}/_history")
    vread = await plain_client.get(f"/fhir/Subscription/{sid}/_history/1")
    for response in (created, read, history, vread):
        assert response.status_code in (200, 201)
        assert SECRET not in response.text
    assert read.json()["channel"]["header"] == ["Authorization: [redacted]"]
    assert history.json()["entry"][0]["resource"]["channel"]["header"] == [
        "Authorization: [redacted]"
    ]


async def test_the_placeholder_a_read_shows_is_not_a_header_value(
    plain_client: AsyncTestClient[Any],
) -> None:
    sid = (await plain_client.post("/fhir/Subscription", json=subscription())).json()["id"]
    shown = (await plain_client.get(f"/fhir/Subscription/{sid}")).json()
    response = await plain_client.put(f"/fhir/Subscription/{sid}", json=shown)
    status, code, expression, diagnostics = outcome(response)
    assert (status, code, expression) == (400, "invalid", ["Subscription.channel.header"])
    assert "send the header's value again" in diagnostics


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (
            subscription(channel={"type": "rest-hook", "endpoint": "https://10.0.0.5/hook"}),
            (422, "security", ["Subscription.channel.endpoint"], "internal address 10.0.0.5"),
        ),
        (
            subscription(
                channel={"type": "rest-hook", "endpoint": "https://169.254.169.254/latest"}
            ),
            (422, "security", ["Subscription.channel.endpoint"], "169.254.169.254"),
        ),
        (
            subscription(channel={"type": "rest-hook", "endpoint": "http://receiver.example.org/"}),
            (422, "security", ["Subscription.channel.endpoint"], "must use https"),
        ),
        (
            subscription(channel={"type": "email", "endpoint": "mailto:a@b.org"}),
            (422, "not-supported", ["Subscription.channel.type"], "only rest-hook"),
        ),
        (
            subscription(criteria="DiagnosticReport?bogus=1"),
            (400, "invalid", ["Subscription.criteria"], "bogus"),
        ),
        (
            subscription(status="active"),
            (400, "invalid", ["Subscription.status"], "after a successful handshake"),
        ),
        (
            topic_subscription("http://example.org/no-such-topic"),
            (422, "not-supported", ["Subscription.criteria"], "not a topic of this server"),
        ),
        (
            topic_subscription(
                "http://micdr.org/fhir/SubscriptionTopic/imaging-report",
                "DiagnosticReport?issued=2025",
            ),
            (400, "invalid", ["Subscription.criteria"], "cannot filter DiagnosticReport"),
        ),
    ],
)
async def test_a_subscription_the_server_cannot_honour_is_refused(
    plain_client: AsyncTestClient[Any], resource: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    status, code, expression, diagnostics = outcome(
        await plain_client.post("/fhir/Subscription", json=resource)
    )
    assert (status, code, expression) == expected[:3]
    assert expected[3] in diagnostics


async def test_a_topic_subscription_with_allowed_filters_is_accepted(
    plain_client: AsyncTestClient[Any],
) -> None:
    resource = topic_subscription(
        "http://micdr.org/fhir/SubscriptionTopic/imaging-report",
        "DiagnosticReport?patient=Patient/p1",
        "DiagnosticReport?patient.identifier=https://fhir.infoway-inforoute.ca/NamingSystem/"
        "ca-on-patient-hcn|1234567890",
    )
    created = await plain_client.post("/fhir/Subscription", json=resource)
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "requested"


def topic(*triggers: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Basic",
        "meta": {
            "profile": ["http://hl7.org/fhir/5.0/StructureDefinition/profile-SubscriptionTopic"]
        },
        "code": {"text": "SubscriptionTopic"},
        "extension": [
            {"url": TOPIC_EXT + "url", "valueUri": "http://example.org/topic/ct-final"},
            {"url": TOPIC_EXT + "status", "valueCode": "active"},
            *triggers,
        ],
    }


def trigger(current: str) -> dict[str, Any]:
    return {
        "url": TOPIC_EXT + "resourceTrigger",
        "extension": [
            {"url": "resource", "valueUri": "DiagnosticReport"},
            {"url": "supportedInteraction", "valueCode": "update"},
            {"url": "queryCriteria", "extension": [{"url": "current", "valueString": current}]},
        ],
    }


async def test_a_run_time_topic_is_checked_when_written(
    plain_client: AsyncTestClient[Any],
) -> None:
    assert (
        await plain_client.post("/fhir/Basic", json=topic(trigger("status=final")))
    ).status_code == 201
    status, code, _, diagnostics = outcome(
        await plain_client.post("/fhir/Basic", json=topic(trigger("nonsense=1")))
    )
    assert (status, code) == (400, "invalid")
    assert "nonsense" in diagnostics
    status, code, _, diagnostics = outcome(await plain_client.post("/fhir/Basic", json=topic()))
    assert (status, code) == (400, "invalid")
    assert "at least one trigger" in diagnostics


async def test_status_reports_a_topic_subscription(plain_client: AsyncTestClient[Any]) -> None:
    """Backport IG, $status: a searchset Bundle of the subscription's status Parameters."""
    topic_url = "http://micdr.org/fhir/SubscriptionTopic/imaging-study"
    # off: no handshake races the answer
    wanted = {**topic_subscription(topic_url), "status": "off"}
    created = await plain_client.post("/fhir/Subscription", json=wanted)
    sid = created.json()["id"]
    response = await plain_client.get(f"/fhir/Subscription/{sid}/$status")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["type"], body["total"], len(body["entry"])) == ("searchset", 1, 1)
    status = body["entry"][0]["resource"]
    base = "http://micdr.local/fhir"
    assert status == {
        "resourceType": "Parameters",
        "meta": {"profile": [BP + "backport-subscription-status-r4"]},
        "parameter": [
            {"name": "subscription", "valueReference": {"reference": f"{base}/Subscription/{sid}"}},
            {"name": "topic", "valueCanonical": topic_url},
            {"name": "status", "valueCode": "off"},
            {"name": "type", "valueCode": "query-status"},
            {"name": "events-since-subscription-start", "valueString": "0"},
        ],
    }


async def test_status_of_an_r4_criteria_subscription_or_none_is_refused(
    plain_client: AsyncTestClient[Any],
) -> None:
    sid = (await plain_client.post("/fhir/Subscription", json=subscription())).json()["id"]
    status, code, _, diagnostics = outcome(
        await plain_client.get(f"/fhir/Subscription/{sid}/$status")
    )
    assert (status, code) == (422, "not-supported")
    assert "topic-based" in diagnostics
    status, code, _, _ = outcome(await plain_client.get("/fhir/Subscription/nope/$status"))
    assert (status, code) == (404, "not-found")


async def test_status_on_another_type_is_not_an_operation(
    plain_client: AsyncTestClient[Any],
) -> None:
    status, code, _, diagnostics = outcome(await plain_client.get("/fhir/Patient/p1/$status"))
    assert (status, code) == (404, "not-supported")
    assert "an operation on Subscription" in diagnostics


async def test_the_ig_mode_server_accepts_a_subscription_too(
    client: AsyncTestClient[Any],
) -> None:
    """The default server (IG mode) takes the same Subscription as the documented example."""
    resource = topic_subscription(
        "http://micdr.org/fhir/SubscriptionTopic/imaging-report",
        "DiagnosticReport?patient.identifier=https://fhir.infoway-inforoute.ca/NamingSystem/"
        "ca-on-patient-hcn|1234567890",
    )
    resource["channel"]["endpoint"] = "http://127.0.0.1:9000/hook"
    resource["channel"]["header"] = ["Authorization: Bearer receiver-secret"]
    created = await client.post("/fhir/Subscription", json=resource)
    assert created.status_code == 201, created.text
    assert created.json()["channel"]["header"] == ["Authorization: [redacted]"]


REPORT_TOPIC = "http://micdr.org/fhir/SubscriptionTopic/imaging-report"


def report(patient_id: str, status: str) -> dict[str, Any]:
    return {
        "resourceType": "DiagnosticReport",
        "status": status,
        "code": {"coding": [{"system": "http://loinc.org", "code": "36643-5"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
    }


async def events(client: AsyncTestClient[Any], sid: str, **params: str) -> dict[str, Any]:
    await indexed(client)  # events are recorded from the same outbox as the index
    response = await client.get(f"/fhir/Subscription/{sid}/$events", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def numbered_foci(bundle: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(event-number, focus reference) of each notification-event of a notification Bundle."""
    found = []
    for parameter in bundle["entry"][0]["resource"]["parameter"]:
        if parameter["name"] == "notification-event":
            parts = {p["name"]: p for p in parameter["part"]}
            focus = parts.get("focus", {}).get("valueReference", {}).get("reference")
            found.append((parts["event-number"]["valueString"], focus))
    return found


async def test_a_topic_records_events_for_the_right_focus_in_commit_order(
    plain_client: AsyncTestClient[Any], hook: Receiver
) -> None:
    """Backport IG topic round trip up to delivery: events for final and amended reports of
    the filtered patient, numbered in commit order, none for other patients or statuses; the
    amended report reaches every subscriber of that patient; $status counts them."""
    client = plain_client
    base = "http://micdr.local/fhir"
    pid = (await client.post("/fhir/Patient", json={"resourceType": "Patient"})).json()["id"]
    other = (await client.post("/fhir/Patient", json={"resourceType": "Patient"})).json()["id"]
    subscriptions = []
    for _ in range(2):
        resource = topic_subscription(
            REPORT_TOPIC, f"DiagnosticReport?patient=Patient/{pid}", endpoint=hook.url
        )
        created = await client.post("/fhir/Subscription", json=resource)
        subscriptions.append(created.json()["id"])
    await indexed(client)

    preliminary = (
        await client.post("/fhir/DiagnosticReport", json=report(pid, "preliminary"))
    ).json()
    await client.post("/fhir/DiagnosticReport", json=report(other, "final"))
    final = {**preliminary, "status": "final"}
    assert (
        await client.put(f"/fhir/DiagnosticReport/{final['id']}", json=final)
    ).status_code == 200
    amended = {**final, "status": "amended"}
    assert (
        await client.put(f"/fhir/DiagnosticReport/{final['id']}", json=amended)
    ).status_code == 200

    focus = f"{base}/DiagnosticReport/{final['id']}"
    for sid in subscriptions:
        bundle = await events(client, sid)
        assert bundle["type"] == "history"
        assert numbered_foci(bundle) == [("1", focus), ("2", focus)]
        assert [e["request"] for e in bundle["entry"][1:]] == [
            {"method": "PUT", "url": f"DiagnosticReport/{final['id']}"}
        ] * 2
        status = (await client.get(f"/fhir/Subscription/{sid}/$status")).json()
        parameters = {p["name"]: p for p in status["entry"][0]["resource"]["parameter"]}
        assert parameters["events-since-subscription-start"]["valueString"] == "2"

    full = await events(client, subscriptions[0], content="full-resource", eventsSinceNumber="2")
    assert numbered_foci(full) == [("2", focus)]
    assert full["entry"][1]["resource"]["status"] == "amended"
    assert full["entry"][1]["resource"]["meta"]["versionId"] == "3"
    empty = await events(client, subscriptions[0], content="empty", eventsUntilNumber="1")
    assert numbered_foci(empty) == [("1", None)]
    assert len(empty["entry"]) == 1


async def test_events_refuses_bad_bounds_and_content(plain_client: AsyncTestClient[Any]) -> None:
    created = await plain_client.post("/fhir/Subscription", json=topic_subscription(REPORT_TOPIC))
    sid = created.json()["id"]
    for params, name in (
        ({"eventsSinceNumber": "0"}, "eventsSinceNumber"),
        ({"eventsUntilNumber": "x"}, "eventsUntilNumber"),
        ({"content": "all"}, "content"),
    ):
        response = await plain_client.get(f"/fhir/Subscription/{sid}/$events", params=params)
        status, code, expression, _ = outcome(response)
        assert (status, code, expression) == (400, "invalid", [name])


async def test_a_subscription_turned_off_records_no_more_events(
    plain_client: AsyncTestClient[Any], hook: Receiver
) -> None:
    """subscription.html: `off` stops it. Projection re-reads the subscriptions when one of
    them was written since, so the change is seen by the next commit."""
    client = plain_client
    pid = (await client.post("/fhir/Patient", json={"resourceType": "Patient"})).json()["id"]
    resource = topic_subscription(
        REPORT_TOPIC, f"DiagnosticReport?patient=Patient/{pid}", endpoint=hook.url
    )
    sid = (await client.post("/fhir/Subscription", json=resource)).json()["id"]
    await client.post("/fhir/DiagnosticReport", json=report(pid, "final"))
    assert len(numbered_foci(await events(client, sid))) == 1
    off = {**resource, "id": sid, "status": "off"}
    assert (await client.put(f"/fhir/Subscription/{sid}", json=off)).status_code == 200
    await client.post("/fhir/DiagnosticReport", json=report(pid, "final"))
    assert len(numbered_foci(await events(client, sid))) == 1
