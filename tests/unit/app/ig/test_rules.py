"""IgRules: the IG's write rules as one WriteRules, and their configuration (app/ig/rules.py)."""

from __future__ import annotations

from typing import Any

import pytest

from app.fhir.outcome import FhirError
from app.ig.documents import index_id
from app.ig.rules import IgRules, is_submission
from app.records import StoredResource, Write
from app.settings import SettingsError, load_settings

NOW = "2024-05-01T12:00:00.000Z"
ICHSC = "https://example.org/fhir/CodeSystem/micdr-contributor-kind|ichsc"
HCN = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn"


def write(type_: str, id_: str, **body: Any) -> Write:
    return Write(type_, id_, 1, "create", {"resourceType": type_, "id": id_, **body})


def study() -> Write:
    return write("ImagingStudy", "is1", status="available", subject={"reference": "Patient/p"})


def stored(type_: str, id_: str, **body: Any) -> StoredResource:
    return StoredResource(type_, id_, 1, NOW, False, {"resourceType": type_, "id": id_, **body})


RULES = IgRules.from_settings(load_settings({}))


def test_a_lone_patient_write_is_not_a_submission() -> None:
    assert RULES.augment([write("Patient", "p")], {}, NOW) == []


def test_a_submission_checks_the_patient_and_indexes_the_study() -> None:
    with pytest.raises(FhirError) as err:
        RULES.augment([write("Patient", "p"), study()], {}, NOW)
    assert err.value.status == 422
    assert [(i.code, i.expression) for i in err.value.issues] == [
        ("business-rule", ("Patient.identifier",))
    ]
    mrn = {"system": "https://example.org/fhir/NamingSystem/hospital-a-mrn", "value": "1"}
    (extra,) = RULES.augment([write("Patient", "p", identifier=[mrn]), study()], {}, NOW)
    assert extra.ref == f"DocumentReference/{index_id('ImagingStudy/is1')}"


def test_an_unchanged_mi_resource_still_makes_a_submission() -> None:
    current = {"ImagingStudy/is1": stored("ImagingStudy", "is1")}
    assert is_submission([write("Patient", "p")], current)
    assert not is_submission([write("Patient", "p")], {"Patient/p": stored("Patient", "p")})


def test_an_unchanged_submitted_organization_says_the_contributor_kind() -> None:
    ichsc = stored(
        "Organization", "o", type=[{"coding": [{"system": ICHSC.split("|")[0], "code": "ichsc"}]}]
    )
    patient = write("Patient", "p", identifier=[{"system": HCN, "value": "5566009041"}])
    current = {"Organization/o": ichsc, "ImagingStudy/is1": stored("ImagingStudy", "is1")}
    assert RULES.augment([patient], current, NOW) == []
    with pytest.raises(FhirError):
        RULES.augment([patient], {"ImagingStudy/is1": stored("ImagingStudy", "is1")}, NOW)


def test_scope_all_checks_every_write() -> None:
    rules = IgRules.from_settings(load_settings({"MICDR_IG_RULES_SCOPE": "all"}))
    with pytest.raises(FhirError):
        rules.augment([write("Practitioner", "pr")], {}, NOW)


def test_the_identifier_systems_and_contributor_kind_are_configuration() -> None:
    settings = load_settings(
        {
            "MICDR_CONTRIBUTOR_KIND": "ICHSC",
            "MICDR_MRN_SYSTEMS": "urn:mrn:a, urn:mrn:b",
            "MICDR_UPI_SYSTEMS": "",
        }
    )
    rules = IgRules.from_settings(settings)
    assert rules.policy.default_kind == "ichsc"
    assert rules.policy.mrn.systems == frozenset({"urn:mrn:a", "urn:mrn:b"})
    assert rules.policy.upi.systems == frozenset()
    assert "https://example.org/fhir/NamingSystem/cpso-licence" in rules.policy.licence.systems
    assert ICHSC in rules.policy.ichsc_org_types


@pytest.mark.parametrize(
    "env", [{"MICDR_CONTRIBUTOR_KIND": "clinic"}, {"MICDR_IG_RULES_SCOPE": "some"}]
)
def test_bad_rule_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        load_settings(env)


def test_derived_refs_name_the_index_entries() -> None:
    assert RULES.derived_refs({("DiagnosticReport", "d"), ("Patient", "p")}) == {
        ("DocumentReference", index_id("DiagnosticReport/d"))
    }
