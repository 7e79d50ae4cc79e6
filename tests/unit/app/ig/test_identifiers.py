"""The IG's identifier rules (R25-R29, Identifier.type vs system): app/ig/identifiers.py, pure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from app.ig.identifiers import (
    HCN_SYSTEM,
    V2_0203,
    contributor_kind,
    identifier_issues,
    make_policy,
)

MRN_SYS = "https://example.org/fhir/NamingSystem/hospital-a-mrn"
LICENCE_SYS = "https://example.org/fhir/NamingSystem/cpso-licence"
UPI_SYS = "https://example.org/fhir/NamingSystem/ontario-upi"
ACC_SYS = "https://example.org/fhir/NamingSystem/hospital-a-accession"
KIND = "https://example.org/fhir/CodeSystem/micdr-contributor-kind"
POLICY = make_policy(
    mrn_systems=[MRN_SYS],
    licence_systems=[LICENCE_SYS],
    upi_systems=[UPI_SYS],
    accession_systems=[ACC_SYS],
    hospital_org_types=[f"{KIND}|hospital"],
    ichsc_org_types=[f"{KIND}|ichsc"],
)


def ident(system: str | None, value: str = "v1", code: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"value": value}
    if system is not None:
        out["system"] = system
    if code is not None:
        out["type"] = {"coding": [{"system": V2_0203, "code": code}]}
    return out


def res(type_: str, *identifiers: dict[str, Any], **more: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": type_, **more}
    if identifiers:
        out["identifier"] = list(identifiers)
    return out


def org(kind: str) -> dict[str, Any]:
    return res("Organization", ident(UPI_SYS), type=[{"coding": [{"system": KIND, "code": kind}]}])


MRN = ident(MRN_SYS)
HCN = ident(HCN_SYSTEM, "5566009041", "JHN")


def rules(resources: list[dict[str, Any]], orgs: Sequence[dict[str, Any]] = ()) -> list[str]:
    return [
        i.diagnostics.split(":")[0] + " @ " + ",".join(i.expression)
        for i in identifier_issues(resources, orgs, POLICY)
    ]


@pytest.mark.parametrize(
    ("patient", "orgs", "expected"),
    [
        (res("Patient", MRN), [], []),
        (res("Patient", ident("urn:other", code="MR")), [], []),  # MR type, unknown system
        (res("Patient", HCN), [], ["IG R25 @ Patient.identifier"]),  # default: hospital
        (res("Patient"), [], ["IG R25 @ Patient.identifier"]),
        (res("Patient", ident(MRN_SYS, value="")), [], ["IG R25 @ Patient.identifier"]),
        (res("Patient", HCN), [org("ichsc")], []),
        (res("Patient", MRN), [org("ichsc")], []),
        (res("Patient", ident(HCN_SYSTEM)), [org("ichsc")], []),  # R29: the system decides
        (res("Patient"), [org("ichsc")], ["IG R26 @ Patient.identifier"]),
        # R29: a JHN from another system is not the Ontario HCN
        (
            res("Patient", ident("urn:elsewhere", code="JHN")),
            [org("ichsc")],
            ["IG R26 @ Patient.identifier"],
        ),
        (res("Patient", HCN), [org("ichsc"), org("hospital")], ["IG R25 @ Patient.identifier"]),
    ],
)
def test_patient_identifier_rules(
    patient: dict[str, Any], orgs: list[dict[str, Any]], expected: list[str]
) -> None:
    assert rules([patient], orgs) == expected


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (res("Practitioner", ident(LICENCE_SYS)), []),
        (res("Practitioner", ident("urn:college", code="LN")), []),
        (res("Practitioner", ident("urn:college", code="MD")), []),
        (res("Practitioner"), ["IG R27 @ Practitioner.identifier"]),
        (
            res("Practitioner", ident("http://hl7.org/fhir/sid/us-npi")),
            ["IG R27 @ Practitioner.identifier"],
        ),
        (res("Organization", ident(UPI_SYS)), []),
        (res("Organization"), ["IG R28 @ Organization.identifier"]),
        (res("Organization", ident("urn:synthea")), ["IG R28 @ Organization.identifier"]),
        (res("Endpoint"), []),
        (res("ServiceRequest"), []),
    ],
)
def test_practitioner_and_organization_rules(resource: dict[str, Any], expected: list[str]) -> None:
    assert rules([resource]) == expected


@pytest.mark.parametrize(
    ("identifier", "ok"),
    [
        (ident(MRN_SYS, code="MR"), True),
        (ident(MRN_SYS, code="JHN"), False),
        (ident(HCN_SYSTEM, code="MR"), False),
        (ident(HCN_SYSTEM, code="JHN"), True),
        (ident(ACC_SYS, code="ACSN"), True),
        (ident(ACC_SYS, code="PLAC"), False),
        (ident(MRN_SYS, code="XX"), True),  # a type the rules do not know
        (ident("urn:unknown", code="ACSN"), True),  # a system the rules do not know
        (ident(UPI_SYS, code="MR"), False),
    ],
)
def test_identifier_type_must_match_its_system(identifier: dict[str, Any], ok: bool) -> None:
    found = rules([res("Patient", MRN, identifier)])
    assert found == ([] if ok else ["IG identifier type @ Patient.identifier[1].type"])


def test_every_violation_is_reported_at_once() -> None:
    found = rules([res("Patient"), res("Practitioner"), res("Organization")])
    assert found == [
        "IG R25 @ Patient.identifier",
        "IG R27 @ Practitioner.identifier",
        "IG R28 @ Organization.identifier",
    ]


def test_the_contributor_kind() -> None:
    assert contributor_kind([], POLICY) == "hospital"
    assert contributor_kind([org("ichsc")], POLICY) == "ichsc"
    assert contributor_kind([org("hospital"), org("ichsc")], POLICY) == "hospital"
    assert contributor_kind([org("other")], POLICY) == "hospital"
    ichsc_default = make_policy(
        mrn_systems=[], licence_systems=[], upi_systems=[], default_kind="ichsc"
    )
    assert contributor_kind([org("hospital")], ichsc_default) == "ichsc"  # no type configured
