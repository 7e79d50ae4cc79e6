"""app/subscriptions/trigger.py: which committed changes are events, on the version before and
after (R4 subscription.html criteria; Backport IG SubscriptionTopic.resourceTrigger)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from app.subscriptions.topics import BUILT_IN_TOPICS, QueryCriteria, ResourceTrigger, Topic
from app.subscriptions.trigger import Change, Criteria, InvalidCriteria, split_criteria
from indexing.plan.plan import Chain, Predicate, RefIn
from indexing.registry import SearchParamRegistry

NOW = datetime(2026, 1, 1, tzinfo=UTC)
REPORT_TOPIC, STUDY_TOPIC, ORDER_TOPIC = BUILT_IN_TOPICS


@pytest.fixture(scope="module")
def criteria() -> Criteria:
    return Criteria(SearchParamRegistry.load())


def report(status: str, version: int = 1, patient: str = "Patient/p1") -> dict[str, Any]:
    return {
        "resourceType": "DiagnosticReport",
        "id": "r1",
        "meta": {"versionId": str(version), "lastUpdated": "2025-06-01T10:00:00Z"},
        "status": status,
        "code": {"coding": [{"system": "http://loinc.org", "code": "36643-5"}]},
        "subject": {"reference": patient},
    }


def order(status: str, version: int = 1) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "id": "o1",
        "meta": {"versionId": str(version), "lastUpdated": "2025-06-01T10:00:00Z"},
        "status": status,
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
    }


def test_split_criteria_reads_the_type_and_the_query_pairs() -> None:
    assert split_criteria("DiagnosticReport?status=final&patient=Patient/1") == (
        "DiagnosticReport",
        [("status", "final"), ("patient", "Patient/1")],
    )
    with pytest.raises(InvalidCriteria):
        split_criteria("?status=final")


def test_criteria_with_an_unknown_parameter_are_invalid(criteria: Criteria) -> None:
    with pytest.raises(InvalidCriteria, match="nonsense"):
        criteria.check("DiagnosticReport?nonsense=1")
    assert criteria.check("DiagnosticReport?status=final") == "DiagnosticReport"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (Change("create", None, report("final")), True),
        (Change("update", report("preliminary"), report("final", 2)), True),  # starts matching
        (Change("update", report("final"), report("final", 2)), True),  # keeps matching
        (Change("update", report("final"), report("preliminary", 2)), False),  # stops matching
        (Change("create", None, report("preliminary")), False),
        (Change("delete", report("final"), None), False),  # R4 criteria notify no delete
    ],
)
def test_r4_criteria_fire_when_the_new_version_matches(
    criteria: Criteria, change: Change, expected: bool
) -> None:
    assert criteria.r4_criteria_fire("DiagnosticReport?status=final", change, NOW) is expected


@pytest.mark.parametrize(
    ("change", "filters", "expected"),
    [
        (Change("create", None, report("final")), (), True),
        (Change("create", None, report("preliminary")), (), False),
        (Change("update", report("final"), report("amended", 2)), (), True),
        (Change("update", report("final"), report("corrected", 2)), (), True),
        (Change("update", report("final"), report("appended", 2)), (), True),
        (Change("update", report("final"), report("cancelled", 2)), (), False),
        (Change("delete", report("final"), None), (), False),  # not a supported interaction
        (
            Change("update", report("final"), report("amended", 2)),
            ("DiagnosticReport?patient=Patient/p1",),
            True,
        ),
        (
            Change("update", report("final"), report("amended", 2)),
            ("DiagnosticReport?patient=Patient/p2",),
            False,
        ),
        (
            Change("create", None, report("final")),
            ("DiagnosticReport?code=http://loinc.org|36643-5",),
            True,
        ),
        (
            Change("create", None, report("final")),
            ("ImagingStudy?modality=CT",),  # a filter on another type does not apply
            True,
        ),
    ],
)
def test_the_imaging_report_topic_fires_on_final_and_later_statuses(
    criteria: Criteria, change: Change, filters: tuple[str, ...], expected: bool
) -> None:
    assert criteria.topic_fires(REPORT_TOPIC, change, filters, NOW) is expected


def test_a_patient_identifier_filter_uses_the_callers_resolution(criteria: Criteria) -> None:
    def resolve(predicate: Predicate) -> Predicate:
        assert isinstance(predicate, Chain)
        return RefIn(predicate.param, ("Patient/p1",))

    change = Change("create", None, report("final"))
    hcn = ("DiagnosticReport?patient.identifier=https://hcn|123",)
    assert criteria.topic_fires(REPORT_TOPIC, change, hcn, NOW, resolve) is True
    other = Change("create", None, report("final", patient="Patient/p2"))
    assert criteria.topic_fires(REPORT_TOPIC, other, hcn, NOW, resolve) is False


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (Change("create", None, order("active")), True),
        (Change("update", order("active"), order("completed", 2)), True),
        (Change("update", order("active"), order("active", 2)), False),  # no transition
    ],
)
def test_the_order_topic_fires_on_a_status_transition(
    criteria: Criteria, change: Change, expected: bool
) -> None:
    assert criteria.topic_fires(ORDER_TOPIC, change, (), NOW) is expected


def _query_topic(query: QueryCriteria) -> Topic:
    trigger = ResourceTrigger("DiagnosticReport", frozenset({"create", "update", "delete"}), query)
    return Topic("http://t", "t", "active", (trigger,), ())


@pytest.mark.parametrize(
    ("query", "change", "expected"),
    [
        # previous not final, current final: "became final"
        (
            QueryCriteria("status:not=final", "status=final", require_both=True),
            Change("update", report("preliminary"), report("final", 2)),
            True,
        ),
        (
            QueryCriteria("status:not=final", "status=final", require_both=True),
            Change("update", report("final"), report("final", 2)),
            False,
        ),
        (
            QueryCriteria("status:not=final", "status=final", require_both=False),
            Change("update", report("final"), report("final", 2)),
            True,
        ),
        # on a create there is no previous version: resultForCreate decides that side
        (
            QueryCriteria("status:not=final", "status=final", require_both=True),
            Change("create", None, report("final")),
            True,
        ),
        (
            QueryCriteria("status:not=final", "status=final", True, result_for_create="test-fails"),
            Change("create", None, report("final")),
            False,
        ),
        # only current criteria and requireBoth: the missing side does not count
        (
            QueryCriteria(None, "status=final", require_both=True),
            Change("update", report("final"), report("final", 2)),
            True,
        ),
        # a delete: resultForDelete decides the current side
        (
            QueryCriteria("status=final", "status=final", True, result_for_delete="test-fails"),
            Change("delete", report("final"), None),
            False,
        ),
        (
            QueryCriteria("status=final", "status=final", True),
            Change("delete", report("final"), None),
            True,
        ),
    ],
)
def test_query_criteria_test_the_version_before_and_after(
    criteria: Criteria, query: QueryCriteria, change: Change, expected: bool
) -> None:
    assert criteria.topic_fires(_query_topic(query), change, (), NOW) is expected


def test_a_trigger_on_another_type_does_not_fire(criteria: Criteria) -> None:
    change = Change("create", None, report("final"))
    assert criteria.topic_fires(STUDY_TOPIC, change, (), NOW) is False


def test_a_bad_fhirpath_criterion_is_reported(criteria: Criteria) -> None:
    trigger = ResourceTrigger("DiagnosticReport", frozenset({"create"}), fhirpath="%current.(")
    topic = Topic("http://t", "t", "active", (trigger,), ())
    with pytest.raises(InvalidCriteria, match="fhirPathCriteria"):
        criteria.topic_fires(topic, Change("create", None, report("final")), (), NOW)
