"""The viewer tests' patients, made with the project's seeded generator (bench/generate.py):

- `clinical_patient`: six episodes of one patient: a pending order (no study, no report), a
  study still waiting for its report, a report that is later amended (submitted twice: version
  2 changes status, issue time and conclusion), a report with an addendum
  (`ext-di-addendum-of`), a report with HTML and PDF presented forms, and a plain one;
- `namesake`: another patient with the same name and birth date, so a name search lists two;
- `busy_patient`: one patient with `n` episodes, for the rendering measurement.

Generated episodes belong to one patient each; these rewrite the Patient entry of several
episodes to a single patient (the entry keeps its fullUrl, so the episode's references hold)."""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass
from typing import Any

from bench.generate import ADDENDUM_OF, EXAMPLE, Dataset, generate

# The generator's three hospitals; their MRN, accession and placer systems must be configured
# for IG mode to accept the episodes.
HOSPITALS = ("a", "b", "c")
IG_SYSTEMS = {
    "MICDR_MRN_SYSTEMS": ",".join(f"{EXAMPLE}/hospital-{h}-mrn" for h in HOSPITALS),
    "MICDR_ACCESSION_SYSTEMS": ",".join(f"{EXAMPLE}/hospital-{h}-accession" for h in HOSPITALS),
    "MICDR_PLACER_SYSTEMS": ",".join(f"{EXAMPLE}/hospital-{h}-placer" for h in HOSPITALS),
}
# A body site per generated procedure code (SNOMED CT), so the body-site filter has values.
SNOMED = "http://snomed.info/sct"
BODY_SITES = {
    "XR-CHEST": ("51185008", "Chest"),
    "XR-HAND-R": ("85562004", "Hand"),
    "CT-HEAD": ("69536005", "Head"),
    "CT-ABD-PEL": ("818983003", "Abdomen"),
    "MR-KNEE-L": ("72696002", "Knee"),
    "MR-BRAIN": ("12738006", "Brain"),
    "US-ABD": ("818983003", "Abdomen"),
    "MG-SCREEN": ("76752008", "Breast"),
    "NM-BONE": ("272673000", "Bone"),
}
AMENDED_CONCLUSION = "Left lower lobe consolidation. Amended: laterality corrected."
FIRST_CONCLUSION = "Right lower lobe consolidation."
EPISODES = 6  # of the clinical patient
HOSTILE_URL = "javascript:alert(document.domain)"
REPORT_HTML = "<h1>Imaging report</h1><p>Findings: no focal abnormality.</p>"
# the smallest well-formed PDF is not needed: the page hands the bytes over unread
REPORT_PDF = b"%PDF-1.4\n% miCDR viewer test attachment\n%%EOF\n"
PRESENTED_FORMS = [
    {
        "contentType": "text/html",
        "title": "Report",
        "data": base64.b64encode(REPORT_HTML.encode()).decode(),
    },
    {
        "contentType": "application/pdf",
        "title": "Report PDF",
        "data": base64.b64encode(REPORT_PDF).decode(),
    },
    # what a hostile or broken sender could put in a resource: must never become a link
    {"contentType": "text/html", "title": "Hostile", "url": HOSTILE_URL},
]


def entries(bundle: dict[str, Any], type_: str) -> list[dict[str, Any]]:
    return [e for e in bundle["entry"] if e["resource"]["resourceType"] == type_]


def resource(bundle: dict[str, Any], type_: str) -> dict[str, Any]:
    found: dict[str, Any] = entries(bundle, type_)[0]["resource"]
    return found


def identifier(bundle: dict[str, Any], type_: str, code: str) -> tuple[str, str]:
    """The `(system, value)` of the first identifier of `type_` typed `code` (MR, JHN, ACSN)."""
    for ident in resource(bundle, type_)["identifier"]:
        if any(c["code"] == code for c in ident.get("type", {}).get("coding", [])):
            return ident["system"], ident["value"]
    raise LookupError(f"no {code} identifier on {type_}")


def _with_patient(bundle: dict[str, Any], patient_entry: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(bundle)
    first = out["entry"][0]
    assert first["resource"]["resourceType"] == "Patient"
    first["resource"] = copy.deepcopy(patient_entry["resource"])
    first["request"] = copy.deepcopy(patient_entry["request"])
    for study in entries(out, "ImagingStudy"):
        code = resource(out, "ServiceRequest")["code"]["coding"][0]["code"]
        snomed, display = BODY_SITES[code]
        for series in study["resource"]["series"]:
            series["bodySite"] = {"system": SNOMED, "code": snomed, "display": display}
    return out


def _reported(data: Dataset) -> list[dict[str, Any]]:
    """The episodes with a study and exactly one report (no addendum), in generated order."""
    return [
        e.bundle
        for e in data.episodes
        if entries(e.bundle, "ImagingStudy") and len(entries(e.bundle, "DiagnosticReport")) == 1
    ]


@dataclass(frozen=True)
class ClinicalPatient:
    first: list[dict[str, Any]]  # the episodes as first submitted (EPISODES of them)
    correction: dict[str, Any]  # the amended episode, submitted again afterwards
    mrn: tuple[str, str]
    hcn: tuple[str, str]
    name: tuple[str, str]  # (family, given)
    birth_date: str
    pending_accession: str
    amended_accession: str
    addendum_accession: str
    documented_accession: str  # its report carries an HTML and a PDF presentedForm
    unreported_accession: str  # a study, no report yet


def clinical_patient(seed: int = 19) -> ClinicalPatient:
    data = generate(seed, patients=40, max_episodes=1)
    first, *others = data.episodes
    patient_entry = first.bundle["entry"][0]
    reported = [_with_patient(b, patient_entry) for b in _reported(Dataset(seed, others, []))[:5]]
    pending = _with_patient(first.bundle, patient_entry)
    # The pending order: the order alone, still active.
    pending["entry"] = [
        e
        for e in pending["entry"]
        if e["resource"]["resourceType"] in {"Patient", "Organization", "Practitioner"}
        or e["resource"]["resourceType"] == "ServiceRequest"
    ]
    resource(pending, "ServiceRequest")["status"] = "active"
    amended, with_addendum = reported[0], reported[1]
    report = resource(amended, "DiagnosticReport")
    report["status"], report["conclusion"] = "final", FIRST_CONCLUSION
    correction = copy.deepcopy(amended)
    corrected = resource(correction, "DiagnosticReport")
    corrected["status"], corrected["conclusion"] = "amended", AMENDED_CONCLUSION
    corrected["issued"] = corrected["issued"][:11] + "23:45:00-05:00"  # later that day
    _add_addendum(with_addendum)
    for plain in reported[2:]:
        resource(plain, "DiagnosticReport")["status"] = "final"
    resource(reported[2], "DiagnosticReport")["presentedForm"] = PRESENTED_FORMS
    unreported = reported[4]
    unreported["entry"] = [
        e for e in unreported["entry"] if e["resource"]["resourceType"] != "DiagnosticReport"
    ]
    person = patient_entry["resource"]
    return ClinicalPatient(
        first=[pending, *reported],
        correction=correction,
        mrn=identifier(pending, "Patient", "MR"),
        hcn=identifier(pending, "Patient", "JHN"),
        name=(person["name"][0]["family"], person["name"][0]["given"][0]),
        birth_date=person["birthDate"],
        pending_accession=identifier(pending, "ServiceRequest", "ACSN")[1],
        amended_accession=identifier(amended, "ServiceRequest", "ACSN")[1],
        addendum_accession=identifier(with_addendum, "ServiceRequest", "ACSN")[1],
        documented_accession=identifier(reported[2], "ServiceRequest", "ACSN")[1],
        unreported_accession=identifier(unreported, "ServiceRequest", "ACSN")[1],
    )


def _add_addendum(bundle: dict[str, Any]) -> None:
    """An addendum report pointing at the episode's report, as the generator writes one."""
    first = entries(bundle, "DiagnosticReport")[0]
    report = first["resource"]
    report["status"] = "final"
    system, accession = identifier(bundle, "DiagnosticReport", "ACSN")
    addendum = copy.deepcopy(report)
    addendum["identifier"] = [
        {**report["identifier"][0], "value": f"{accession}-A1"},
    ]
    addendum["extension"] = [
        {"url": ADDENDUM_OF, "valueReference": {"reference": first["fullUrl"]}}
    ]
    addendum["issued"] = report["issued"][:11] + "20:00:00-05:00"
    addendum["conclusion"] = "Addendum: comparison with outside study reviewed; no change."
    bundle["entry"].append(
        {
            "fullUrl": "urn:uuid:5a0d9f35-3c1e-4d8e-9b7a-0000000000a1",
            "resource": addendum,
            "request": {
                "method": "PUT",
                "url": f"DiagnosticReport?identifier={system}|{accession}-A1",
            },
        }
    )


def namesake(patient: ClinicalPatient) -> dict[str, Any]:
    """A transaction creating another patient with the same name and birth date."""
    family, given = patient.name
    system = patient.mrn[0]
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:0b6f4c1e-7f55-4b7e-8d0e-000000000002",
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [
                        {
                            "system": system,
                            "value": "MRN-NAMESAKE-1",
                            "type": {
                                "coding": [
                                    {
                                        "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                        "code": "MR",
                                    }
                                ]
                            },
                        }
                    ],
                    "name": [{"family": family, "given": [given]}],
                    "gender": "other",
                    "birthDate": patient.birth_date,
                },
                "request": {"method": "PUT", "url": f"Patient?identifier={system}|MRN-NAMESAKE-1"},
            }
        ],
    }


def busy_patient(episodes: int, seed: int = 200) -> tuple[tuple[str, str], list[dict[str, Any]]]:
    """The HCN `(system, value)` of one patient and `episodes` transaction Bundles of theirs."""
    data = generate(seed, patients=episodes, max_episodes=1)
    patient_entry = data.episodes[0].bundle["entry"][0]
    bundles = [_with_patient(e.bundle, patient_entry) for e in data.episodes]
    return identifier(bundles[0], "Patient", "JHN"), bundles
