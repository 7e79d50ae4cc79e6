"""The IG end to end, driven by an independent FHIR client (issue 8's "real client scenario").

SMART's `fhirclient` (not the project's code) talks to a real `micdr serve` (uvicorn, a subprocess)
on a free loopback port, on both deployments: the embedded default in a fresh data dir, and the
full stack (FerretDB, Elasticsearch, and a `micdr worker` on Redis). It registers a Patient (MRN +
HCN), an Organization (UPI, hospital), a Practitioner (licence), an order (ServiceRequest), an
ImagingStudy with its Endpoint and a DiagnosticReport — built as fhirclient models and submitted as
one transaction Bundle (Submit MI Bundle, `POST [base]/Bundle`: in IG mode the rules apply to
submissions containing MI resources) — then, once GET /health says everything is indexed, asks
`ImagingStudy?based-on=ServiceRequest/<id>` (the IG's `based-on`, search-params/ig) and the
longitudinal `DocumentReference?patient.identifier=...`. Every response body is parsed by
fhirclient's strict R4 models.

IG mode refuses an MI search that does not name its patient (R36), so the `based-on` search
carries `patient.identifier` too; the bare form is checked to be refused with an
OperationOutcome.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from fhirclient.models.bundle import Bundle, BundleEntry, BundleEntryRequest
from fhirclient.models.diagnosticreport import DiagnosticReport
from fhirclient.models.documentreference import DocumentReference
from fhirclient.models.endpoint import Endpoint
from fhirclient.models.imagingstudy import ImagingStudy
from fhirclient.models.operationoutcome import OperationOutcome
from fhirclient.models.organization import Organization
from fhirclient.models.patient import Patient
from fhirclient.models.practitioner import Practitioner
from fhirclient.models.resource import Resource
from fhirclient.models.servicerequest import ServiceRequest
from fhirclient.server import FHIRServer

from app.settings import load_settings
from tests._full_stack import drop, full_stack_env, unique_name
from tests.conformance._strict import strict_fhir_server

ROOT = Path(__file__).resolve().parents[2]
MICDR = [sys.executable, "-m", "app.cli"]  # the `micdr` console script
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
HCN = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn"
MRN = "https://example.org/fhir/NamingSystem/hospital-a-mrn"
UPI = "https://example.org/fhir/NamingSystem/ontario-upi"
LICENCE = "https://example.org/fhir/NamingSystem/cpso-licence"
ACC = "https://example.org/fhir/NamingSystem/hospital-a-accession"
ENDPOINT_IDS = "https://example.org/fhir/NamingSystem/endpoint"
PROCEDURES = "urn:oid:2.16.840.1.113883.3.239.99.1"  # a contributor's local codes (its OID)
STUDY_UID = "urn:oid:1.2.840.99.770011"
BY_HCN = f"patient.identifier={HCN}|6677001122"
BY_MRN = f"patient.identifier={MRN}|MRN-FC-7"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _health(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base}/health", timeout=5) as r:
        body: dict[str, Any] = json.loads(r.read())
    return body


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*MICDR, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(
    scope="module", params=["embedded", pytest.param("full", marks=pytest.mark.integration)]
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FHIRServer]:
    """`micdr serve` on the embedded default, or on the full stack's engines with a
    `micdr worker` beside it."""
    data_dir = tmp_path_factory.mktemp("ig-scenario")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICDR_")}
    if request.param == "full":
        env.update(asyncio.run(full_stack_env(unique_name())))
    procs = [
        _start(
            ["serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)], env
        )
    ]
    if request.param == "full":
        procs.append(_start(["worker"], env))
    try:
        deadline = time.monotonic() + 60
        while True:
            for proc in procs:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else "exited"
            assert time.monotonic() < deadline, "micdr serve did not answer within a minute"
            try:
                _health(base)
                break
            except OSError:
                time.sleep(0.2)
        yield strict_fhir_server(f"{base}/fhir/")
    finally:
        for proc in procs:
            _stop(proc)
        if request.param == "full":
            asyncio.run(drop(load_settings(env)))


def wait_indexed(server: FHIRServer, timeout: float = 30.0) -> None:
    """Poll GET /health until `index.oldest_unindexed_commit` is null."""
    base = server.base_uri.rstrip("/").removesuffix("/fhir")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _health(base)["index"]["oldest_unindexed_commit"] is None:
            return
        time.sleep(0.05)
    raise AssertionError(f"not indexed within {timeout}s: {_health(base)}")


def typed(system: str, value: str, code: str | None = None) -> dict[str, Any]:
    ident: dict[str, Any] = {"system": system, "value": value}
    if code:
        ident["type"] = {"coding": [{"system": V2_0203, "code": code}]}
    return ident


def entry(full_url: str, resource: Resource, key: dict[str, Any]) -> BundleEntry:
    """A conditional PUT keyed on the resource's business identifier (the IG's normal entry)."""
    item = BundleEntry()
    item.fullUrl = full_url
    item.resource = resource
    item.request = BundleEntryRequest(
        {
            "method": "PUT",
            "url": f"{resource.resource_type}?identifier={key['system']}|{key['value']}",
        }
    )
    return item


def episode() -> Bundle:
    """One imaging episode as fhirclient models: a Submit MI Bundle."""
    pat, org, doc, order, ep, study, report = (
        f"urn:uuid:00000000-0000-4000-8000-00000000000{i}" for i in range(1, 8)
    )
    mrn = typed(MRN, "MRN-FC-7", "MR")
    patient = Patient(
        {
            "identifier": [mrn, typed(HCN, "6677001122", "JHN")],
            "name": [{"family": "Lévesque", "given": ["Hélène"]}],
            "gender": "female",
            "birthDate": "1962-04-03",
            "managingOrganization": {"reference": org},
        }
    )
    upi = typed(UPI, "UPI-FC-9")
    organization = Organization(
        {
            "identifier": [upi],
            "name": "Hôpital Exemple",
            "active": True,
            "type": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                            "code": "HOSP",
                        }
                    ]
                }
            ],
        }
    )
    licence = typed(LICENCE, "88012")
    practitioner = Practitioner(
        {"identifier": [licence], "name": [{"family": "Roy", "given": ["Dr Anne"]}]}
    )
    accession = typed(ACC, "ACC-FC-5001", "ACSN")
    procedure = {"coding": [{"system": PROCEDURES, "code": "CT-HEAD", "display": "CT head"}]}
    service_request = ServiceRequest(
        {
            "status": "completed",
            "intent": "order",
            "identifier": [accession],
            "category": [{"coding": [{"system": DCM, "code": "CT"}]}],
            "code": procedure,
            "subject": {"reference": pat},
            "requester": {"reference": doc},
            "authoredOn": "2024-05-02T08:00:00-04:00",
        }
    )
    endpoint_id = typed(ENDPOINT_IDS, "EP-FC-5001")
    endpoint = Endpoint(
        {
            "status": "active",
            "identifier": [endpoint_id],
            "connectionType": {
                "system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
                "code": "dicom-wado-rs",
            },
            "payloadType": [{"text": "DICOM"}],
            "address": "https://pacs.example.org/wado/fc-5001",
            "managingOrganization": {"reference": org},
        }
    )
    uid = {"system": "urn:dicom:uid", "value": STUDY_UID}
    imaging_study = ImagingStudy(
        {
            "status": "available",
            "identifier": [uid, accession],
            "subject": {"reference": pat},
            "basedOn": [{"reference": order}],
            "started": "2024-05-02T09:30:00-04:00",
            "endpoint": [{"reference": ep}],
            "modality": [{"system": DCM, "code": "CT"}],
            "numberOfSeries": 1,
            "numberOfInstances": 1,
            "series": [
                {
                    "uid": "1.2.840.99.770011.1",
                    "modality": {"system": DCM, "code": "CT"},
                    "instance": [
                        {
                            "uid": "1.2.840.99.770011.1.1",
                            "sopClass": {
                                "system": "urn:ietf:rfc:3986",
                                "code": "urn:oid:1.2.840.10008.5.1.4.1.1.2",
                            },
                        }
                    ],
                }
            ],
        }
    )
    diagnostic_report = DiagnosticReport(
        {
            "status": "final",
            "identifier": [accession],
            "category": [
                {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD"}
                    ]
                }
            ],
            "code": procedure,
            "subject": {"reference": pat},
            "basedOn": [{"reference": order}],
            "imagingStudy": [{"reference": study}],
            "issued": "2024-05-02T15:00:00-04:00",
            "effectiveDateTime": "2024-05-02T09:30:00-04:00",
            "resultsInterpreter": [{"reference": doc}],
            "conclusion": "Aucune anomalie aiguë.",
        }
    )
    bundle = Bundle()
    bundle.type = "transaction"
    bundle.entry = [
        entry(pat, patient, mrn),
        entry(org, organization, upi),
        entry(doc, practitioner, licence),
        entry(order, service_request, accession),
        entry(ep, endpoint, endpoint_id),
        entry(study, imaging_study, uid),
        entry(report, diagnostic_report, accession),
    ]
    return bundle


@pytest.fixture(scope="module")
def submitted(server: FHIRServer) -> dict[str, str]:
    """Submit the episode; `Type` -> `Type/id` of what the server stored."""
    response = server.post_json("Bundle", episode().as_json())
    assert response.status_code == 200
    answer = Bundle(response.json())
    assert answer.type == "transaction-response"
    assert [e.response.status for e in answer.entry] == ["201 Created"] * 7
    stored = {}
    for item in answer.entry:
        ref = item.response.location.split("/_history/")[0]
        stored[ref.split("/")[0]] = ref
    wait_indexed(server)
    return stored


def search(server: FHIRServer, query: str) -> Bundle:
    bundle = Bundle(server.request_json(query))
    assert bundle.type == "searchset"
    return bundle


def test_the_episode_is_stored_as_submitted(server: FHIRServer, submitted: dict[str, str]) -> None:
    patient = Patient.read(submitted["Patient"].split("/")[1], server)
    assert patient.name[0].family == "Lévesque"
    assert {i.system for i in patient.identifier} == {MRN, HCN}
    study = ImagingStudy.read(submitted["ImagingStudy"].split("/")[1], server)
    assert study.basedOn[0].reference == submitted["ServiceRequest"]
    assert study.endpoint[0].reference == submitted["Endpoint"]
    assert study.subject.reference == submitted["Patient"]
    report = DiagnosticReport.read(submitted["DiagnosticReport"].split("/")[1], server)
    assert report.imagingStudy[0].reference == submitted["ImagingStudy"]
    assert report.resultsInterpreter[0].reference == submitted["Practitioner"]


def test_imaging_study_by_based_on_order_carries_its_endpoint(
    server: FHIRServer, submitted: dict[str, str]
) -> None:
    order = submitted["ServiceRequest"]
    found = search(
        server,
        f"ImagingStudy?based-on={order}&{BY_HCN}&_include=ImagingStudy:endpoint",
    )
    studies = [e.resource for e in found.entry if e.search.mode == "match"]
    endpoints = [e.resource for e in found.entry if e.search.mode == "include"]
    assert [type(s) for s in studies] == [ImagingStudy]
    assert f"ImagingStudy/{studies[0].id}" == submitted["ImagingStudy"]
    assert studies[0].identifier[0].value == STUDY_UID
    assert [type(e) for e in endpoints] == [Endpoint]
    assert endpoints[0].address == "https://pacs.example.org/wado/fc-5001"
    other = search(server, f"ImagingStudy?based-on=ServiceRequest/unknown&{BY_HCN}")
    assert not other.entry


def test_an_mi_search_without_the_patient_is_refused(
    server: FHIRServer, submitted: dict[str, str]
) -> None:
    with pytest.raises(requests.HTTPError) as caught:
        server.request_json(f"ImagingStudy?based-on={submitted['ServiceRequest']}")
    refusal = caught.value.response
    assert refusal is not None
    assert refusal.status_code == 400
    outcome = OperationOutcome(refusal.json())
    assert outcome.issue[0].code == "required"


@pytest.mark.parametrize("patient", [BY_HCN, BY_MRN])
def test_the_longitudinal_query_answers_the_patients_mi_records(
    server: FHIRServer, submitted: dict[str, str], patient: str
) -> None:
    found = search(server, f"DocumentReference?{patient}")
    docs = [e.resource for e in found.entry if e.search.mode == "match"]
    assert all(isinstance(d, DocumentReference) for d in docs)
    urls = sorted(d.content[0].attachment.url for d in docs)
    assert urls == sorted(
        submitted[t] for t in ("ServiceRequest", "ImagingStudy", "DiagnosticReport")
    )
    for doc in docs:
        assert doc.status == "current"
        assert doc.subject.reference == submitted["Patient"]
        main = doc.content[0].attachment.url
        resolved = server.request_json(main)  # R31: relative to the base
        assert f"{resolved['resourceType']}/{resolved['id']}" == main
    by_period = search(server, f"DocumentReference?{patient}&period=le2024-12-31")
    assert len(by_period.entry) == 3
    by_accession = search(
        server, f"DocumentReference?{patient}&identifier={quote(ACC)}|ACC-FC-5001"
    )
    assert len(by_accession.entry) == 3
    assert not search(server, f"DocumentReference?{patient}&period=lt2024").entry
