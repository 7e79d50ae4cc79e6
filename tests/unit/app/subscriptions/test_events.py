"""app/subscriptions/events.py: which live subscriptions have an event for one change."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from app.subscriptions.events import Subscriber, identifier_chains, subscribers_of, takes_part
from app.subscriptions.subscription import Channel, SubscriptionSettings
from app.subscriptions.topics import BUILT_IN_TOPICS
from app.subscriptions.trigger import Change, Criteria
from indexing.plan.plan import Chain, Predicate, RefIn
from indexing.registry import SearchParamRegistry

NOW = datetime(2026, 1, 1, tzinfo=UTC)
REPORT_TOPIC = BUILT_IN_TOPICS[0]
CHANNEL = Channel("https://rx.example.org/", None, ())


@pytest.fixture(scope="module")
def criteria() -> Criteria:
    return Criteria(SearchParamRegistry.load())


def report(status: str, patient: str = "Patient/p1") -> dict[str, Any]:
    return {
        "resourceType": "DiagnosticReport",
        "id": "r1",
        "meta": {"versionId": "1", "lastUpdated": "2025-06-01T10:00:00Z"},
        "status": status,
        "code": {"text": "XR"},
        "subject": {"reference": patient},
    }


def topic_subscriber(sid: str, *filters: str) -> Subscriber:
    settings = SubscriptionSettings(
        "topic", REPORT_TOPIC.url, REPORT_TOPIC.resources, filters, "id-only", CHANNEL, None
    )
    return Subscriber(sid, settings, REPORT_TOPIC)


def criteria_subscriber(sid: str, text: str) -> Subscriber:
    settings = SubscriptionSettings(
        "criteria", text, frozenset({text.split("?")[0]}), (), "empty", CHANNEL, None
    )
    return Subscriber(sid, settings, None)


SUBSCRIBERS = (
    topic_subscriber("mine", "DiagnosticReport?patient=Patient/p1"),
    topic_subscriber("theirs", "DiagnosticReport?patient=Patient/p2"),
    topic_subscriber("all"),
    criteria_subscriber("r4", "DiagnosticReport?status=preliminary"),
    criteria_subscriber("studies", "ImagingStudy?status=available"),
    topic_subscriber("hcn", "DiagnosticReport?patient.identifier=https://hcn|1"),
)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (Change("create", None, report("final")), ["mine", "all"]),
        (Change("update", report("final"), report("amended")), ["mine", "all"]),
        (Change("create", None, report("final", "Patient/p2")), ["theirs", "all"]),
        (Change("create", None, report("preliminary")), ["r4"]),
        (Change("delete", report("final"), None), []),
    ],
)
def test_each_subscriber_is_told_of_the_changes_it_asked_for(
    criteria: Criteria, change: Change, expected: list[str]
) -> None:
    # "hcn" has an unresolved chain: it matches nothing rather than failing the others
    assert subscribers_of(SUBSCRIBERS, change, criteria, NOW) == expected


def test_a_resolved_identifier_chain_matches_its_patient(criteria: Criteria) -> None:
    def resolve(predicate: Predicate) -> Predicate:
        assert isinstance(predicate, Chain)
        return RefIn("patient", ("Patient/p1",))

    change = Change("create", None, report("final"))
    assert subscribers_of(SUBSCRIBERS[-1:], change, criteria, NOW, resolve) == ["hcn"]


def test_identifier_chains_name_the_target_and_token(criteria: Criteria) -> None:
    chains = identifier_chains(
        criteria,
        ["DiagnosticReport?patient.identifier=https://hcn|1", "DiagnosticReport?patient=p1"],
    )
    assert [(c.param, target, token) for c, target, token in chains] == [
        ("patient", "Patient", "https://hcn|1")
    ]


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ({"status": "requested"}, True),
        ({"status": "active"}, True),
        ({"status": "active", "end": "2027-01-01T00:00:00Z"}, True),
        ({"status": "active", "end": "2025-01-01T00:00:00Z"}, False),
        ({"status": "off"}, False),
        ({"status": "error"}, False),
    ],
)
def test_only_requested_or_active_subscriptions_before_their_end_take_part(
    resource: dict[str, Any], expected: bool
) -> None:
    assert takes_part(resource, "2026-01-01T00:00:00+00:00") is expected


def test_the_cache_gives_the_subscribers_that_take_part_now() -> None:
    from app.subscriptions.events import SubscriberCache

    cache = SubscriberCache(
        3,
        [
            ({"status": "active", "end": "2026-06-01T00:00:00Z"}, SUBSCRIBERS[0]),
            ({"status": "requested"}, SUBSCRIBERS[1]),
            ({"status": "off"}, SUBSCRIBERS[2]),
        ],
    )
    assert cache.live("2026-01-01T00:00:00+00:00") == [SUBSCRIBERS[0], SUBSCRIBERS[1]]
    assert cache.live("2026-07-01T00:00:00+00:00") == [SUBSCRIBERS[1]]
