"""Small resources of imaging episodes for the episode tests: one patient at Hospital A, an
order, its study and its report, built as plain FHIR JSON (shaped like tests/data/ig-episodes)."""

from __future__ import annotations

from typing import Any

ACSN_SYSTEM = "https://example.org/fhir/NamingSystem/hospital-a-accession"
UPI_SYSTEM = "https://example.org/fhir/NamingSystem/ontario-upi"
PROC_SYSTEM = "urn:oid:2.16.840.1.113883.3.239.99.1"
DCM = "http://dicom.nema.org/resources/ontology/DCM"


def _acsn(value: str) -> dict[str, Any]:
    return {
        "system": ACSN_SYSTEM,
        "value": value,
        "type": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]
        },
    }


def patient(id_: str = "p1", gender: str = "female", born: str = "1987-08-21") -> dict[str, Any]:
    return {"resourceType": "Patient", "id": id_, "gender": gender, "birthDate": born}


def organization(
    id_: str = "hosp-a", upi: str = "UPI443", name: str = "Hospital A"
) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "id": id_,
        "identifier": [{"system": UPI_SYSTEM, "value": upi}],
        "name": name,
    }


def order(
    id_: str = "o1",
    accession: str = "ACC1",
    authored: str = "2026-10-01T08:00:00-04:00",
    code: str = "XR-CHEST",
    status: str = "active",
    patient_id: str = "p1",
) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "id": id_,
        "status": status,
        "intent": "order",
        "priority": "routine",
        "identifier": [_acsn(accession)],
        "category": [{"coding": [{"system": DCM, "code": "DX"}]}],
        "code": {"coding": [{"system": PROC_SYSTEM, "code": code, "display": f"{code} display"}]},
        "bodySite": [{"coding": [{"system": "http://snomed.info/sct", "code": "51185008"}]}],
        "subject": {"reference": f"Patient/{patient_id}"},
        "requester": {"reference": "Organization/hosp-a"},
        "performer": [{"reference": "Organization/hosp-a"}],
        "authoredOn": authored,
    }


def study(
    id_: str = "s1",
    order_id: str | None = "o1",
    accession: str = "ACC1",
    started: str = "2026-10-01T09:30:00-04:00",
    modality: str = "DX",
    patient_id: str = "p1",
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "ImagingStudy",
        "id": id_,
        "status": "available",
        "identifier": [_acsn(accession)],
        "subject": {"reference": f"Patient/{patient_id}"},
        "started": started,
        "modality": [{"system": DCM, "code": modality}],
        "numberOfSeries": 2,
        "numberOfInstances": 5,
    }
    if order_id is not None:
        resource["basedOn"] = [{"reference": f"ServiceRequest/{order_id}"}]
    return resource


def report(
    id_: str = "r1",
    order_id: str | None = "o1",
    accession: str = "ACC1",
    issued: str = "2026-10-01T15:00:00-04:00",
    status: str = "final",
    patient_id: str = "p1",
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": id_,
        "status": status,
        "identifier": [_acsn(accession)],
        "code": {"coding": [{"system": PROC_SYSTEM, "code": "XR-CHEST"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "issued": issued,
    }
    if order_id is not None:
        resource["basedOn"] = [{"reference": f"ServiceRequest/{order_id}"}]
    return resource


def ref(resource: dict[str, Any]) -> str:
    return f"{resource['resourceType']}/{resource['id']}"
