"""app/subscriptions/delivery.py: after each attempt, deliver on, retry with a doubling delay,
or put the subscription in `error` with the reason."""

from __future__ import annotations

import pytest

from app.subscriptions.delivery import (
    Attempt,
    Delivered,
    Failed,
    Retry,
    RetryPolicy,
    after_attempt,
    after_handshake,
    next_step,
)

POLICY = RetryPolicy(first_delay=1.0, max_delay=5.0, max_failures=5)


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_a_2xx_answer_is_a_delivery_whatever_failed_before(status: int) -> None:
    assert after_attempt(3, Attempt(status), POLICY) == Delivered()


@pytest.mark.parametrize(
    ("failures_before", "expected"),
    [
        (0, Retry(1.0, 1)),
        (1, Retry(2.0, 2)),
        (2, Retry(4.0, 3)),
        (3, Retry(5.0, 4)),  # capped at max_delay
        (4, Failed("the endpoint answered HTTP 503 (5 consecutive failed attempts)")),
    ],
)
def test_failures_back_off_then_give_up(failures_before: int, expected: object) -> None:
    assert after_attempt(failures_before, Attempt(503), POLICY) == expected


@pytest.mark.parametrize("status", [301, 400, 404, 410, 500])
def test_any_other_status_is_a_failure(status: int) -> None:
    assert after_attempt(0, Attempt(status), POLICY) == Retry(1.0, 1)


def test_no_answer_gives_up_with_the_transport_error() -> None:
    decision = after_attempt(4, Attempt(None, "connection refused"), POLICY)
    assert decision == Failed(
        "the endpoint could not be reached: connection refused (5 consecutive failed attempts)"
    )


def test_a_failed_handshake_is_an_error_at_once() -> None:
    assert after_handshake(Attempt(200)) == Delivered()
    assert after_handshake(Attempt(None, "timed out")) == Failed(
        "handshake failed: the endpoint could not be reached: timed out"
    )
    assert after_handshake(Attempt(404)) == Failed(
        "handshake failed: the endpoint answered HTTP 404"
    )


NOW = 1_000.0
NOW_ISO = "2026-12-06T12:00:00+00:00"


@pytest.mark.parametrize(
    ("status", "end", "heartbeat", "pending", "retry_at", "last_sent", "expected"),
    [
        ("off", None, None, True, 0.0, 0.0, "wait"),
        ("error", None, None, True, 0.0, 0.0, "wait"),
        ("requested", None, None, False, 0.0, 0.0, "handshake"),
        ("requested", None, None, False, NOW + 1, 0.0, "wait"),  # retried later
        ("active", None, None, True, 0.0, 0.0, "events"),
        ("active", None, None, True, NOW + 0.5, 0.0, "wait"),  # backing off
        ("active", None, None, False, 0.0, 0.0, "wait"),
        ("active", None, 60, False, 0.0, NOW - 60, "heartbeat"),
        ("active", None, 60, False, 0.0, NOW - 59, "wait"),
        ("active", None, 60, True, 0.0, NOW - 600, "events"),  # events count as a heartbeat
        ("active", "2026-12-06T12:00:00+00:00", None, True, 0.0, 0.0, "turn-off"),
        ("requested", "2026-12-06T11:59:59+00:00", None, False, NOW + 9, 0.0, "turn-off"),
        ("active", "2026-12-06T12:00:01+00:00", None, True, 0.0, 0.0, "events"),
        ("off", "2020-01-01T00:00:00+00:00", None, False, 0.0, 0.0, "wait"),
    ],
)
def test_the_next_step_follows_status_end_backoff_and_heartbeat(
    status: str,
    end: str | None,
    heartbeat: int | None,
    pending: bool,
    retry_at: float,
    last_sent: float,
    expected: str,
) -> None:
    assert next_step(status, end, heartbeat, pending, retry_at, last_sent, NOW, NOW_ISO) == expected
