"""Subscription delivery on every deployment (issue 17): a real rest-hook endpoint on loopback
(tests/conformance/_receiver.py) is told of committed changes as the subscription asks, after
a handshake; an unreachable one puts the subscription in `error`."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.subscriptions.topics import SUBSCRIPTION_TOPIC_PROFILE
from tests.conformance._auth import ORG_A, ORG_B, contributor, secured_client
from tests.conformance._clients import DEPLOYMENTS, PLAIN_FHIR, client_with, plain_client
from tests.conformance._receiver import Received, Receiver, receiver
from tests.conformance.conftest import indexed
from tests.conformance.test_subscription import BP, TOPIC_EXT, topic_subscription

__all__ = ["plain_client"]

REPORT_TOPIC = "http://micdr.org/fhir/SubscriptionTopic/imaging-report"
HCN = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn"


def report(patient: str, status: str = "final", text: str = "no acute finding") -> dict[str, Any]:
    return {
        "resourceType": "DiagnosticReport",
        "status": status,
        "code": {"coding": [{"system": "http://loinc.org", "code": "18748-4"}]},
        "subject": {"reference": f"Patient/{patient}"},
        "conclusion": text,
    }


def to(hook: Receiver, resource: dict[str, Any], content: str = "id-only") -> dict[str, Any]:
    resource["channel"]["endpoint"] = hook.url
    resource["channel"]["_payload"] = {
        "extension": [{"url": BP + "backport-payload-content", "valueCode": content}]
    }
    resource["channel"]["header"] = ["Authorization: Bearer receiver-secret"]
    return resource


def kinds(received: list[Received]) -> list[str | None]:
    return [r.kind for r in received]


async def status_of(client: AsyncTestClient[Any], sid: str) -> dict[str, Any]:
    return dict((await client.get(f"/fhir/Subscription/{sid}")).json())


async def until_status(client: AsyncTestClient[Any], sid: str, status: str) -> dict[str, Any]:
    for _ in range(200):
        current = await status_of(client, sid)
        if current["status"] == status:
            return current
        await asyncio.sleep(0.1)
    raise AssertionError(f"Subscription/{sid} stayed {current['status']}, not {status}")


async def test_a_topic_subscription_shakes_hands_then_gets_its_events_only(
    plain_client: AsyncTestClient[Any],
) -> None:
    client = plain_client
    async with receiver() as hook:
        wanted = to(hook, topic_subscription(REPORT_TOPIC, "DiagnosticReport?patient=Patient/p1"))
        created = await client.post("/fhir/Subscription", json=wanted)
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        await hook.wait_for(lambda r: kinds(r) == ["handshake"])
        handshake = hook.received[0]
        assert handshake.method == "POST" and handshake.path == "/hook"
        assert handshake.headers["authorization"] == "Bearer receiver-secret"
        assert handshake.headers["content-type"] == "application/fhir+json"
        assert handshake.body["type"] == "history"
        await until_status(client, sid, "active")

        first = (await client.post("/fhir/DiagnosticReport", json=report("p1"))).json()["id"]
        other = await client.post("/fhir/DiagnosticReport", json=report("p2"))
        assert other.status_code == 201
        draft = await client.post("/fhir/DiagnosticReport", json=report("p1", "preliminary"))
        assert draft.status_code == 201
        second = (await client.post("/fhir/DiagnosticReport", json=report("p1"))).json()["id"]
        received = await hook.wait_for(
            lambda r: sum(len(x.events()) for x in r if x.kind == "event-notification") >= 2
        )
        events = [e for r in received if r.kind == "event-notification" for e in r.events()]
        base = "http://localhost/fhir"
        assert events == [
            (1, f"{base}/DiagnosticReport/{first}"),
            (2, f"{base}/DiagnosticReport/{second}"),
        ]
        notification = next(r for r in received if r.kind == "event-notification")
        entry = notification.body["entry"][1]
        assert entry["fullUrl"] == f"{base}/DiagnosticReport/{first}"
        assert "resource" not in entry  # id-only
        status = (await client.get(f"/fhir/Subscription/{sid}/$status")).json()
        parameters = {p["name"]: p for p in status["entry"][0]["resource"]["parameter"]}
        assert parameters["status"]["valueCode"] == "active"
        assert parameters["events-since-subscription-start"]["valueString"] == "2"
        replay = (await client.get(f"/fhir/Subscription/{sid}/$events?eventsSinceNumber=2")).json()
        # $events names the server as the caller reached it; a notification by
        # MICDR_PUBLIC_BASE_URL (unset here: http://localhost/fhir)
        assert replay["entry"][1]["fullUrl"] == f"http://micdr.local/fhir/DiagnosticReport/{second}"
        for _ in range(50):  # progress is saved once the endpoint's answer is in
            health = (await client.get("/health")).json()["subscriptions"]
            if health["undelivered_events"] == 0:
                break
            await asyncio.sleep(0.1)
        assert health == {
            "by_status": {"active": 1},
            "undelivered_events": 0,
            "oldest_undelivered_event": None,
            "delivery_lag_seconds": 0.0,
            "retrying": 0,
        }


async def test_an_amended_report_reaches_every_subscriber_of_its_patient(
    plain_client: AsyncTestClient[Any],
) -> None:
    client = plain_client
    patient = {
        "resourceType": "Patient",
        "id": "p7",
        "identifier": [{"system": HCN, "value": "7777777777"}],
    }
    assert (await client.put("/fhir/Patient/p7", json=patient)).status_code == 201
    async with receiver() as by_id, receiver() as by_hcn, receiver() as elsewhere:
        subscriptions = [
            to(by_id, topic_subscription(REPORT_TOPIC, "DiagnosticReport?patient=Patient/p7")),
            to(
                by_hcn,
                topic_subscription(
                    REPORT_TOPIC, f"DiagnosticReport?patient.identifier={HCN}|7777777777"
                ),
                "full-resource",
            ),
            to(elsewhere, topic_subscription(REPORT_TOPIC, "DiagnosticReport?patient=Patient/p8")),
        ]
        for wanted in subscriptions:
            assert (await client.post("/fhir/Subscription", json=wanted)).status_code == 201
        for hook in (by_id, by_hcn, elsewhere):
            await hook.wait_for(lambda r: kinds(r) == ["handshake"])
        await indexed(client)
        written = (await client.post("/fhir/DiagnosticReport", json=report("p7"))).json()
        amended = {**written, "status": "amended", "conclusion": "corrected: small nodule"}
        updated = await client.put(f"/fhir/DiagnosticReport/{written['id']}", json=amended)
        assert updated.status_code == 200
        for hook in (by_id, by_hcn):
            received = await hook.wait_for(
                lambda r: sum(len(x.events()) for x in r if x.kind == "event-notification") >= 2
            )
            events = [e[0] for r in received for e in r.events() if r.kind != "handshake"]
            assert events == [1, 2]
        last = by_hcn.received[-1].body["entry"][-1]
        assert last["request"] == {"method": "PUT", "url": f"DiagnosticReport/{written['id']}"}
        assert last["resource"]["status"] == "amended"
        assert last["resource"]["conclusion"] == "corrected: small nodule"
        await indexed(client)
        assert kinds(elsewhere.received) == ["handshake"]


async def test_a_hanging_endpoint_holds_no_other_subscription_back(
    plain_client: AsyncTestClient[Any],
) -> None:
    """Two subscriptions to one patient's reports; one endpoint hangs on its first event (the
    sender gives up after 10 s). The other gets both events while it hangs."""
    client = plain_client
    async with receiver() as hanging, receiver() as answering:
        for hook in (hanging, answering):
            wanted = to(
                hook, topic_subscription(REPORT_TOPIC, "DiagnosticReport?patient=Patient/p9")
            )
            created = await client.post("/fhir/Subscription", json=wanted)
            assert created.status_code == 201, created.text
            await hook.wait_for(lambda r: kinds(r) == ["handshake"])
            await until_status(client, created.json()["id"], "active")
        hanging.stall = lambda r: r.kind == "event-notification"
        first = await client.post("/fhir/DiagnosticReport", json=report("p9"))
        assert first.status_code == 201, first.text
        await hanging.wait_for(lambda r: "event-notification" in kinds(r), 30)
        second = await client.post("/fhir/DiagnosticReport", json=report("p9", text="second"))
        assert second.status_code == 201, second.text
        received = await answering.wait_for(
            lambda r: sum(len(x.events()) for x in r if x.kind == "event-notification") >= 2, 5
        )
        foci = [f for r in received if r.kind == "event-notification" for _, f in r.events()]
        assert [f.rsplit("/", 1)[1] for f in foci] == [first.json()["id"], second.json()["id"]]
        assert kinds(hanging.received) == ["handshake", "event-notification"]


async def test_an_r4_rest_hook_puts_each_matching_version(
    plain_client: AsyncTestClient[Any],
) -> None:
    client = plain_client
    async with receiver() as hook:
        wanted = {
            "resourceType": "Subscription",
            "status": "requested",
            "reason": "final reports",
            "criteria": "DiagnosticReport?status=final",
            "channel": {
                "type": "rest-hook",
                "endpoint": f"http://127.0.0.1:{hook.port}/fhir",
                "payload": "application/fhir+json",
            },
        }
        sid = (await client.post("/fhir/Subscription", json=wanted)).json()["id"]
        await hook.wait_for(lambda r: len(r) == 1)
        assert (hook.received[0].method, hook.received[0].body) == ("POST", None)
        await until_status(client, sid, "active")
        draft = await client.post("/fhir/DiagnosticReport", json=report("p1", "preliminary"))
        final = {**draft.json(), "status": "final"}
        rid = final["id"]
        assert (await client.put(f"/fhir/DiagnosticReport/{rid}", json=final)).status_code == 200
        final["conclusion"] = "addendum"
        assert (await client.put(f"/fhir/DiagnosticReport/{rid}", json=final)).status_code == 200
        received = await hook.wait_for(lambda r: len(r) >= 3)
        await indexed(client)
        assert [(r.method, r.path) for r in hook.received[1:]] == [
            ("PUT", f"/fhir/DiagnosticReport/{rid}"),
            ("PUT", f"/fhir/DiagnosticReport/{rid}"),
        ]
        assert [r.body["meta"]["versionId"] for r in received[1:]] == ["2", "3"]


@pytest.mark.parametrize("port", [1])
async def test_an_unreachable_endpoint_puts_the_subscription_in_error(
    plain_client: AsyncTestClient[Any], port: int
) -> None:
    wanted = topic_subscription(REPORT_TOPIC)
    wanted["channel"]["endpoint"] = f"http://127.0.0.1:{port}/hook"
    sid = (await plain_client.post("/fhir/Subscription", json=wanted)).json()["id"]
    failed = await until_status(plain_client, sid, "error")
    assert failed["error"].startswith("handshake failed: the endpoint could not be reached: ")
    history = (await plain_client.get(f"/fhir/Subscription/{sid}/_history")).json()
    assert [e["resource"]["status"] for e in history["entry"]] == ["error", "requested"]
    health = (await plain_client.get("/health")).json()["subscriptions"]
    assert (health["by_status"], health["undelivered_events"]) == ({"error": 1}, 0)


async def test_a_name_pointed_into_the_network_after_creation_is_refused_at_delivery(
    plain_client: AsyncTestClient[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The endpoint's name passed at creation (https, a name, not an address); at delivery it
    resolves to an internal address: nothing is sent and the subscription is in error. The
    resolver replaced is every event loop's (the app may run on a loop of its own)."""
    real = asyncio.BaseEventLoop.getaddrinfo
    asked: list[str] = []

    async def resolve(loop: Any, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "hooks.example.org":
            asked.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.20.30.40", port))]
        return await real(loop, host, port, *args, **kwargs)

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", resolve)
    wanted = topic_subscription(REPORT_TOPIC)
    wanted["channel"]["endpoint"] = "https://hooks.example.org/hook"
    created = await plain_client.post("/fhir/Subscription", json=wanted)
    assert created.status_code == 201, created.text
    failed = await until_status(plain_client, created.json()["id"], "error")
    assert failed["error"] == (
        "handshake failed: not sent: channel.endpoint 'https://hooks.example.org/hook' reaches the "
        "internal address 10.20.30.40, which is not on the allow-list"
    )
    assert asked  # refused on what the name resolved to, not before trying


CANCELLED_TOPIC = "http://example.org/topic/report-cancelled"


def cancelled_topic() -> dict[str, Any]:
    """A run-time topic: a DiagnosticReport written as cancelled, filterable by patient."""
    return {
        "resourceType": "Basic",
        "meta": {"profile": [SUBSCRIPTION_TOPIC_PROFILE]},
        "code": {"text": "SubscriptionTopic"},
        "extension": [
            {"url": TOPIC_EXT + "url", "valueUri": CANCELLED_TOPIC},
            {"url": TOPIC_EXT + "status", "valueCode": "active"},
            {
                "url": TOPIC_EXT + "resourceTrigger",
                "extension": [
                    {"url": "resource", "valueUri": "DiagnosticReport"},
                    {"url": "supportedInteraction", "valueCode": "create"},
                    {"url": "supportedInteraction", "valueCode": "update"},
                    {
                        "url": "queryCriteria",
                        "extension": [{"url": "current", "valueString": "status=cancelled"}],
                    },
                ],
            },
            {
                "url": TOPIC_EXT + "canFilterBy",
                "extension": [
                    {"url": "resource", "valueUri": "DiagnosticReport"},
                    {"url": "filterParameter", "valueString": "patient"},
                ],
            },
        ],
    }


async def test_a_run_time_topic_fires_as_its_criteria_say(
    plain_client: AsyncTestClient[Any],
) -> None:
    client = plain_client
    unknown = topic_subscription(CANCELLED_TOPIC, "DiagnosticReport?patient=Patient/p1")
    assert (await client.post("/fhir/Subscription", json=unknown)).status_code == 422
    assert (await client.post("/fhir/Basic", json=cancelled_topic())).status_code == 201
    metadata = (await client.get("/fhir/metadata")).json()
    entry = next(r for r in metadata["rest"][0]["resource"] if r["type"] == "Subscription")
    assert CANCELLED_TOPIC in [e.get("valueCanonical") for e in entry["extension"]]
    async with receiver() as hook:
        wanted = to(
            hook, topic_subscription(CANCELLED_TOPIC, "DiagnosticReport?patient=Patient/p1")
        )
        created = await client.post("/fhir/Subscription", json=wanted)
        assert created.status_code == 201, created.text
        await until_status(client, created.json()["id"], "active")
        final = (await client.post("/fhir/DiagnosticReport", json=report("p1"))).json()
        await client.post("/fhir/DiagnosticReport", json=report("p2", "cancelled"))
        cancelled = await client.put(
            f"/fhir/DiagnosticReport/{final['id']}", json={**final, "status": "cancelled"}
        )
        assert cancelled.status_code == 200
        received = await hook.wait_for(lambda r: any(x.events() for x in r))
        await indexed(client)
        events = [e for r in received for e in r.events()]
        assert events == [(1, f"http://localhost/fhir/DiagnosticReport/{final['id']}")]


@pytest.fixture(params=DEPLOYMENTS)
async def secured(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    async with secured_client(request.param, tmp_path) as c:
        yield c


async def test_a_notification_carries_only_what_its_owner_may_read_now(
    secured: AsyncTestClient[Any],
) -> None:
    """Scopes apply at delivery: hospital A's subscription to every final report is told of
    hospital B's report (its number and time) but not what it is."""
    client, mine, theirs = secured, contributor(ORG_A), contributor(ORG_B)
    async with receiver() as hook:
        wanted = to(hook, topic_subscription(REPORT_TOPIC), "full-resource")
        created = await client.post("/fhir/Subscription", json=wanted, headers=mine)
        assert created.status_code == 201, created.text
        assert "extension" not in created.json()  # the recorded owner is never shown
        await hook.wait_for(lambda r: kinds(r) == ["handshake"])
        other = await client.post("/fhir/DiagnosticReport", json=report("pb"), headers=theirs)
        own = await client.post("/fhir/DiagnosticReport", json=report("pa"), headers=mine)
        assert (other.status_code, own.status_code) == (201, 201)
        received = await hook.wait_for(lambda r: sum(len(x.events()) for x in r) >= 2)
        events = [e for r in received for e in r.events()]
        base = "http://localhost/fhir"
        assert events == [(1, None), (2, f"{base}/DiagnosticReport/{own.json()['id']}")]
        carried = [e["resource"] for r in received[1:] for e in r.body["entry"][1:]]
        assert [r["id"] for r in carried] == [own.json()["id"]]


async def test_a_failed_notification_is_retried_until_the_endpoint_takes_it(
    plain_client: AsyncTestClient[Any],
) -> None:
    client = plain_client
    async with receiver() as hook:
        created = await client.post(
            "/fhir/Subscription", json=to(hook, topic_subscription(REPORT_TOPIC))
        )
        sid = created.json()["id"]
        await until_status(client, sid, "active")
        hook.status = 503
        rid = (await client.post("/fhir/DiagnosticReport", json=report("p1"))).json()["id"]
        await hook.wait_for(lambda r: sum(len(x.events()) for x in r) >= 2)  # tried again
        health = (await client.get("/health")).json()["subscriptions"]
        assert (health["retrying"], health["undelivered_events"]) == (1, 1)
        assert (await status_of(client, sid))["status"] == "active"
        hook.status = 200
        tries = len(hook.received)
        await hook.wait_for(lambda r: len(r) > tries)
        events = {e for r in hook.received for e in r.events()}
        assert events == {(1, f"http://localhost/fhir/DiagnosticReport/{rid}")}
        for _ in range(50):
            health = (await client.get("/health")).json()["subscriptions"]
            if health["undelivered_events"] == 0:
                break
            await asyncio.sleep(0.1)
        assert (health["retrying"], health["undelivered_events"]) == (0, 0)


async def test_heartbeats_keep_coming_and_end_turns_the_subscription_off(
    plain_client: AsyncTestClient[Any],
) -> None:
    client = plain_client
    async with receiver() as hook:
        wanted = to(hook, topic_subscription(REPORT_TOPIC))
        wanted["channel"]["extension"] = [
            {"url": BP + "backport-heartbeat-period", "valueUnsignedInt": 1}
        ]
        wanted["end"] = (datetime.now(UTC) + timedelta(seconds=6)).isoformat()
        sid = (await client.post("/fhir/Subscription", json=wanted)).json()["id"]
        await hook.wait_for(lambda r: kinds(r)[:3] == ["handshake", "heartbeat", "heartbeat"])
        off = await until_status(client, sid, "off")
        assert off["end"] == wanted["end"]
        sent = len(hook.received)
        await client.post("/fhir/DiagnosticReport", json=report("p1"))
        await indexed(client)
        await asyncio.sleep(1.5)  # a heartbeat period and more
        assert len(hook.received) == sent


async def test_a_topic_defined_through_another_api_process_is_known_when_named(
    tmp_path: Path,
) -> None:
    """Two API processes on one store (embedded: one data dir): a topic written through the
    first is accepted in a Subscription sent to the second, which started before it existed."""
    async with (
        client_with(PLAIN_FHIR, "embedded", tmp_path) as first,
        client_with(PLAIN_FHIR, "embedded", tmp_path) as second,
    ):
        await second.get("/fhir/metadata")  # started, topics read
        assert (await first.post("/fhir/Basic", json=cancelled_topic())).status_code == 201
        wanted = topic_subscription(CANCELLED_TOPIC, "DiagnosticReport?patient=Patient/p1")
        wanted["status"] = "off"  # no handshake: only whether the topic is known matters here
        created = await second.post("/fhir/Subscription", json=wanted)
        assert created.status_code == 201, created.text
        unknown = topic_subscription("http://example.org/topic/none", "DiagnosticReport?")
        refused = await second.post("/fhir/Subscription", json=unknown)
        assert refused.status_code == 422
        assert "'http://example.org/topic/none' is not a topic of this server" in refused.text
