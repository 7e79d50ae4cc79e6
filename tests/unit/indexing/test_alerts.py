"""Turnaround alert rules (indexing/alerts.py): parsing MICDR_ALERT_RULES, and when a rule
fires."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from indexing.alerts import DEFAULT_RULES, AlertRule, parse_rules, reference_alerts

NOW = datetime(2026, 10, 10, 12, 0, tzinfo=UTC)


def test_no_setting_means_the_default_rules() -> None:
    assert parse_rules(None) == DEFAULT_RULES


def test_a_rule_set_is_parsed() -> None:
    text = '[{"name": "slow", "statuses": ["ordered"], "field": "ordered_at", "hours": 24}]'
    assert parse_rules(text) == (AlertRule("slow", ("ordered",), "ordered_at", 24.0),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "alert rules are not JSON"),
        ("{}", "alert rules must be a JSON list"),
        ('[{"name": "x"}]', "alert rule 1 must have exactly name, statuses, field and hours"),
        (
            '[{"name": "x", "statuses": ["ordered"], "field": "modality", "hours": 1}]',
            "alert rule 1: field must be a time",
        ),
        (
            '[{"name": "x", "statuses": [], "field": "ordered_at", "hours": 1}]',
            "alert rule 1: statuses must be a non-empty list",
        ),
        (
            '[{"name": "x", "statuses": ["ordered"], "field": "ordered_at", "hours": 0}]',
            "alert rule 1: hours must be a positive number",
        ),
        (
            '[{"name": "x", "statuses": ["ordered"], "field": "ordered_at", "hours": true}]',
            "alert rule 1: hours must be a positive number",
        ),
    ],
)
def test_a_bad_rule_set_is_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rules(text)


def doc(key: str, status: str, **fields: Any) -> dict[str, Any]:
    return {"key": key, "status": status, "modality": "CT", **fields}


def test_rules_fire_past_their_limit_only_in_their_statuses() -> None:
    docs = [
        doc("a", "ordered", ordered_at="2026-10-07T11:59:59Z"),  # 72 h and 1 s ago: fires
        doc("b", "ordered", ordered_at="2026-10-07T12:00:00Z"),  # exactly 72 h: not yet
        doc("c", "performed", ordered_at="2026-10-01T00:00:00Z", performed_at=None),
        doc("d", "performed", performed_at="2026-10-08T11:00:00Z"),  # 49 h: fires
        doc("e", "amended", exam_to_report_minutes=7 * 24 * 60 + 1),  # fires
        doc("f", "amended", exam_to_report_minutes=7 * 24 * 60),  # not above the limit
    ]
    fired = [(row["rule"], row["key"]) for row in reference_alerts(DEFAULT_RULES, docs, NOW)]
    assert fired == [
        ("order-without-study", "a"),
        ("study-without-final-report", "d"),
        ("late-amendment", "e"),
    ]
