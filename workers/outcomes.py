"""Pure decisions for asynchronous submissions: what a job writes after it ran, failed or
delivered a callback, returned as the changes to make (docs/implementation/async.md). The
jobs in workers/jobs.py perform them; these functions read no clock and do no I/O."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from app.settings import Callback

BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 60.0
CALLBACK_MAX_ATTEMPTS = 8

# Programming errors: retrying cannot help, so the submission goes straight to `dead`.
PERMANENT = (TypeError, ValueError, KeyError, AttributeError, AssertionError, NotImplementedError)


def backoff(attempt: int) -> float:
    """Seconds to wait before retry number `attempt` (1, 2, ...): doubling, capped."""
    return float(min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempt - 1)))


def is_transient(exc: BaseException) -> bool:
    """Anything but a programming error: an engine that did not answer, a timeout, a lost
    connection. A transient error is retried until the attempts run out."""
    return not isinstance(exc, PERMANENT)


def finished(
    state: str,
    result: Mapping[str, Any],
    now: float,
    ttl: float,
    callback: Callback | None,
) -> dict[str, Any]:
    """The changes that finish a submission (`done`, `failed` or `dead`)."""
    changes: dict[str, Any] = {
        "state": state,
        "result": dict(result),
        "progress": "",
        "updated": now,
        "finished": now,
        "expires": now + ttl,
        "owner": None,
    }
    if callback is not None:
        changes["callback"] = {
            "url": callback.url,
            "state": "pending",
            "attempts": 0,
            "next_at": now,
            "last_error": None,
        }
    return changes


def after_failure(
    attempts: int, max_attempts: int, transient: bool, error: str, now: float
) -> dict[str, Any]:
    """A run that raised: back to `queued` with a later `not_before` while attempts remain and
    the error is transient, else `dead` (the caller adds the dead result and expiry)."""
    if transient and attempts + 1 < max_attempts:
        return {
            "state": "queued",
            "attempts": attempts + 1,
            "not_before": now + backoff(attempts + 1),
            "owner": None,
            "error": error,
            "progress": "",
            "updated": now,
        }
    return {"state": "dead", "attempts": attempts + 1, "error": error}


def lease_lost(attempts: int, now: float) -> dict[str, Any]:
    """A running submission whose worker stopped renewing its lease: queued again, as the next
    delivery attempt (so it gets a new job id)."""
    return {
        "state": "queued",
        "attempts": attempts + 1,
        "not_before": now,
        "owner": None,
        "progress": "",
        "updated": now,
    }


def callback_after(
    callback: Mapping[str, Any], delivered: bool, error: str | None, now: float
) -> dict[str, Any]:
    """The callback's state after one delivery attempt."""
    attempts = int(callback.get("attempts", 0)) + 1
    if delivered:
        return {
            **callback,
            "state": "delivered",
            "attempts": attempts,
            "delivered_at": now,
            "last_error": None,
        }
    state = "failed" if attempts >= CALLBACK_MAX_ATTEMPTS else "pending"
    return {
        **callback,
        "state": state,
        "attempts": attempts,
        "last_error": error,
        "next_at": now + backoff(attempts),
    }


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """`X-Micdr-Signature`: `t=<timestamp>,sha256=<HMAC-SHA256(secret, "<timestamp>." + body)>`."""
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},sha256={digest}"
