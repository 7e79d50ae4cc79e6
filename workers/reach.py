"""Whether the server may call a URL now: the rule against server-side request forgery
(app/subscriptions/endpoint.py) applied to every address the URL's host resolves to at the
moment of the call, so that a name pointing at an internal address is refused whatever it
resolved to when the URL was accepted. Used before a notification is sent and before an
$import input is downloaded."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from urllib.parse import urlsplit

from app.subscriptions.endpoint import refusal


async def refusal_now(url: str, allow_list: Sequence[str], name: str) -> str | None:
    """Why `url` may not be called now (a sentence), or None."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, parts.port or (443 if parts.scheme == "https" else 80)
        )
    except OSError as exc:
        return f"{host} does not resolve: {exc}"
    addresses = {str(info[4][0]) for info in infos}
    return refusal(url, allow_list, addresses, name)
