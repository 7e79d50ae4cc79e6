"""workers/outcomes.py: the pure decisions of asynchronous submissions, as tables."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from app.settings import Callback
from workers.outcomes import (
    after_failure,
    backoff,
    callback_after,
    finished,
    is_transient,
    lease_lost,
    signature,
)


@pytest.mark.parametrize(
    ("attempt", "seconds"), [(1, 0.5), (2, 1.0), (3, 2.0), (8, 60.0), (30, 60.0)]
)
def test_backoff_doubles_up_to_a_cap(attempt: int, seconds: float) -> None:
    assert backoff(attempt) == seconds


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (ConnectionError("down"), True),
        (TimeoutError(), True),
        (OSError("reset"), True),
        (RuntimeError("engine said no"), True),
        (KeyError("x"), False),
        (TypeError("bug"), False),
        (AssertionError(), False),
    ],
)
def test_programming_errors_are_permanent(exc: Exception, transient: bool) -> None:
    assert is_transient(exc) is transient


@pytest.mark.parametrize(
    ("attempts", "transient", "state", "not_before"),
    [
        (0, True, "queued", 100.5),
        (2, True, "queued", 102.0),
        (6, True, "queued", 132.0),
        (7, True, "dead", None),  # the 8th attempt failed: max_attempts=8
        (0, False, "dead", None),
    ],
)
def test_after_failure_retries_transient_errors_then_dead_letters(
    attempts: int, transient: bool, state: str, not_before: float | None
) -> None:
    changes = after_failure(attempts, 8, transient, "boom", 100.0)
    assert changes["state"] == state
    assert changes["attempts"] == attempts + 1
    assert changes.get("not_before") == not_before
    assert changes["error"] == "boom"


def test_finished_sets_expiry_and_a_pending_callback() -> None:
    result = {"status": 200, "headers": {}, "body": None}
    changes = finished("done", result, 10.0, 60, Callback("http://h/x", b"s"))
    assert (changes["state"], changes["expires"], changes["owner"]) == ("done", 70.0, None)
    assert changes["callback"] == {
        "url": "http://h/x",
        "state": "pending",
        "attempts": 0,
        "next_at": 10.0,
        "last_error": None,
    }
    assert "callback" not in finished("failed", result, 10.0, 60, None)


def test_a_lost_lease_is_the_next_attempt() -> None:
    assert lease_lost(2, 50.0) == {
        "state": "queued",
        "attempts": 3,
        "not_before": 50.0,
        "owner": None,
        "progress": "",
        "updated": 50.0,
    }


@pytest.mark.parametrize(
    ("attempts", "delivered", "state", "next_at"),
    [(0, True, "delivered", None), (0, False, "pending", 100.5), (7, False, "failed", 160.0)],
)
def test_callback_attempts(
    attempts: int, delivered: bool, state: str, next_at: float | None
) -> None:
    after = callback_after({"url": "u", "attempts": attempts}, delivered, "HTTP 500", 100.0)
    assert (after["state"], after["attempts"]) == (state, attempts + 1)
    assert after.get("next_at") == next_at


def test_signature_is_hmac_sha256_over_timestamp_and_body() -> None:
    mac = hmac.new(b"k", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert signature(b"k", "1700000000", b"{}") == f"t=1700000000,sha256={mac}"
