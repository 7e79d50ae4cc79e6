"""`ap` widening (indexing/plan/approximate.py), shared by both engine compilers.

R4 search.html §3.1.1.4.1: "the recommended value for the approximation is 10% of the stated
value (or for a date, 10% of the gap between now and the date)".
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from indexing.plan.approximate import approximate_date_range, approximate_number_range

YEAR = 365.25 * 86400


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize(
    ("value", "low", "high", "expected"),
    [
        (100.0, 99.5, 100.5, (90.0, 110.0)),
        (-100.0, -100.5, -99.5, (-110.0, -90.0)),
        (0.0, -0.5, 0.5, (-0.5, 0.5)),  # nothing to take 10% of: the precision range stays
        (1.0, 0.5, 1.5, (0.5, 1.5)),  # the precision range is wider than 10%
    ],
)
def test_a_number_widens_to_at_least_ten_percent(
    value: float, low: float, high: float, expected: tuple[float, float]
) -> None:
    assert approximate_number_range(value, low, high) == pytest.approx(expected)


def test_a_date_widens_by_a_tenth_of_the_distance_to_now_on_both_sides() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    low, high = approximate_date_range("2020-01-01T00:00:00.000Z", "2020-01-01T23:59:59.999Z", now)
    start = datetime(2020, 1, 1, tzinfo=UTC)
    assert (start - _instant(low)).total_seconds() == pytest.approx(YEAR, rel=1e-3)
    assert (_instant(high) - start).total_seconds() == pytest.approx(YEAR + 86400, rel=1e-3)


def test_a_future_date_widens_the_same_way() -> None:
    now = datetime(2020, 1, 1, tzinfo=UTC)
    low, high = approximate_date_range("2030-01-01T00:00:00.000Z", "2030-01-01T23:59:59.999Z", now)
    start = datetime(2030, 1, 1, tzinfo=UTC)
    assert (start - _instant(low)).total_seconds() == pytest.approx(YEAR, rel=1e-3)
    assert (_instant(high) - start).total_seconds() == pytest.approx(YEAR + 86400, rel=1e-3)


def test_the_widened_range_clamps_to_the_first_and_last_instant() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert (
        approximate_date_range("0001-01-01T00:00:00.000Z", "0001-12-31T23:59:59.999Z", now)[0]
        == "0001-01-01T00:00:00.000Z"
    )
    assert (
        approximate_date_range("9999-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z", now)[1]
        == "9999-12-31T23:59:59.999Z"
    )
