"""Notification latency at the ingest load (issue 17): topic subscriptions to every imaging
report and study, made before the ingest phases, delivered to a rest-hook endpoint in this
process; the latency of an event is its arrival here minus its commit time (the
`notification-event` timestamp), so it covers projection, event recording and delivery."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import orjson

from bench.workloads import FHIR_JSON, percentiles

TOPICS = (
    "http://micdr.org/fhir/SubscriptionTopic/imaging-report",
    "http://micdr.org/fhir/SubscriptionTopic/imaging-study",
)
_BP = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
_CONTENT = _BP + "backport-payload-content"


@dataclass
class Listener:
    """The endpoint: per subscription, each event number's first arrival latency (seconds)."""

    port: int = 0
    latency: dict[str, dict[int, float]] = field(default_factory=dict)
    committed: list[tuple[float, float]] = field(default_factory=list)  # (commit, latency)
    repeats: int = 0
    server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                lines = head.decode().split("\r\n")[1:]
                headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
                raw = await reader.readexactly(int(headers.get("content-length", "0")))
                self._record(raw, time.time())
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _record(self, raw: bytes, arrived: float) -> None:
        status = orjson.loads(raw)["entry"][0]["resource"]
        parameters = status["parameter"]
        subscription = parameters[0]["valueReference"]["reference"].rsplit("/", 1)[1]
        seen = self.latency.setdefault(subscription, {})
        for p in parameters:
            if p["name"] != "notification-event":
                continue
            parts = {x["name"]: x for x in p["part"]}
            number = int(parts["event-number"]["valueString"])
            if number in seen:
                self.repeats += 1
                continue
            committed = datetime.fromisoformat(parts["timestamp"]["valueInstant"]).timestamp()
            seen[number] = arrived - committed
            self.committed.append((committed, arrived - committed))


async def subscribe(base: str, listener: Listener, timeout: float = 60.0) -> list[str]:
    """One subscription per topic to `listener`, each waited for until it is active."""
    ids = []
    async with httpx.AsyncClient(base_url=base, timeout=30, headers={"Accept": FHIR_JSON}) as c:
        for topic in TOPICS:
            body = {
                "resourceType": "Subscription",
                "meta": {"profile": [_BP + "backport-subscription"]},
                "status": "requested",
                "reason": "benchmark: notification latency",
                "criteria": topic,
                "channel": {
                    "type": "rest-hook",
                    "endpoint": listener.url,
                    "payload": FHIR_JSON,
                    "_payload": {
                        "extension": [
                            {"url": _BP + "backport-payload-content", "valueCode": "id-only"}
                        ]
                    },
                },
            }
            created = await c.post("/Subscription", json=body)
            created.raise_for_status()
            ids.append(created.json()["id"])
        deadline = time.monotonic() + timeout
        for sid in ids:
            while (await c.get(f"/Subscription/{sid}")).json()["status"] != "active":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Subscription/{sid} did not become active")
                await asyncio.sleep(0.2)
    return ids


async def settle(
    base: str, listener: Listener, ids: list[str], timeout: float = 120.0
) -> dict[str, Any]:
    """Wait until every recorded event has arrived (or `timeout`); the latency figures."""
    async with httpx.AsyncClient(base_url=base, timeout=30, headers={"Accept": FHIR_JSON}) as c:
        deadline = time.monotonic() + timeout
        while True:
            recorded = {sid: await _events_since_start(c, sid) for sid in ids}
            missing = sum(n - len(listener.latency.get(s, {})) for s, n in recorded.items())
            if missing <= 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
    latencies = [x for by_number in listener.latency.values() for x in by_number.values()]
    return {
        "subscriptions": len(ids),
        "events_recorded": sum(recorded.values()),
        "events_delivered": len(latencies),
        "not_delivered_in_time": max(missing, 0),
        "repeats": listener.repeats,
        "latency_ms": percentiles(latencies),
        "latency_by_commit_time": _timeline(listener.committed),
    }


def _timeline(committed: list[tuple[float, float]], step: float = 5.0) -> list[dict[str, Any]]:
    """Latency by when the event was committed, in `step`-second slices from the first: a
    latency growing slice after slice is a backlog, a few bad slices are stalls."""
    if not committed:
        return []
    start = min(c for c, _ in committed)
    slices: dict[int, list[float]] = {}
    for at, latency in committed:
        slices.setdefault(int((at - start) // step), []).append(latency)
    return [{"from_s": k * step, **percentiles(slices[k])} for k in sorted(slices)]


async def _events_since_start(client: httpx.AsyncClient, sid: str) -> int:
    answer = (await client.get(f"/Subscription/{sid}/$status")).json()
    for parameter in answer["entry"][0]["resource"]["parameter"]:
        if parameter["name"] == "events-since-subscription-start":
            return int(parameter["valueString"])
    return 0
