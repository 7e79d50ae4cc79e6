"""The Ontario MI IG's business rules on submissions (R25-R29, identifier types, R50), in IG
mode (the default) and with MICDR_IG_MODE=0 (app/ig/identifiers.py, app/ig/rules.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests._data import SYNTHEA
from tests.conformance import _clients
from tests.conformance._episodes import as_ichsc, keep_identifiers, resource
from tests.conformance.conftest import episode

Client = AsyncTestClient[Any]
plain_client = _clients.plain_client  # a fixture: IG mode off
MRN = "https://example.org/fhir/NamingSystem/hospital-a-mrn"
HCN = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn"
ADDENDUM = "http://ontariohealth.ca/fhir/StructureDefinition/ext-di-addendum-of"


async def refused(client: Client, bundle: dict[str, Any], rule: str, expression: str) -> None:
    """422 business-rule naming `rule` at `expression`, and nothing stored (R12)."""
    response = await client.post("/fhir", json=bundle)
    assert response.status_code == 422, response.text
    issues = response.json()["issue"]
    assert any(
        i["code"] == "business-rule"
        and rule in i["diagnostics"]
        and i["expression"] == [expression]
        for i in issues
    ), issues
    history = (await client.get("/fhir/_history")).json()
    assert history.get("entry", []) == []


async def test_r25_a_hospital_patient_without_an_mrn_is_refused(client: Client) -> None:
    await refused(client, keep_identifiers(episode(1), "Patient", HCN), "R25", "Patient.identifier")


async def test_r25_a_hospital_is_the_default_contributor(client: Client) -> None:
    bundle = keep_identifiers(episode(1), "Patient", MRN)  # MRN, no HCN: fine
    assert (await client.post("/fhir", json=bundle)).status_code == 200


async def test_r26_an_ichsc_patient_with_an_hcn_only_is_accepted(client: Client) -> None:
    bundle = as_ichsc(keep_identifiers(episode(2), "Patient", HCN))
    assert (await client.post("/fhir", json=bundle)).status_code == 200


async def test_r26_an_ichsc_patient_with_neither_mrn_nor_hcn_is_refused(client: Client) -> None:
    bundle = as_ichsc(keep_identifiers(episode(2), "Patient"))
    await refused(client, bundle, "R26", "Patient.identifier")


async def test_r29_a_health_number_outside_the_hcn_system_is_not_an_hcn(client: Client) -> None:
    bundle = as_ichsc(keep_identifiers(episode(2), "Patient", HCN))
    resource(bundle, "Patient")["identifier"][0]["system"] = "urn:oid:2.16.840.1.113883.4.59"
    await refused(client, bundle, "R26", "Patient.identifier")


async def test_r27_a_practitioner_without_a_licence_is_refused(client: Client) -> None:
    await refused(
        client, keep_identifiers(episode(3), "Practitioner"), "R27", "Practitioner.identifier"
    )


async def test_r28_an_organization_without_a_upi_is_refused(client: Client) -> None:
    await refused(
        client, keep_identifiers(episode(3), "Organization"), "R28", "Organization.identifier"
    )


async def test_an_identifier_type_must_match_its_system(client: Client) -> None:
    bundle = episode(1)
    mrn = resource(bundle, "Patient")["identifier"][0]
    mrn["type"]["coding"][0]["code"] = "JHN"
    await refused(client, bundle, "type", "Patient.identifier[0].type")


async def test_a_later_submission_is_checked_against_its_stored_organization(
    client: Client,
) -> None:
    assert (await client.post("/fhir", json=as_ichsc(episode(1)))).status_code == 200
    bundle = as_ichsc(keep_identifiers(episode(1), "Patient", HCN))  # only the Patient changes
    assert (await client.post("/fhir", json=bundle)).status_code == 200


async def test_a_plain_patient_outside_a_submission_is_plain_fhir(client: Client) -> None:
    response = await client.post("/fhir/Patient", json={"resourceType": "Patient"})
    assert response.status_code == 201


async def test_a_us_synthea_bundle_is_refused_in_ig_mode(client: Client) -> None:
    path = SYNTHEA[0]
    response = await client.post("/fhir", json=json.loads(path.read_text()))
    assert response.status_code == 422
    rules = {i["diagnostics"].split(":")[0] for i in response.json()["issue"]}
    assert rules == {"IG R27", "IG R28"}


@pytest.mark.parametrize(
    "bundle",
    [
        keep_identifiers(episode(1), "Patient", HCN),
        as_ichsc(keep_identifiers(episode(1), "Patient")),
        keep_identifiers(episode(1), "Practitioner"),
        keep_identifiers(episode(1), "Organization"),
    ],
    ids=["R25", "R26", "R27", "R28"],
)
async def test_a_plain_fhir_server_accepts_what_ig_mode_refuses(
    plain_client: Client, bundle: dict[str, Any]
) -> None:
    assert (await plain_client.post("/fhir", json=bundle)).status_code == 200


async def test_r50_an_addendum_of_extension_is_accepted_and_preserved(client: Client) -> None:
    body = (await client.post("/fhir", json=episode(1))).json()
    original = next(
        e["fullUrl"].split("/fhir/", 1)[1]
        for e in body["entry"]
        if "/DiagnosticReport/" in e["fullUrl"]
    )
    addendum = resource(episode(1), "DiagnosticReport")
    patient = next(
        e["fullUrl"].split("/fhir/", 1)[1] for e in body["entry"] if "/Patient/" in e["fullUrl"]
    )
    addendum.update(
        {
            "identifier": [{"system": "urn:example:addenda", "value": "ADD1"}],
            "status": "amended",
            "subject": {"reference": patient},
            "extension": [{"url": ADDENDUM, "valueReference": {"reference": original}}],
            "conclusion": "Addendum: small nodule, follow up in 6 months.",
        }
    )
    for key in ("basedOn", "imagingStudy", "resultsInterpreter"):
        del addendum[key]
    created = await client.post("/fhir/DiagnosticReport", json=addendum)
    assert created.status_code == 201, created.text
    stored = (await client.get(f"/fhir/DiagnosticReport/{created.json()['id']}")).json()
    assert stored["extension"] == addendum["extension"]
    assert stored["conclusion"] == addendum["conclusion"]
