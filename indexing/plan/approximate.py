"""`ap` (approximately): how far a date or number query is widened. Pure; both engine compilers
call these, so SQLite and Elasticsearch widen identically.

R4 search.html §3.1.1.4.1 (prefixes) leaves the amount to the server: "the recommended value for
the approximation is 10% of the stated value (or for a date, 10% of the gap between now and the
date)". miCDR takes the recommendation literally:

- number / quantity: the query's implicit precision range, widened to at least `value ± 10%`
  (`ap100` -> [90, 110]; `ap0` stays [-0.5, 0.5], the precision range).
- date: the query's interval, widened on both sides by 10% of the time between `now` and the
  middle of the interval (`ap2020-01-01` asked in 2030 -> about a year either side). Bounds clamp
  to the index's first and last instant.

A value matches `ap` when its own range intersects the widened one (indexing/plan/plan.py).
"""

from __future__ import annotations

from datetime import datetime

from indexing.normalize import MAX_INSTANT, MIN_INSTANT, format_instant

__all__ = ["APPROX_FRACTION", "approximate_date_range", "approximate_number_range"]

APPROX_FRACTION = 0.1


def approximate_number_range(value: float, low: float, high: float) -> tuple[float, float]:
    """The `ap` range of a number: its precision range `[low, high]`, widened to at least
    `value ± 10%`."""
    width = abs(value) * APPROX_FRACTION
    return min(low, value - width), max(high, value + width)


def approximate_date_range(low: str, high: str, now: datetime) -> tuple[str, str]:
    """The `ap` range of a date interval `[low, high]` (index instants, see
    `indexing.normalize.format_instant`): widened on both sides by 10% of the distance between
    `now` (timezone-aware) and the interval's middle."""
    start, end = _instant(low), _instant(high)
    middle = start + (end - start) / 2
    width = abs(now - middle) * APPROX_FRACTION
    try:
        widened_low = format_instant(start - width)
    except OverflowError:
        widened_low = MIN_INSTANT
    try:
        widened_high = format_instant(end + width)
    except OverflowError:
        widened_high = MAX_INSTANT
    return widened_low, widened_high


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
