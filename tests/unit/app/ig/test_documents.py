"""The longitudinal index entries (IG R30, R31): app/ig/documents.py, pure."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from app.fhir.outcome import FhirError
from app.fhir.validate import validate_resource
from app.ig.documents import (
    clinical_period,
    index_document,
    index_id,
    index_refs,
    index_writes,
)
from app.records import StoredResource, Write

NOW = "2024-05-01T12:00:00.000Z"
ACC = "https://example.org/fhir/NamingSystem/hospital-a-accession"
V2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
CODE = {
    "coding": [
        {
            "system": "urn:oid:2.16.840.1.113883.3.239.99.1",
            "code": "XR-CHEST",
            "display": "XR chest 2 views",
        }
    ]
}
ACCESSION = {"system": ACC, "value": "ACC1", "type": {"coding": [{"system": V2, "code": "ACSN"}]}}

# Episode 1 of tests/data/ig-episodes as stored (references rewritten to Type/id).
ORDER: dict[str, Any] = {
    "resourceType": "ServiceRequest",
    "id": "sr1",
    "meta": {"versionId": "1", "lastUpdated": NOW},
    "status": "completed",
    "intent": "order",
    "identifier": [ACCESSION],
    "category": [{"coding": [{"system": DCM, "code": "DX"}]}],
    "code": CODE,
    "subject": {"reference": "Patient/p1"},
    "authoredOn": "2021-02-16T08:00:00-05:00",
}
STUDY: dict[str, Any] = {
    "resourceType": "ImagingStudy",
    "id": "is1",
    "status": "available",
    "identifier": [{"system": "urn:dicom:uid", "value": "urn:oid:1.2.840.99.1"}, ACCESSION],
    "subject": {"reference": "Patient/p1"},
    "basedOn": [{"reference": "ServiceRequest/sr1"}],
    "started": "2021-02-16T09:30:00-05:00",
    "modality": [{"system": DCM, "code": "DX"}],
}
REPORT: dict[str, Any] = {
    "resourceType": "DiagnosticReport",
    "id": "dr1",
    "status": "final",
    "identifier": [ACCESSION],
    "category": [
        {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD"}]}
    ],
    "code": CODE,
    "subject": {"reference": "Patient/p1"},
    "issued": "2021-02-16T15:00:00-05:00",
    "effectiveDateTime": "2021-02-16T09:30:00-05:00",
}


def kind(type_: str) -> dict[str, Any]:
    return {"coding": [{"system": "http://hl7.org/fhir/resource-types", "code": type_}]}


def test_the_index_entry_of_an_order() -> None:
    assert index_document(ORDER, NOW) == {
        "resourceType": "DocumentReference",
        "id": index_id("ServiceRequest/sr1"),
        "identifier": [ACCESSION],
        "status": "current",
        "type": CODE,
        "category": [kind("ServiceRequest"), {"coding": [{"system": DCM, "code": "DX"}]}],
        "subject": {"reference": "Patient/p1"},
        "date": NOW,
        "content": [
            {"attachment": {"contentType": "application/fhir+json", "url": "ServiceRequest/sr1"}}
        ],
        "context": {
            "period": {"start": "2021-02-16T08:00:00-05:00", "end": "2021-02-16T08:00:00-05:00"},
            "related": [{"reference": "ServiceRequest/sr1"}],
        },
    }


def test_the_index_entry_of_a_study_takes_modalities_as_categories() -> None:
    doc = index_document(STUDY, NOW)
    assert "type" not in doc  # no procedureCode
    assert doc["category"] == [kind("ImagingStudy"), {"coding": [{"system": DCM, "code": "DX"}]}]
    assert doc["identifier"] == STUDY["identifier"]
    assert doc["content"][0]["attachment"]["url"] == "ImagingStudy/is1"
    assert doc["context"]["period"] == {
        "start": "2021-02-16T09:30:00-05:00",
        "end": "2021-02-16T09:30:00-05:00",
    }
    with_code = {**STUDY, "procedureCode": [CODE, {"text": "second"}]}
    assert index_document(with_code, NOW)["type"] == CODE


def test_the_index_entry_of_a_report() -> None:
    doc = index_document(REPORT, NOW)
    assert doc["type"] == CODE
    assert doc["category"] == [kind("DiagnosticReport"), *REPORT["category"]]
    assert doc["context"]["related"] == [{"reference": "DiagnosticReport/dr1"}]


@pytest.mark.parametrize("main", [ORDER, STUDY, REPORT], ids=lambda m: m["resourceType"])
def test_every_index_entry_is_a_valid_r4_document_reference(main: dict[str, Any]) -> None:
    validate_resource(index_document(main, NOW))
    (write,) = index_writes([Write(main["resourceType"], main["id"], 1, "create", main)], {}, NOW)
    assert write.resource is not None
    validate_resource(write.resource)


@pytest.mark.parametrize(
    ("main", "period"),
    [
        (
            {"resourceType": "ServiceRequest", "occurrenceDateTime": "2021", "authoredOn": "2020"},
            {"start": "2021", "end": "2021"},
        ),
        (
            {"resourceType": "ServiceRequest", "occurrencePeriod": {"start": "2021-01"}},
            {"start": "2021-01"},
        ),
        (
            {"resourceType": "ServiceRequest", "authoredOn": "2020-05-05"},
            {"start": "2020-05-05", "end": "2020-05-05"},
        ),
        (
            {
                "resourceType": "DiagnosticReport",
                "effectivePeriod": {"start": "2021", "end": "2022"},
                "issued": "2023-01-01T00:00:00Z",
            },
            {"start": "2021", "end": "2022"},
        ),
        (
            {"resourceType": "DiagnosticReport", "issued": "2023-01-01T00:00:00Z"},
            {"start": "2023-01-01T00:00:00Z", "end": "2023-01-01T00:00:00Z"},
        ),
        (
            {"resourceType": "ImagingStudy", "started": "2021-02-16"},
            {"start": "2021-02-16", "end": "2021-02-16"},
        ),
        ({"resourceType": "ImagingStudy"}, None),
    ],
)
def test_the_clinical_period(main: dict[str, Any], period: dict[str, Any] | None) -> None:
    assert clinical_period(main) == period


def test_index_ids_are_deterministic_valid_fhir_ids() -> None:
    long_id = "x" * 64
    assert index_id("ImagingStudy/a") == index_id("ImagingStudy/a")
    assert index_id("ImagingStudy/a") != index_id("DiagnosticReport/a")
    assert len(index_id(f"ImagingStudy/{long_id}")) <= 64
    assert index_refs({("ImagingStudy", "a"), ("Patient", "p"), ("DocumentReference", "d")}) == {
        ("DocumentReference", index_id("ImagingStudy/a"))
    }


def stored(ref: str, version: int, deleted: bool = False) -> StoredResource:
    type_, _, id_ = ref.partition("/")
    body = None if deleted else {"resourceType": type_, "id": id_}
    return StoredResource(type_, id_, version, NOW, deleted, body)


def test_a_new_main_resource_creates_version_one() -> None:
    (write,) = index_writes(
        [
            Write("Patient", "p1", 1, "create", {"resourceType": "Patient", "id": "p1"}),
            Write("ServiceRequest", "sr1", 1, "create", ORDER),
        ],
        {},
        NOW,
    )
    assert (write.type, write.id, write.version, write.op) == (
        "DocumentReference",
        index_id("ServiceRequest/sr1"),
        1,
        "create",
    )
    assert write.resource is not None
    assert write.resource["meta"] == {"versionId": "1", "lastUpdated": NOW}
    assert f"{ACC}|ACC1" in write.identifiers


def test_an_update_bumps_the_current_index_version() -> None:
    ref = f"DocumentReference/{index_id('DiagnosticReport/dr1')}"
    (write,) = index_writes(
        [Write("DiagnosticReport", "dr1", 3, "update", REPORT)], {ref: stored(ref, 2)}, NOW
    )
    assert (write.version, write.op) == (3, "update")


def test_a_delete_deletes_the_live_index_entry_only() -> None:
    ref = f"DocumentReference/{index_id('ImagingStudy/is1')}"
    delete = Write("ImagingStudy", "is1", 2, "delete", None)
    (write,) = index_writes([delete], {ref: stored(ref, 1)}, NOW)
    assert (write.ref, write.version, write.op, write.resource) == (ref, 2, "delete", None)
    assert index_writes([delete], {ref: stored(ref, 2, deleted=True)}, NOW) == []
    assert index_writes([delete], {}, NOW) == []


def test_a_recreated_main_resource_recreates_its_deleted_index_entry() -> None:
    ref = f"DocumentReference/{index_id('ImagingStudy/is1')}"
    (write,) = index_writes(
        [Write("ImagingStudy", "is1", 3, "update", STUDY)], {ref: stored(ref, 2, deleted=True)}, NOW
    )
    assert (write.version, write.op) == (3, "update")


def test_other_types_are_not_indexed() -> None:
    assert (
        index_writes([Write("Patient", "p1", 1, "create", {"resourceType": "Patient"})], {}, NOW)
        == []
    )


def test_a_client_may_not_write_an_index_entry_in_the_same_transaction() -> None:
    doc = index_document(REPORT, NOW)
    with pytest.raises(FhirError) as err:
        index_writes(
            [
                Write("DiagnosticReport", "dr1", 1, "create", REPORT),
                Write("DocumentReference", doc["id"], 1, "create", copy.deepcopy(doc)),
            ],
            {},
            NOW,
        )
    assert err.value.status == 422
    assert "R30" in err.value.issues[0].diagnostics
