"""The episode builder (indexing/episodes.py): members -> one analyst document, exactly."""

from __future__ import annotations

from typing import Any

import pytest

from indexing.episodes import (
    EpisodeContext,
    accessions,
    age_band,
    build_episode,
    episode_key,
    group_members,
    mark_repeats,
    pseudonym,
    utc,
)
from tests._episodes import (
    ACSN_SYSTEM,
    UPI_SYSTEM,
    order,
    organization,
    patient,
    ref,
    report,
    study,
)

KEY = b"test-key"
CTX = EpisodeContext(
    referenced={"Patient/p1": patient(), "Organization/hosp-a": organization()},
    accession_systems=frozenset({ACSN_SYSTEM}),
    upi_systems=frozenset({UPI_SYSTEM}),
    pseudonym_key=KEY,
)
SYSTEMS = frozenset({ACSN_SYSTEM})


def members(*resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {ref(r): r for r in resources}


FULL = {
    "key": "ServiceRequest/o1",
    "order": "ServiceRequest/o1",
    "studies": ["ImagingStudy/s1"],
    "reports": ["DiagnosticReport/r1"],
    "accessions": [f"{ACSN_SYSTEM}|ACC1"],
    "patient": "Patient/p1",
    "patient_key": pseudonym(KEY, "Patient/p1"),
    "patient_sex": "female",
    "patient_age_band": "18-39",
    "procedure_system": "urn:oid:2.16.840.1.113883.3.239.99.1",
    "procedure_code": "XR-CHEST",
    "procedure_display": "XR-CHEST display",
    "modality": "DX",
    "modalities": ["DX"],
    "body_site": "51185008",
    "priority": "routine",
    "ordering_org_upi": "UPI443",
    "ordering_org_name": "Hospital A",
    "performing_org_upi": "UPI443",
    "performing_org_name": "Hospital A",
    "episode_date": "2026-10-01T12:00:00Z",
    "month": "2026-10",
    "ordered_at": "2026-10-01T12:00:00Z",
    "performed_at": "2026-10-01T13:30:00Z",
    "first_report_at": "2026-10-01T19:00:00Z",
    "final_report_at": "2026-10-01T19:00:00Z",
    "last_amendment_at": None,
    "order_to_exam_minutes": 90,
    "exam_to_report_minutes": 330,
    "order_to_report_minutes": 420,
    "status": "reported",
    "series_count": 2,
    "instance_count": 5,
    "report_count": 1,
    "addendum_count": 0,
    "repeat": False,
    "referenced": ["Organization/hosp-a", "Patient/p1"],
}


def test_an_order_with_its_study_and_final_report_is_one_reported_episode() -> None:
    doc = build_episode("ServiceRequest/o1", members(order(), study(), report()), CTX)
    assert doc == FULL


def test_an_order_alone_is_ordered_with_nothing_measured_after_it() -> None:
    doc = build_episode("ServiceRequest/o1", members(order()), CTX)
    assert doc == {
        **FULL,
        "studies": [],
        "reports": [],
        "modalities": ["DX"],
        "performed_at": None,
        "first_report_at": None,
        "final_report_at": None,
        "order_to_exam_minutes": None,
        "exam_to_report_minutes": None,
        "order_to_report_minutes": None,
        "status": "ordered",
        "series_count": 0,
        "instance_count": 0,
        "report_count": 0,
    }


def test_an_amended_report_counts_as_an_addendum_and_marks_the_episode_amended() -> None:
    amended = report(status="amended", issued="2026-10-09T10:00:00Z")
    doc = build_episode("ServiceRequest/o1", members(order(), study(), amended), CTX)
    assert {
        k: doc[k]
        for k in (
            "status",
            "final_report_at",
            "last_amendment_at",
            "addendum_count",
            "report_count",
            "exam_to_report_minutes",
        )
    } == {
        "status": "amended",
        "final_report_at": "2026-10-09T10:00:00Z",
        "last_amendment_at": "2026-10-09T10:00:00Z",
        "addendum_count": 1,
        "report_count": 1,
        "exam_to_report_minutes": 11310,  # 7 days 20 h 30 min
    }


def test_a_preliminary_report_makes_a_first_report_but_no_final_one() -> None:
    doc = build_episode(
        "ServiceRequest/o1", members(order(), study(), report(status="preliminary")), CTX
    )
    assert (doc["status"], doc["first_report_at"], doc["final_report_at"]) == (
        "performed",
        "2026-10-01T19:00:00Z",
        None,
    )


def test_an_entered_in_error_report_is_not_counted() -> None:
    doc = build_episode(
        "ServiceRequest/o1", members(order(), study(), report(status="entered-in-error")), CTX
    )
    assert (doc["status"], doc["report_count"], doc["reports"]) == (
        "performed",
        0,
        ["DiagnosticReport/r1"],
    )


def test_a_revoked_order_without_a_study_is_cancelled() -> None:
    doc = build_episode("ServiceRequest/o1", members(order(status="revoked")), CTX)
    assert doc["status"] == "cancelled"


def test_a_study_and_report_whose_order_has_not_arrived_keep_the_orders_key() -> None:
    doc = build_episode("ServiceRequest/o1", members(study(), report()), CTX)
    assert {
        k: doc[k]
        for k in (
            "order",
            "ordered_at",
            "episode_date",
            "procedure_code",
            "priority",
            "ordering_org_upi",
            "status",
        )
    } == {
        "order": None,
        "ordered_at": None,
        "episode_date": "2026-10-01T13:30:00Z",
        "procedure_code": "XR-CHEST",
        "priority": None,
        "ordering_org_upi": None,
        "status": "reported",
    }


@pytest.mark.parametrize(
    ("resource", "orders", "key"),
    [
        (order(), {}, "ServiceRequest/o1"),
        (study(), {}, "ServiceRequest/o1"),
        (report(), {}, "ServiceRequest/o1"),
        (report(order_id=None), {f"{ACSN_SYSTEM}|ACC1": "ServiceRequest/o9"}, "ServiceRequest/o9"),
        (report(order_id=None), {}, f"Accession/{ACSN_SYSTEM}|ACC1"),
        ({**report(order_id=None), "identifier": []}, {}, "DiagnosticReport/r1"),
        ({**study(order_id=None), "identifier": []}, {}, "ImagingStudy/s1"),
    ],
)
def test_episode_key(resource: dict[str, Any], orders: dict[str, str], key: str) -> None:
    assert episode_key(ref(resource), resource, orders, SYSTEMS) == key


def test_a_report_without_based_on_joins_the_order_of_the_study_sharing_its_accession() -> None:
    groups = group_members(members(study(), report(order_id=None)), {}, SYSTEMS)
    assert groups == {"ServiceRequest/o1": ["DiagnosticReport/r1", "ImagingStudy/s1"]}


def test_orphans_sharing_an_accession_form_one_episode_keyed_by_it() -> None:
    groups = group_members(members(study(order_id=None), report(order_id=None)), {}, SYSTEMS)
    assert groups == {f"Accession/{ACSN_SYSTEM}|ACC1": ["DiagnosticReport/r1", "ImagingStudy/s1"]}


def test_accessions_are_typed_acsn_or_in_a_configured_system() -> None:
    resource = {
        "identifier": [
            {"system": "s", "value": "1", "type": {"coding": [{"code": "ACSN"}]}},
            {"system": "acc", "value": "2"},
            {"system": "other", "value": "3"},
            {"system": "acc"},
        ]
    }
    assert accessions(resource, frozenset({"acc"})) == ["s|1", "acc|2"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-10-01T08:00:00-04:00", "2026-10-01T12:00:00Z"),
        ("2026-10-01T08:00:00Z", "2026-10-01T08:00:00Z"),
        ("2026-10-01", "2026-10-01T00:00:00Z"),
        ("2026-10", "2026-10-01T00:00:00Z"),
        ("2026", "2026-01-01T00:00:00Z"),
        ("not a date", None),
        (None, None),
    ],
)
def test_utc(value: Any, expected: str | None) -> None:
    assert utc(value) == expected


@pytest.mark.parametrize(
    ("born", "at", "band"),
    [
        ("2010-10-02", "2028-10-01T00:00:00Z", "0-17"),
        ("2010-10-01", "2028-10-01T00:00:00Z", "18-39"),
        ("1986-10-01", "2026-10-01T00:00:00Z", "40-64"),
        ("1961-10-01", "2026-10-01T00:00:00Z", "65-79"),
        ("1940", "2026-10-01T00:00:00Z", "80+"),
        ("2030-01-01", "2026-10-01T00:00:00Z", None),
        (None, "2026-10-01T00:00:00Z", None),
    ],
)
def test_age_band_on_the_episode_day(born: Any, at: str, band: str | None) -> None:
    assert age_band(born, at) == band


def _episode(
    key: str, date: str, code: str = "XR-CHEST", patient_key: str = "k1"
) -> dict[str, Any]:
    return {
        "key": key,
        "patient_key": patient_key,
        "procedure_system": "sys",
        "procedure_code": code,
        "episode_date": date,
        "repeat": True,
    }


def test_repeats_are_the_later_episodes_of_a_procedure_within_30_days() -> None:
    episodes = [
        _episode("a", "2026-10-01T00:00:00Z"),
        _episode("b", "2026-10-31T00:00:00Z"),  # exactly 30 days later: a repeat
        _episode("c", "2026-12-01T00:00:00Z"),  # 31 days after b
        _episode("d", "2026-12-01T00:00:00Z"),  # same instant as c: the later key repeats
        _episode("e", "2026-10-02T00:00:00Z", code="CT-HEAD"),
        _episode("f", "2026-10-02T00:00:00Z", patient_key="k2"),
        {**_episode("g", "2026-10-02T00:00:00Z"), "patient_key": None},
    ]
    marked = {e["key"]: e["repeat"] for e in mark_repeats(episodes)}
    assert marked == {
        "a": False,
        "b": True,
        "c": False,
        "d": True,
        "e": False,
        "f": False,
        "g": False,
    }
