"""A URL a user named is called at an address that was checked, never at one the name
resolves to later (workers/reach.py): a name that answers a public address to the check and an
internal one to the connection (DNS rebinding) cannot reach the internal one."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from workers.reach import Reach, Unreachable, call, reach


class Receiver(BaseHTTPRequestHandler):
    hosts: list[str] = []

    def do_GET(self) -> None:
        Receiver.hosts.append(self.headers["Host"])
        body = b"reached"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[int]:
    """A loopback HTTP server; its port."""
    Receiver.hosts = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def resolver(answers: list[list[str]]) -> Any:
    """A getaddrinfo that gives each answer in turn, then the last one again."""
    calls = iter(answers)
    last: list[str] = []

    async def getaddrinfo(host: str, port: int, **_: Any) -> list[Any]:
        nonlocal last
        last = next(calls, last)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in last]

    return getaddrinfo


async def test_the_call_goes_to_the_checked_address_and_names_the_host(
    receiver: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the name does not exist: only a connection to the checked address can reach the receiver
    monkeypatch.setattr(
        asyncio.get_running_loop(), "getaddrinfo", resolver([["127.0.0.1"], ["10.0.0.7"]])
    )
    target = await reach(f"http://receiver.invalid:{receiver}/in", (), "input url")
    assert target.addresses == ("127.0.0.1",)
    async with httpx.AsyncClient() as client, call(client, target, "GET", timeout=5) as answer:
        assert (answer.status_code, await answer.aread()) == (200, b"reached")
    assert Receiver.hosts == [f"receiver.invalid:{receiver}"]


async def test_a_name_that_resolves_inside_the_network_is_refused_before_any_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        asyncio.get_running_loop(), "getaddrinfo", resolver([["93.184.216.34", "10.0.0.7"]])
    )
    with pytest.raises(Unreachable) as refused:
        await reach("https://hooks.example.org/in", (), "channel.endpoint")
    assert str(refused.value) == (
        "channel.endpoint 'https://hooks.example.org/in' reaches the internal address "
        "10.0.0.7, which is not on the allow-list"
    )


async def test_every_checked_address_is_tried_in_turn(
    receiver: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ::1 first, as many resolvers answer for localhost; the receiver listens on 127.0.0.1 only
    target = Reach(f"http://localhost:{receiver}/in", ("::1", "127.0.0.1"))
    async with httpx.AsyncClient() as client, call(client, target, "GET", timeout=5) as answer:
        assert answer.status_code == 200
    assert Receiver.hosts == [f"localhost:{receiver}"]


def test_the_pinned_url_keeps_the_path_query_and_the_name_for_tls() -> None:
    target = Reach("https://user.example.org:8443/a/b?c=d", ("2001:db8::1",))
    assert target.pinned("2001:db8::1") == (
        "https://[2001:db8::1]:8443/a/b?c=d",
        {"Host": "user.example.org:8443"},
        {"sni_hostname": "user.example.org"},
    )
