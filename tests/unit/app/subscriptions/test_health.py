"""app/subscriptions/health.py: the delivery figures of `/health`."""

from __future__ import annotations

from datetime import UTC, datetime

from app.subscriptions.health import Backlog, delivery_summary

NOW = datetime(2026, 12, 6, 12, 0, 10, tzinfo=UTC)


def test_statuses_are_counted_and_the_oldest_undelivered_event_gives_the_lag() -> None:
    summary = delivery_summary(
        ["active", "error", "active", "off", "active"],
        [
            Backlog(3, "2026-12-06T12:00:07.500Z", retrying=True),
            Backlog(0, None, retrying=False),
            Backlog(1, "2026-12-06T12:00:09Z", retrying=False),
        ],
        NOW,
    )
    assert summary == {
        "by_status": {"active": 3, "error": 1, "off": 1},
        "undelivered_events": 4,
        "oldest_undelivered_event": "2026-12-06T12:00:07.500Z",
        "delivery_lag_seconds": 2.5,
        "retrying": 1,
    }


def test_nothing_waiting_is_no_lag() -> None:
    assert delivery_summary([], [], NOW) == {
        "by_status": {},
        "undelivered_events": 0,
        "oldest_undelivered_event": None,
        "delivery_lag_seconds": 0.0,
        "retrying": 0,
    }
