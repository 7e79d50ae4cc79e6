"""The IG's write rules as one `WriteRules` (app/tx/plan.py), on in IG mode (`MICDR_IG_MODE`).

Pure. `IgRules.augment` sees every planned write of a transaction (a single interaction or a whole
Bundle), refuses it when a business rule fails and adds the longitudinal-index writes:

1. identifier rules (app/ig/identifiers.py, IG R25-R29) -> 422 `business-rule`, nothing stored;
2. the longitudinal index (app/ig/documents.py, IG R30, R31) -> extra DocumentReference writes.

Scope of the identifier rules (`MICDR_IG_RULES_SCOPE`): the IG states them for *submissions*, so
by default they apply to a transaction that writes or touches an MI resource (ServiceRequest,
DiagnosticReport, ImagingStudy) — a Submit MI Bundle/Report — and to every Patient, Practitioner
and Organization it writes. A lone `POST Patient` is plain FHIR and is not checked. `all` applies
them to every write. The index is maintained for every write of an MI resource either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.fhir.outcome import FhirError
from app.ig.documents import MAIN_TYPES, index_refs, index_writes
from app.ig.identifiers import ContributorKind, IdentifierPolicy, identifier_issues, make_policy
from app.records import StoredResource, Write
from app.settings import Settings


@dataclass(frozen=True)
class IgRules:
    policy: IdentifierPolicy
    every_write: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> IgRules:
        kind: ContributorKind = "ichsc" if settings.contributor_kind == "ichsc" else "hospital"
        policy = make_policy(
            mrn_systems=settings.mrn_systems,
            licence_systems=settings.licence_systems,
            upi_systems=settings.upi_systems,
            accession_systems=settings.accession_systems,
            placer_systems=settings.placer_systems,
            filler_systems=settings.filler_systems,
            default_kind=kind,
            hospital_org_types=settings.hospital_org_types,
            ichsc_org_types=settings.ichsc_org_types,
        )
        return cls(policy, every_write=settings.ig_rules_scope == "all")

    def derived_refs(self, refs: set[tuple[str, str]]) -> set[tuple[str, str]]:
        return index_refs(refs)

    def augment(
        self, writes: list[Write], current: Mapping[str, StoredResource], now: str
    ) -> list[Write]:
        if self.every_write or is_submission(writes, current):
            check_identifiers(writes, current, self.policy)
        return index_writes(writes, current, now)


def is_submission(writes: list[Write], current: Mapping[str, StoredResource]) -> bool:
    """A transaction that writes, or (unchanged) carries, an MI resource."""
    return any(w.type in MAIN_TYPES for w in writes) or any(
        ref.partition("/")[0] in MAIN_TYPES for ref in current
    )


def check_identifiers(
    writes: list[Write], current: Mapping[str, StoredResource], policy: IdentifierPolicy
) -> None:
    written = [w.resource for w in writes if w.resource is not None]
    organizations: list[dict[str, Any]] = [
        r for r in written if r["resourceType"] == "Organization"
    ]
    organizations += [
        s.resource
        for s in current.values()
        if s.type == "Organization" and s.resource is not None and not s.deleted
    ]
    issues = identifier_issues(written, organizations, policy)
    if issues:
        raise FhirError(422, tuple(issues))


__all__ = ["IgRules", "check_identifiers", "is_submission"]
