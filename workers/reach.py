"""Calling a URL that a user named: the rule against server-side request forgery
(app/subscriptions/endpoint.py) applied to every address the URL's host resolves to at the
moment of the call, and the connection then made to one of exactly those addresses. Resolving
once and connecting to what was checked closes the gap a name could otherwise use by
answering a public address to the check and an internal one to the connection (DNS
rebinding). Used to send a notification and to download an $import input."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from app.subscriptions.endpoint import refusal


class Unreachable(Exception):
    """The URL may not be called now; the message says why, in one sentence."""


@dataclass(frozen=True)
class Reach:
    """A checked URL: the addresses its host may be reached at, in the resolver's order."""

    url: str
    addresses: tuple[str, ...]

    def pinned(self, address: str) -> tuple[str, dict[str, str], dict[str, str]]:
        """The URL rewritten to `address`, with the Host header and the TLS server name
        (certificate checked against it) still the host the user named."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        literal = f"[{address}]" if ":" in address else address
        netloc = f"{literal}:{parts.port}" if parts.port else literal
        url = urlunsplit(parts._replace(netloc=netloc))
        authority = parts.netloc.rpartition("@")[2]
        return url, {"Host": authority}, {"sni_hostname": host}


async def reach(url: str, allow_list: Sequence[str], name: str) -> Reach:
    """Resolve the host of `url` and check every address; raises Unreachable."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host,
            parts.port or (443 if parts.scheme == "https" else 80),
            type=socket.SOCK_STREAM,
        )
    except OSError as exc:
        raise Unreachable(f"{host} does not resolve: {exc}") from None
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    why = refusal(url, allow_list, addresses, name)
    if why is not None:
        raise Unreachable(why)
    return Reach(url, addresses)


@asynccontextmanager
async def call(
    client: httpx.AsyncClient,
    target: Reach,
    method: str,
    *,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
    timeout: float,
) -> AsyncIterator[httpx.Response]:
    """The response (body not yet read) from the first checked address that accepts the
    connection; any failure to connect or to exchange raises httpx.HTTPError."""
    failure: httpx.ConnectError | None = None
    for address in target.addresses:
        url, host, extensions = target.pinned(address)
        request = client.build_request(
            method,
            url,
            headers={**(headers or {}), **host},
            content=content,
            extensions=extensions,
            timeout=timeout,
        )
        try:
            response = await client.send(request, stream=True)
        except httpx.ConnectError as exc:
            failure = exc
            continue
        try:
            yield response
        finally:
            await response.aclose()
        return
    assert failure is not None  # a resolved host has at least one address
    raise failure
