"""Turnaround alerts over imaging episodes: a rule set as data, and a Python reference (pure).

A rule watches episodes in some statuses and fires for each whose `field` passed its limit:
a time field (`ordered_at`, `performed_at`...) older than `hours` at `now`, or a minutes field
(`exam_to_report_minutes`...) above `hours` hours. An alert is a state of the index, not an
event: it is listed while its condition holds and is gone (cleared) once the episode moves on
(a study arrives, a report is finalised). Each episode index answers a rule with one query
(`EpisodeIndex.alerts`); `reference_alerts` is what they must equal.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from indexing.analytics import FIELDS

__all__ = ["DEFAULT_RULES", "AlertRule", "parse_rules", "reference_alerts", "threshold"]

# what an alert row carries besides the rule's name
ALERT_FIELDS = ("key", "status", "modality", "performing_org_upi", "episode_date")


@dataclass(frozen=True)
class AlertRule:
    name: str
    statuses: tuple[str, ...]
    field: str
    hours: float

    @property
    def is_age(self) -> bool:
        return FIELDS[self.field] == "date"


DEFAULT_RULES = (
    AlertRule("order-without-study", ("ordered",), "ordered_at", 72),
    AlertRule("study-without-final-report", ("performed",), "performed_at", 48),
    AlertRule("late-amendment", ("amended",), "exam_to_report_minutes", 7 * 24),
)


def parse_rules(text: str | None) -> tuple[AlertRule, ...]:
    """MICDR_ALERT_RULES: a JSON list of {name, statuses, field, hours}; None: DEFAULT_RULES.
    Raises ValueError naming the first bad rule."""
    if text is None:
        return DEFAULT_RULES
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"alert rules are not JSON: {exc}") from None
    if not isinstance(raw, list):
        raise ValueError("alert rules must be a JSON list of {name, statuses, field, hours}")
    rules = []
    for n, item in enumerate(raw):
        problem = f"alert rule {n + 1}"
        if not isinstance(item, dict) or set(item) != {"name", "statuses", "field", "hours"}:
            raise ValueError(f"{problem} must have exactly name, statuses, field and hours")
        kind = FIELDS.get(item["field"])
        if kind not in ("date", "integer") or not str(item["field"]).endswith(("_at", "_minutes")):
            raise ValueError(f"{problem}: field must be a time (…_at) or minutes field")
        statuses = item["statuses"]
        if (
            not isinstance(statuses, list)
            or not statuses
            or not all(isinstance(s, str) for s in statuses)
        ):
            raise ValueError(f"{problem}: statuses must be a non-empty list of strings")
        hours = item["hours"]
        if not isinstance(hours, int | float) or isinstance(hours, bool) or hours <= 0:
            raise ValueError(f"{problem}: hours must be a positive number")
        rules.append(AlertRule(str(item["name"]), tuple(statuses), item["field"], float(hours)))
    return tuple(rules)


def threshold(rule: AlertRule, now: datetime) -> str | float:
    """The limit `field` is compared with: a time (older fires) or minutes (more fires)."""
    if rule.is_age:
        return (now.astimezone(UTC) - timedelta(hours=rule.hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return rule.hours * 60


def fires(rule: AlertRule, doc: Mapping[str, Any], now: datetime) -> bool:
    value = doc.get(rule.field)
    if doc.get("status") not in rule.statuses or value is None:
        return False
    limit = threshold(rule, now)
    return bool(value < limit) if rule.is_age else bool(value > limit)


def alert_row(rule: AlertRule, doc: Mapping[str, Any]) -> dict[str, Any]:
    return {"rule": rule.name, **{f: doc.get(f) for f in ALERT_FIELDS}, "value": doc[rule.field]}


def reference_alerts(
    rules: Sequence[AlertRule], docs: Iterable[Mapping[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    """Every firing (rule, episode), in rule order then episode key."""
    docs = list(docs)
    return [
        alert_row(rule, doc)
        for rule in rules
        for doc in sorted(docs, key=lambda d: d["key"])
        if fires(rule, doc, now)
    ]
