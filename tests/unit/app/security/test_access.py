"""app/security/access.py: the clauses searches carry and the per-resource check."""

from __future__ import annotations

import pytest

from app.security.access import ORG_TAG_SYSTEM, permits, scope_clause, stamp_org
from app.security.scopes import ALL, Access, Forbidden
from indexing.plan.plan import IdIn, RefIn, TokenMatch
from indexing.registry import SearchParamRegistry

REGISTRY = SearchParamRegistry.load()


def test_org_access_is_a_tag_clause() -> None:
    clause = scope_clause(REGISTRY, Access("org", "A|B"), "Observation")
    assert clause is not None
    assert clause.any_of == (TokenMatch("_tag", f"{ORG_TAG_SYSTEM}|A\\|B"),)


@pytest.mark.parametrize(
    ("type_", "predicate"),
    [
        ("Patient", IdIn(("p1",))),
        ("ImagingStudy", RefIn("patient", ("Patient/p1",))),
        ("Observation", RefIn("patient", ("Patient/p1",))),
        ("Encounter", RefIn("patient", ("Patient/p1",))),
    ],
)
def test_patient_access_is_a_compartment_clause(type_: str, predicate: object) -> None:
    clause = scope_clause(REGISTRY, Access("patient", "p1"), type_)
    assert clause is not None and clause.any_of == (predicate,)


def test_types_outside_every_compartment_are_forbidden_to_patients() -> None:
    with pytest.raises(Forbidden):
        scope_clause(REGISTRY, Access("patient", "p1"), "Organization")
    assert scope_clause(REGISTRY, ALL, "Organization") is None


def test_permits_follows_the_tag_and_the_compartment() -> None:
    res = {
        "resourceType": "ImagingStudy",
        "status": "available",
        "subject": {"reference": "Patient/p1"},
    }
    assert not permits(REGISTRY, Access("org", "A"), "ImagingStudy", res)
    stamp_org(res, "A")
    stamp_org(res, "A")
    assert res["meta"]["tag"] == [{"system": ORG_TAG_SYSTEM, "code": "A"}]
    assert permits(REGISTRY, Access("org", "A"), "ImagingStudy", res)
    assert permits(REGISTRY, Access("patient", "p1"), "ImagingStudy", res)
    assert not permits(REGISTRY, Access("patient", "p2"), "ImagingStudy", res)
