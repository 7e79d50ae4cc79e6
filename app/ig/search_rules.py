"""IG searches: every MI search names the patient by `patient.identifier=system|value`
(IG R36, R37, R38). Pure: inspects the parsed plan."""

from __future__ import annotations

from app.fhir.outcome import FhirError
from indexing.plan.plan import Chain, SearchPlan, TokenMatch

MI_TYPES = frozenset({"ServiceRequest", "DiagnosticReport", "ImagingStudy", "DocumentReference"})
_PATIENT_PARAMS = frozenset({"patient", "subject"})


def _names_patient_identifier(chain: Chain) -> bool:
    if chain.param not in _PATIENT_PARAMS or chain.targets != ("Patient",):
        return False
    for p in chain.inner.any_of:
        if isinstance(p, TokenMatch) and p.param == "identifier" and not (p.text or p.negate):
            system, sep, value = p.form.partition("|")
            if sep and system and value:
                return True
    return False


def check_mi_search(plan: SearchPlan) -> None:
    """Refuse an MI search that does not name its patient by identifier system and value."""
    if len(plan.types) != 1 or plan.types[0] not in MI_TYPES:
        return
    for clause in plan.clauses:
        # Every alternative of the clause must name a patient, else it does not narrow to one.
        if clause.any_of and all(
            isinstance(p, Chain) and _names_patient_identifier(p) for p in clause.any_of
        ):
            return
    raise FhirError.of(
        400,
        "required",
        f"a {plan.types[0]} search must name the patient as patient.identifier=system|value "
        "(both the identifier system and its value; Ontario MI IG)",
    )
