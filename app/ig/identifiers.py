"""The IG's identifier rules for a submission (IG R25-R29, and the *older* rule that business
identifiers carry an `Identifier.type` matching their system).

Pure. `identifier_issues` looks at the Patient, Practitioner and Organization versions a
transaction writes and answers the violated rules as OperationOutcome issues:

- R25: a hospital's Patient carries an MRN; R26: an ICHSC's Patient carries an MRN or an Ontario
  HCN; R29: the HCN is recognised by its system, `HCN_SYSTEM`, only;
- R27: a Practitioner carries a licence/registration number; R28: an Organization a UPI;
- every identifier whose system and v2-0203 type are both known agrees on its kind (an MRN system
  typed `JHN` is refused).

An identifier is of a kind when it has a value and either its system is one of the kind's
configured systems or its `type` has a v2-0203 coding of the kind's codes (`MR`, `LN`/`MD`,
`ACSN`, `PLAC`, `FILL`...). The systems are configuration (Ontario Health assigns MRN, UPI,
licence, accession and order-number systems per organisation); only the HCN system is fixed.

The contributor kind (hospital or ICHSC) is read from the `type` codings of the Organizations the
submission carries (`IdentifierPolicy.hospital_org_types`, `.ichsc_org_types`); when none says, it
is `IdentifierPolicy.default_kind`. When they disagree the stricter (hospital) applies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from app.fhir.outcome import Issue

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
HCN_SYSTEM = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn"
# Jurisdictional health numbers the IG lists (Ontario HCN, Alberta ULI, Manitoba PHIN, PEI PHN).
HEALTH_NUMBER_SYSTEMS = frozenset(
    {
        HCN_SYSTEM,
        "https://fhir.infoway-inforoute.ca/NamingSystem/ca-ab-patient-healthcare-id",
        "https://fhir.infoway-inforoute.ca/NamingSystem/ca-mb-patient-healthcare-id",
        "https://fhir.infoway-inforoute.ca/NamingSystem/ca-pe-patient-healthcare-id",
    }
)

ContributorKind = Literal["hospital", "ichsc"]


@dataclass(frozen=True)
class IdentifierKind:
    """A kind of business identifier, recognised by its systems or its v2-0203 type codes."""

    name: str
    types: frozenset[str] = frozenset()
    systems: frozenset[str] = frozenset()

    def matches(self, identifier: Mapping[str, Any]) -> bool:
        if not isinstance(identifier.get("value"), str) or not identifier["value"]:
            return False
        return identifier.get("system") in self.systems or bool(
            _type_codes(identifier) & self.types
        )


@dataclass(frozen=True)
class IdentifierPolicy:
    """What the identifier rules accept; built from settings by `app/ig/rules.py`."""

    mrn: IdentifierKind
    licence: IdentifierKind
    upi: IdentifierKind
    others: tuple[IdentifierKind, ...] = ()
    default_kind: ContributorKind = "hospital"
    hospital_org_types: frozenset[str] = frozenset()
    ichsc_org_types: frozenset[str] = frozenset()

    @property
    def hcn(self) -> IdentifierKind:
        return IdentifierKind("Ontario HCN", systems=frozenset({HCN_SYSTEM}))

    @property
    def kinds(self) -> tuple[IdentifierKind, ...]:
        health = IdentifierKind("health number", frozenset({"JHN"}), HEALTH_NUMBER_SYSTEMS)
        return (self.mrn, self.licence, self.upi, health, *self.others)


def make_policy(
    *,
    mrn_systems: Iterable[str],
    licence_systems: Iterable[str],
    upi_systems: Iterable[str],
    accession_systems: Iterable[str] = (),
    placer_systems: Iterable[str] = (),
    filler_systems: Iterable[str] = (),
    default_kind: ContributorKind = "hospital",
    hospital_org_types: Iterable[str] = (),
    ichsc_org_types: Iterable[str] = (),
) -> IdentifierPolicy:
    return IdentifierPolicy(
        mrn=IdentifierKind("MRN", frozenset({"MR"}), frozenset(mrn_systems)),
        licence=IdentifierKind("licence", frozenset({"LN", "MD"}), frozenset(licence_systems)),
        upi=IdentifierKind("UPI", frozenset(), frozenset(upi_systems)),
        others=(
            IdentifierKind("accession number", frozenset({"ACSN"}), frozenset(accession_systems)),
            IdentifierKind("placer number", frozenset({"PLAC"}), frozenset(placer_systems)),
            IdentifierKind("filler number", frozenset({"FILL"}), frozenset(filler_systems)),
        ),
        default_kind=default_kind,
        hospital_org_types=frozenset(hospital_org_types),
        ichsc_org_types=frozenset(ichsc_org_types),
    )


def _type_codes(identifier: Mapping[str, Any]) -> set[str]:
    type_ = identifier.get("type")
    if not isinstance(type_, dict):
        return set()
    return {
        c["code"]
        for c in type_.get("coding") or []
        if isinstance(c, dict) and c.get("system") == V2_0203 and isinstance(c.get("code"), str)
    }


def _identifiers(resource: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = resource.get("identifier")
    if isinstance(found, dict):
        found = [found]
    return [i for i in found or [] if isinstance(i, dict)]


def contributor_kind(
    organizations: Iterable[Mapping[str, Any]], policy: IdentifierPolicy
) -> ContributorKind:
    """Hospital or ICHSC, from the Organizations' `type` codings (`system|code`), else the
    configured default; hospital wins when the Organizations disagree."""
    said: set[ContributorKind] = set()
    for org in organizations:
        for concept in org.get("type") or []:
            for coding in concept.get("coding") or [] if isinstance(concept, dict) else []:
                token = f"{coding.get('system', '')}|{coding.get('code', '')}"
                if token in policy.hospital_org_types:
                    said.add("hospital")
                elif token in policy.ichsc_org_types:
                    said.add("ichsc")
    if "hospital" in said:
        return "hospital"
    if "ichsc" in said:
        return "ichsc"
    return policy.default_kind


def _described(kind: IdentifierKind) -> str:
    parts = [f"Identifier.type {V2_0203}|{'/'.join(sorted(kind.types))}"] if kind.types else []
    if kind.systems:
        parts.append("a system in " + ", ".join(sorted(kind.systems)))
    return " or ".join(parts) or "no configured system"


def type_issues(resource: Mapping[str, Any], policy: IdentifierPolicy) -> list[Issue]:
    """An identifier whose known system and known v2-0203 type name different kinds."""
    known_codes = {code for k in policy.kinds for code in k.types}
    issues: list[Issue] = []
    for n, ident in enumerate(_identifiers(resource)):
        by_system = [k for k in policy.kinds if ident.get("system") in k.systems]
        codes = _type_codes(ident) & known_codes
        if not by_system or not codes:
            continue
        if not any(codes & k.types for k in by_system):
            issues.append(
                Issue(
                    "business-rule",
                    f"IG identifier type: {ident.get('system')} is a "
                    f"{'/'.join(k.name for k in by_system)} system, but Identifier.type says "
                    f"{'/'.join(sorted(codes))}; the type must match the system",
                    (f"{resource['resourceType']}.identifier[{n}].type",),
                )
            )
    return issues


def patient_issues(
    patient: Mapping[str, Any], kind: ContributorKind, policy: IdentifierPolicy
) -> list[Issue]:
    idents = _identifiers(patient)
    has_mrn = any(policy.mrn.matches(i) for i in idents)
    if kind == "hospital" and not has_mrn:
        return [
            Issue(
                "business-rule",
                "IG R25: a hospital submission must identify the Patient by an MRN "
                f"({_described(policy.mrn)})",
                ("Patient.identifier",),
            )
        ]
    if kind == "ichsc" and not has_mrn and not any(policy.hcn.matches(i) for i in idents):
        return [
            Issue(
                "business-rule",
                "IG R26: an ICHSC submission must identify the Patient by an MRN "
                f"({_described(policy.mrn)}) or an Ontario health card number "
                f"(IG R29: system {HCN_SYSTEM})",
                ("Patient.identifier",),
            )
        ]
    return []


def _required(
    resource: Mapping[str, Any], kind: IdentifierKind, rule: str, what: str
) -> list[Issue]:
    if any(kind.matches(i) for i in _identifiers(resource)):
        return []
    type_ = resource["resourceType"]
    return [
        Issue(
            "business-rule",
            f"IG {rule}: a {type_} must carry {what} ({_described(kind)})",
            (f"{type_}.identifier",),
        )
    ]


def identifier_issues(
    resources: Iterable[Mapping[str, Any]],
    organizations: Iterable[Mapping[str, Any]],
    policy: IdentifierPolicy,
) -> list[Issue]:
    """Every identifier rule the written `resources` break; `organizations` are the submission's
    Organizations (written or touched), which say the contributor kind."""
    written = list(resources)
    kind = contributor_kind(organizations, policy)
    issues: list[Issue] = []
    for resource in written:
        type_ = resource.get("resourceType")
        if type_ == "Patient":
            issues += patient_issues(resource, kind, policy)
        elif type_ == "Practitioner":
            issues += _required(
                resource, policy.licence, "R27", "the licence/registration number of its college"
            )
        elif type_ == "Organization":
            issues += _required(resource, policy.upi, "R28", "a UPI assigned by Ontario Health")
        issues += type_issues(resource, policy)
    return issues


__all__ = [
    "HCN_SYSTEM",
    "V2_0203",
    "ContributorKind",
    "IdentifierKind",
    "IdentifierPolicy",
    "contributor_kind",
    "identifier_issues",
    "make_policy",
    "patient_issues",
    "type_issues",
]
