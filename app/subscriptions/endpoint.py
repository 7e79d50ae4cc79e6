"""Where a notification may be sent: the rule against server-side request forgery.

A subscription's `channel.endpoint` must be an absolute `https` URL; plain `http` only to a
loopback address (a receiver on the same machine, as in development and tests). An address in
a private, link-local, shared, reserved or unspecified range is refused, whatever the scheme,
unless its host is on the operator's allow-list: the server would otherwise be a way into the
network it runs in. A host name is checked here as written and again, by the sender, on every
address it resolves to at delivery time (`refusal(..., addresses=...)`), so a name that
resolves to an internal address is refused too."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

__all__ = ["refusal"]

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def refusal(
    endpoint: str,
    allow_list: Iterable[str] = (),
    addresses: Iterable[str] = (),
    name: str = "channel.endpoint",
) -> str | None:
    """Why `endpoint` may not be called (a sentence), or None when it may. `allow_list` holds
    host names or addresses the operator trusts; `addresses` are those the host resolved to;
    `name` is what the sentence calls the URL (an $import input's too)."""
    try:
        parts = urlsplit(endpoint)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        return f"{name} {endpoint!r} is not a valid URL"
    if parts.scheme not in {"https", "http"} or not host:
        return f"{name} {endpoint!r} must be an absolute https URL"
    if parts.username is not None or parts.password is not None:
        return f"{name} must not carry credentials in the URL"
    allowed = {a.lower() for a in allow_list}
    if host in allowed:
        return None
    literal = _address(host)
    resolved = [a for a in (_address(x) for x in addresses) if a is not None]
    candidates = [literal] if literal is not None else resolved
    loopback = host in _LOOPBACK_NAMES or (
        bool(candidates) and all(a.is_loopback for a in candidates)
    )
    if parts.scheme == "http" and not loopback:
        return f"{name} {endpoint!r} must use https (http only to a loopback address)"
    for address in candidates:
        if str(address) in allowed or address.is_loopback:
            continue
        if not address.is_global or address.is_multicast:
            return (
                f"{name} {endpoint!r} reaches the internal address {address}, "
                "which is not on the allow-list"
            )
    return None


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
