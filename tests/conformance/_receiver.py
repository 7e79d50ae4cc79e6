"""A rest-hook endpoint for tests: a minimal HTTP/1.1 server on loopback that records every
request (method, path, headers, JSON body) and answers each with the status it is told."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    raw: bytes
    at: float

    @property
    def body(self) -> Any:
        """The parsed JSON, or None for an empty body."""
        return orjson.loads(self.raw) if self.raw else None

    @property
    def kind(self) -> str | None:
        """A topic notification's type (handshake, heartbeat, event-notification)."""
        return _parameter(self.body, "type", "valueCode")

    def events(self) -> list[tuple[int, str | None]]:
        """A topic notification's events: (event number, focus reference or None)."""
        out = []
        for parameter in _status(self.body).get("parameter", []):
            if parameter["name"] == "notification-event":
                parts = {p["name"]: p for p in parameter["part"]}
                focus = parts.get("focus", {}).get("valueReference", {}).get("reference")
                out.append((int(parts["event-number"]["valueString"]), focus))
        return out


def _status(body: Any) -> dict[str, Any]:
    if isinstance(body, dict) and body.get("resourceType") == "Bundle":
        return dict(body["entry"][0]["resource"])
    return {}


def _parameter(body: Any, name: str, value: str) -> str | None:
    for parameter in _status(body).get("parameter", []):
        if parameter["name"] == name:
            return str(parameter[value])
    return None


@dataclass
class Receiver:
    port: int = 0
    status: int = 200  # what every request is answered
    # a request this says yes to is recorded and never answered (a receiver hanging while
    # the sender is killed)
    stall: Callable[[Received], bool] | None = None
    received: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def wait_for(
        self, test: Callable[[list[Received]], bool], timeout: float = 20.0
    ) -> list[Received]:
        """Until `test` holds of everything received; fails the test after `timeout`."""
        deadline = time.monotonic() + timeout
        while not test(self.received):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"not received in {timeout}s; got {self.received}"
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 0.5)):
                    await self.arrived.wait()
        return self.received

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, path, _ = line.decode().split(" ", 2)
                headers: dict[str, str] = {}
                while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = header.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                raw = await reader.readexactly(int(headers.get("content-length", "0")))
                request = Received(method, path, headers, raw, time.time())
                self.received.append(request)
                self.arrived.set()
                if self.stall is not None and self.stall(request):
                    await reader.read()  # until the sender's connection goes away
                    return
                writer.write(f"HTTP/1.1 {self.status} X\r\ncontent-length: 0\r\n\r\n".encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    server = await asyncio.start_server(hook._serve, "127.0.0.1", 0)
    hook.port = server.sockets[0].getsockname()[1]
    try:
        yield hook
    finally:
        server.close()
        await server.wait_closed()
