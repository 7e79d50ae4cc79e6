"""`micdr report`'s page (app/report.py): month bounds and the rendering of figures as text."""

from __future__ import annotations

import pytest

from app.report import month_bounds, render_report


@pytest.mark.parametrize(
    ("period", "bounds"),
    [("2026-10", ("2026-10-01", "2026-11-01")), ("2026-12", ("2026-12-01", "2027-01-01"))],
)
def test_a_month_is_its_first_day_up_to_the_next_months(
    period: str, bounds: tuple[str, str]
) -> None:
    assert month_bounds(period) == bounds


@pytest.mark.parametrize("period", ["2026-13", "2026-00", "2026-1", "October", ""])
def test_a_bad_period_is_refused(period: str) -> None:
    with pytest.raises(ValueError, match="--period must be a month YYYY-MM"):
        month_bounds(period)


def test_values_are_text_and_hours_are_shown_from_minutes() -> None:
    html = render_report(
        "2026-10",
        {
            "volume": [
                {"month": "2026-10", "modality": "<b>", "performing_org_upi": None, "episodes": 3}
            ],
            "turnaround": [
                {
                    "modality": "CT",
                    "episodes": 3,
                    "order_to_exam_avg": 90.0,
                    "exam_to_report_avg": None,
                    "order_to_report_avg": 45.0,
                }
            ],
        },
        [{"rule": "order-without-study", "key": "ServiceRequest/1", "value": "2026-10-01"}],
        "2026-11-01T00:00:00Z",
    )
    assert "<td>&lt;b&gt;</td>" in html and "<b>" not in html
    assert "<tr><td>CT</td><td>3</td><td>1.5</td><td>—</td><td>0.8</td></tr>" in html
    assert "<td>order-without-study</td><td>ServiceRequest/1</td>" in html
    assert html.count('colspan="2">No episodes.') == 1  # unreported: no rows
