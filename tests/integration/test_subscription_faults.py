"""Subscription delivery survives faults (issue 17).

`kill -9` of the process sending: the endpoint hangs on an event notification, the sender is
SIGKILLed, and once its lease has run out the next process sends again from the first event
not acknowledged. Every event arrives, in number order; the one that was in flight arrives
again with the same number and focus.
- embedded: `micdr serve` killed and started again on the same data dir;
- full stack: a `micdr worker` killed, a second one takes over.

A Redis flush (full stack): the queued rings are lost, nothing else.

Elasticsearch down (full stack): notifications do not wait for the index. Each event goes out
once, in commit order, while nothing can be projected; the projection after the outage
records none again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conformance._receiver import Receiver, receiver
from tests.conformance.test_subscription import BP, topic_subscription
from tests.integration._async import (
    Process,
    free_port,
    in_process_api,
    wait_backlog_drained,
    wait_serving,
)
from tests.integration.conftest import ServiceControl
from tests.integration.test_async_faults import full_env as full_env  # a fixture

REPORTS = 8
STALLED = 3  # the event number the endpoint hangs on
ENV = {"MICDR_IG_MODE": "0", "MICDR_ASYNC_LEASE_SECONDS": "3", "MICDR_LOG_LEVEL": "WARNING"}
TOPIC = "http://micdr.org/fhir/SubscriptionTopic/imaging-report"


def one_event_each(hook: Receiver) -> dict[str, Any]:
    wanted = topic_subscription(TOPIC, endpoint=hook.url)
    wanted["channel"]["extension"] = [{"url": BP + "backport-max-count", "valuePositiveInt": 1}]
    return wanted


def report(n: int) -> dict[str, Any]:
    return {
        "resourceType": "DiagnosticReport",
        "id": f"r{n}",
        "status": "final",
        "code": {"text": "CT head"},
        "subject": {"reference": f"Patient/p{n}"},
    }


def events(hook: Receiver) -> list[tuple[int, str | None]]:
    return [e for r in hook.received for e in r.events()]


def on_stalled(request: Any) -> bool:
    return any(number == STALLED for number, _ in request.events())


async def subscribe_and_write(client: Any, hook: Receiver) -> None:
    created = await client.post("/fhir/Subscription", json=one_event_each(hook))
    assert created.status_code == 201, created.text
    await hook.wait_for(lambda r: len(r) >= 1, 60)
    for n in range(1, REPORTS + 1):
        written = await client.put(f"/fhir/DiagnosticReport/r{n}", json=report(n))
        assert written.status_code == 201, written.text


def check(hook: Receiver) -> None:
    received = events(hook)
    numbers = [n for n, _ in received]
    first = sorted(set(numbers), key=numbers.index)
    assert first == list(range(1, REPORTS + 1))  # every event, first seen in order
    assert numbers.count(STALLED) == 2  # the one in flight, sent again
    foci = {n: {f for m, f in received if m == n} for n in first}
    assert all(len(f) == 1 for f in foci.values())  # a repeat names the same focus
    assert foci[1] == {"http://localhost/fhir/DiagnosticReport/r1"}


async def test_embedded_server_killed_mid_delivery_loses_nothing(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"MICDR_DATA_DIR": str(tmp_path / "data"), **ENV}
    serve = ["serve", "--port", str(port)]
    async with receiver() as hook:
        hook.stall = on_stalled
        server = Process(serve, env, tmp_path / "1.log")
        try:
            await wait_serving(url, server)
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                await subscribe_and_write(client, hook)
                await hook.wait_for(lambda r: any(on_stalled(x) for x in r), 60)
                server.kill()
                hook.stall = None
                server = Process(serve, env, tmp_path / "2.log")
                await wait_serving(url, server)
                await hook.wait_for(lambda r: len({n for n, _ in events(hook)}) == REPORTS, 60)
        finally:
            server.stop()
    check(hook)


@pytest.fixture
async def full_client(full_env: dict[str, str]) -> AsyncIterator[tuple[Any, dict[str, str]]]:
    env = {**full_env, **ENV}
    async with in_process_api(env) as client:
        yield client, env


async def test_full_stack_worker_killed_mid_delivery_is_taken_over(
    full_client: tuple[Any, dict[str, str]], tmp_path: Path
) -> None:
    client, env = full_client
    async with receiver() as hook:
        hook.stall = on_stalled
        first = Process(["worker"], env, tmp_path / "worker-1.log")
        second: Process | None = None
        try:
            await subscribe_and_write(client, hook)
            await hook.wait_for(lambda r: any(on_stalled(x) for x in r), 90)
            first.kill()
            hook.stall = None
            second = Process(["worker"], env, tmp_path / "worker-2.log")
            await hook.wait_for(lambda r: len({n for n, _ in events(hook)}) == REPORTS, 90)
        finally:
            first.stop()
            if second is not None:
                second.stop()
    check(hook)


async def test_full_stack_redis_flushed_before_delivery_loses_nothing(
    full_client: tuple[Any, dict[str, str]], tmp_path: Path
) -> None:
    """Every ring (projection and delivery jobs) is flushed before any worker runs: the
    reconciler finds the commits in the store, the delivery round the events."""
    import redis.asyncio

    client, env = full_client
    async with receiver() as hook:
        created = await client.post("/fhir/Subscription", json=one_event_each(hook))
        assert created.status_code == 201, created.text
        for n in range(1, REPORTS + 1):
            written = await client.put(f"/fhir/DiagnosticReport/r{n}", json=report(n))
            assert written.status_code == 201, written.text
        queue = redis.asyncio.Redis.from_url(env["MICDR_REDIS_URL"])
        try:
            assert await queue.dbsize() > 0  # the projection jobs were queued
            await queue.flushdb()
        finally:
            await queue.aclose()
        worker = Process(["worker"], env, tmp_path / "worker.log")
        try:
            await hook.wait_for(lambda r: len({n for n, _ in events(hook)}) == REPORTS, 90)
        finally:
            worker.stop()
    received = events(hook)
    assert [n for n, _ in received] == list(range(1, REPORTS + 1))
    assert hook.received[0].kind == "handshake"


async def test_full_stack_notifies_while_elasticsearch_is_down(
    full_client: tuple[Any, dict[str, str]], tmp_path: Path, services: ServiceControl
) -> None:
    client, env = full_client
    async with receiver() as hook:
        worker = Process(["worker"], env, tmp_path / "worker.log")
        try:
            created = await client.post("/fhir/Subscription", json=one_event_each(hook))
            assert created.status_code == 201, created.text
            sid = created.json()["id"]
            await hook.wait_for(lambda r: len(r) >= 1, 60)  # the handshake
            services.stop("elasticsearch")
            try:
                for n in range(1, REPORTS + 1):
                    written = await client.put(f"/fhir/DiagnosticReport/r{n}", json=report(n))
                    assert written.status_code == 201, written.text
                await hook.wait_for(lambda r: len(events(hook)) == REPORTS, 90)
                health = (await client.get("/health")).json()
                assert health["index"]["up"] is False
                assert health["index"]["oldest_unindexed_commit"] is not None
            finally:
                services.start("elasticsearch")
            await wait_backlog_drained(client, worker)
            status = await client.get(f"/fhir/Subscription/{sid}/$status")
            assert status.status_code == 200, status.text
        finally:
            worker.stop()
    received = events(hook)
    assert [n for n, _ in received] == list(range(1, REPORTS + 1))
    assert [f for _, f in received] == [
        f"http://localhost/fhir/DiagnosticReport/r{n}" for n in range(1, REPORTS + 1)
    ]
    parameters = {p["name"]: p for p in status.json()["entry"][0]["resource"]["parameter"]}
    assert parameters["events-since-subscription-start"]["valueString"] == str(REPORTS)
