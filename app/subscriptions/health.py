"""What `/health` says of subscription delivery: how many subscriptions are in each status,
how many events wait to be delivered to the live ones, and how old the oldest of them is (the
delivery lag). Pure: the caller reads the statuses and each live subscription's backlog."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

__all__ = ["Backlog", "delivery_summary"]


@dataclass(frozen=True)
class Backlog:
    """One live subscription's undelivered events: how many, and the oldest one's commit time
    (None when there is none)."""

    events: int
    oldest: str | None
    retrying: bool


def delivery_summary(
    statuses: Sequence[str], backlogs: Sequence[Backlog], now: datetime
) -> Mapping[str, object]:
    oldest = min((b.oldest for b in backlogs if b.oldest is not None), default=None)
    lag = (now - datetime.fromisoformat(oldest)).total_seconds() if oldest is not None else 0.0
    return {
        "by_status": dict(sorted(Counter(statuses).items())),
        "undelivered_events": sum(b.events for b in backlogs),
        "oldest_undelivered_event": oldest,
        "delivery_lag_seconds": round(max(0.0, lag), 3),
        "retrying": sum(b.retrying for b in backlogs),
    }
