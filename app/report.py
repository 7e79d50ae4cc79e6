"""`micdr report`: the dashboard's figures for one month as a static HTML page with charts
(SVG, no script, no external file), for people who never open the dashboard. Rendering is
pure (`render_report`); app/cli.py asks the episode index and writes the file."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date
from html import escape
from typing import Any

__all__ = ["month_bounds", "render_report"]

_MONTH = re.compile(r"(\d{4})-(\d{2})")
COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "volume": (
        ("month", "Month"),
        ("modality", "Modality"),
        ("performing_org_upi", "Site"),
        ("episodes", "Episodes"),
    ),
    "turnaround": (
        ("modality", "Modality"),
        ("episodes", "Episodes"),
        ("order_to_exam_avg", "Order → exam (h)"),
        ("exam_to_report_avg", "Exam → final report (h)"),
        ("order_to_report_avg", "Order → final report (h)"),
    ),
    "unreported": (("modality", "Modality"), ("episodes", "Episodes")),
    "repeats": (
        ("procedure_code", "Procedure"),
        ("episodes", "Episodes"),
        ("repeats", "Repeats within 30 days"),
    ),
    "amendments": (("modality", "Modality"), ("reported", "Reported"), ("amended", "Amended")),
}
TITLES = {
    "volume": "Exams by modality and site",
    "turnaround": "Waits (average hours)",
    "unreported": "Orders without a final report",
    "repeats": "Repeat imaging",
    "amendments": "Amended reports",
}
HOURS = {"order_to_exam_avg", "exam_to_report_avg", "order_to_report_avg"}
HOURS_FIELD = "exam_to_report_avg"  # the waits' chart


def month_bounds(period: str) -> tuple[str, str]:
    """`YYYY-MM` -> (its first day, the next month's first day). Raises ValueError."""
    match = _MONTH.fullmatch(period)
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"--period must be a month YYYY-MM, got {period!r}")
    year, month = int(match.group(1)), int(match.group(2))
    after = date(year + month // 12, month % 12 + 1, 1)
    return date(year, month, 1).isoformat(), after.isoformat()


def _cell(field: str, value: Any) -> str:
    if value is None:
        return "—"
    if field in HOURS:
        return f"{value / 60:.1f}"
    return str(value)


def _bars(label_field: str, value_field: str, rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return ""
    top = max((r.get(value_field) or 0) for r in rows) or 1
    height = 22 * len(rows) + 10
    parts = [f'<svg viewBox="0 0 640 {height}" role="img" width="640" height="{height}">']
    for i, row in enumerate(rows):
        y = 5 + 22 * i
        value = row.get(value_field) or 0
        width = max(value / top * 420, 1)
        parts.append(
            f'<text x="0" y="{y + 14}">{escape(str(row.get(label_field) or "—"))}</text>'
            f'<rect x="150" y="{y}" width="{width:.1f}" height="16" fill="#2f7ab8"/>'
            f'<text x="{150 + width + 4:.1f}" y="{y + 14}">{value}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _table(question: str, rows: Sequence[Mapping[str, Any]]) -> str:
    columns = COLUMNS[question]
    head = "".join(f"<th>{escape(title)}</th>" for _, title in columns)
    if not rows:
        body = f'<tr><td colspan="{len(columns)}">No episodes.</td></tr>'
    else:
        body = "".join(
            "<tr>" + "".join(f"<td>{escape(_cell(f, r.get(f)))}</td>" for f, _ in columns) + "</tr>"
            for r in rows
        )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_report(
    period: str,
    answers: Mapping[str, Sequence[Mapping[str, Any]]],
    alerts: Sequence[Mapping[str, Any]],
    generated: str,
) -> str:
    """The whole page: a section per question (a bar chart where one helps, and the table),
    then the alerts firing when it was generated."""
    sections = []
    for question, title in TITLES.items():
        rows = answers.get(question, [])
        chart = ""
        if question == "volume":
            chart = _bars("modality", "episodes", rows)
        elif question == "turnaround":  # exam to final report, in hours like the table
            hours = [
                {
                    **r,
                    "hours": None if r.get(HOURS_FIELD) is None else round(r[HOURS_FIELD] / 60, 1),
                }
                for r in rows
            ]
            chart = _bars("modality", "hours", hours)
        sections.append(
            f"<section><h2>{escape(title)}</h2>{chart}{_table(question, rows)}</section>"
        )
    alert_rows = (
        "".join(
            "<tr>"
            + "".join(f"<td>{escape(str(a.get(f) or '—'))}</td>" for f in ("rule", "key", "value"))
            + "</tr>"
            for a in alerts
        )
        or '<tr><td colspan="3">None.</td></tr>'
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>miCDR imaging report {escape(period)}</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2rem;color:#1b1f24}"
        "table{border-collapse:collapse;margin:.5rem 0 1.5rem}"
        "th,td{border-bottom:1px solid #ddd;padding:.2rem .6rem;text-align:left}"
        "svg text{font-size:11px}</style></head><body>"
        f"<h1>miCDR imaging report — {escape(period)}</h1>"
        f"<p>Imaging episodes dated in {escape(period)}; generated {escape(generated)}.</p>"
        + "".join(sections)
        + "<section><h2>Alerts at generation</h2><table><thead><tr><th>Rule</th><th>Episode"
        f"</th><th>Since</th></tr></thead><tbody>{alert_rows}</tbody></table></section>"
        "</body></html>"
    )
