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
