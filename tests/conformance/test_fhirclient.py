"""A real client against a real server (http.html#read, #create, #update, #delete, #history,
#capabilities): SMART's `fhirclient` drives uvicorn over loopback, and every response body is
parsed by its strict R4 models, so their checks validate what the server emits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from fhirclient.models.bundle import Bundle
from fhirclient.models.capabilitystatement import CapabilityStatement
from fhirclient.models.humanname import HumanName
from fhirclient.models.identifier import Identifier
from fhirclient.models.operationoutcome import OperationOutcome
from fhirclient.models.patient import Patient
from fhirclient.server import FHIRNotFoundException, FHIRServer

from app.main import create_app
from app.settings import load_settings
from tests._uvicorn import served
from tests.conformance._strict import strict_fhir_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FHIRServer]:
    data_dir: Path = tmp_path_factory.mktemp("fhirclient")
    app = create_app(load_settings({"MICDR_DATA_DIR": str(data_dir)}))
    with served(app) as url:
        yield strict_fhir_server(f"{url}/fhir/")


def new_patient() -> Patient:
    patient = Patient()
    patient.name = [HumanName({"family": "Tremblay", "given": ["Marie"]})]
    patient.gender = "female"
    patient.identifier = [Identifier({"system": "http://hospital.example/mrn", "value": "fc-1"})]
    return patient


def create(server: FHIRServer) -> Patient:
    answer = new_patient().create(server)
    assert answer is not None
    return Patient(answer)


def test_create_answers_a_patient_the_strict_model_accepts(server: FHIRServer) -> None:
    created = create(server)
    assert created.id
    assert created.meta.versionId == "1"
    assert created.meta.lastUpdated is not None
    assert created.name[0].family == "Tremblay"
    assert created.identifier[0].value == "fc-1"


def test_read_answers_what_create_stored(server: FHIRServer) -> None:
    created = create(server)
    read = Patient.read(created.id, server)
    assert read.as_json() == created.as_json()


def test_update_answers_version_2(server: FHIRServer) -> None:
    patient = Patient.read(create(server).id, server)
    patient.gender = "male"
    answer = patient.update()
    assert answer is not None
    updated = Patient(answer)
    assert (updated.meta.versionId, updated.gender) == ("2", "male")
    assert Patient.read(patient.id, server).gender == "male"


def test_vread_answers_the_first_version_after_an_update(server: FHIRServer) -> None:
    patient = Patient.read(create(server).id, server)
    patient.gender = "male"
    patient.update()
    first = Patient(server.request_json(f"Patient/{patient.id}/_history/1"))
    assert (first.meta.versionId, first.gender) == ("1", "female")


def test_delete_then_read_is_410_with_an_operation_outcome(server: FHIRServer) -> None:
    patient = Patient.read(create(server).id, server)
    assert patient.delete() is None  # 204, no body
    with pytest.raises(requests.HTTPError) as caught:
        Patient.read(patient.id, server)
    assert caught.value.response.status_code == 410
    outcome = OperationOutcome(caught.value.response.json())
    assert outcome.issue[0].code == "deleted"


def test_history_is_a_bundle_the_strict_model_accepts(server: FHIRServer) -> None:
    patient = Patient.read(create(server).id, server)
    patient.gender = "other"
    patient.update()
    patient.delete()
    history = Bundle(server.request_json(f"Patient/{patient.id}/_history"))
    assert history.type == "history"
    assert [e.request.method for e in history.entry] == ["DELETE", "PUT", "POST"]
    assert [e.response.status for e in history.entry] == ["204 No Content", "200 OK", "201 Created"]
    assert isinstance(history.entry[1].resource, Patient)


def test_unknown_id_is_404_with_an_operation_outcome(server: FHIRServer) -> None:
    with pytest.raises(FHIRNotFoundException) as caught:
        Patient.read("does-not-exist", server)
    outcome = OperationOutcome(caught.value.response.json())
    assert (outcome.issue[0].code, outcome.issue[0].diagnostics) == (
        "not-found",
        "Patient/does-not-exist is not known",
    )


def test_invalid_resource_is_400_with_an_operation_outcome(server: FHIRServer) -> None:
    with pytest.raises(requests.HTTPError) as caught:
        server.post_json("Patient", {"resourceType": "Patient", "gender": "purple"})
    assert caught.value.response.status_code == 400
    outcome = OperationOutcome(caught.value.response.json())
    assert outcome.issue[0].expression == ["Patient.gender"]


def test_capability_statement_passes_the_strict_model(server: FHIRServer) -> None:
    statement = CapabilityStatement(server.request_json("metadata"))
    assert statement.fhirVersion == "4.0.1"
    assert {r.type for r in statement.rest[0].resource} >= {"Patient", "ImagingStudy"}


def test_transaction_response_is_a_bundle_the_strict_model_accepts(server: FHIRServer) -> None:
    transaction = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:0b7c7c4e-8f0d-4a55-9b1f-1a2b3c4d5e6f",
                "resource": new_patient().as_json(),
                "request": {"method": "POST", "url": "Patient"},
            }
        ],
    }
    response = server.session.post(
        server.base_uri,
        json=transaction,
        headers={"Content-Type": "application/fhir+json", "Prefer": "return=representation"},
    )
    assert response.status_code == 200
    answer = Bundle(response.json())
    assert answer.type == "transaction-response"
    assert answer.entry[0].response.status == "201 Created"
    assert isinstance(answer.entry[0].resource, Patient)
