"""The Ontario MI IG's requirements checklist (docs/ig-requirements.md, R1-R51), walked in order.

One focused test (or more) per requirement, named `test_rNN_<behaviour>` and citing it, on both
deployments (conftest's `client`: the embedded SQLite store and the MongoDB store on mongomock,
each with the SQLite index). Other modules prove many of these more deeply (test_transaction,
test_search, test_ig_rules, test_ig_documents, test_async, test_formats); this module is the
traceable checklist. A requirement that does not hold is `xfail(strict=True)` with its gap.

Fixture `records`: patient A (HCN 5566009041, MRN1978347) with three episodes (2021 XR chest,
2023 MR knee, 2025 CT head) and patient B (episode 2's Gagnon, HCN 1242886303) with one.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.fhir.xml import parse_xml, to_xml
from tests.conformance._episodes import as_ichsc, keep_identifiers, resource
from tests.conformance.conftest import episode, finished, indexed
from tests.conformance.test_search import accessions, variant

Client = AsyncTestClient[Any]
HCN = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn"
MRN = "https://example.org/fhir/NamingSystem/hospital-a-mrn"
ACC = "https://example.org/fhir/NamingSystem/hospital-a-accession"
ECID = "https://example.org/fhir/NamingSystem/ontario-ecid"
ADDENDUM = "http://ontariohealth.ca/fhir/StructureDefinition/ext-di-addendum-of"
A = f"patient.identifier={HCN}|5566009041"
B = f"patient.identifier={HCN}|1242886303"
MAIN = ("ServiceRequest", "ImagingStudy", "DiagnosticReport")
JSON_TYPE = "application/fhir+json; charset=utf-8"
XML_TYPE = "application/fhir+xml; charset=utf-8"
ASYNC = {"Prefer": "respond-async"}
A_ALL = ["ACC144272509", "ACC200000001", "ACC200000002"]


# -- helpers -------------------------------------------------------------------------------


def without_type(bundle: dict[str, Any], *types: str) -> dict[str, Any]:
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] not in types]
    return bundle


def refs(response_bundle: dict[str, Any]) -> dict[str, str]:
    """Type -> `Type/id` of each entry of a transaction response."""
    out = {}
    for e in response_bundle["entry"]:
        ref = e["fullUrl"].split("/fhir/", 1)[1]
        out[ref.split("/")[0]] = ref
    return out


def statuses(response_bundle: dict[str, Any]) -> list[str]:
    return [e["response"]["status"] for e in response_bundle["entry"]]


async def submit(client: Client, bundle: dict[str, Any], path: str = "/fhir") -> dict[str, Any]:
    response = await client.post(path, json=bundle)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["type"] == "transaction-response"
    return body


async def nothing_stored(client: Client) -> None:
    history = (await client.get("/fhir/_history")).json()
    assert history.get("entry", []) == []


async def refused(client: Client, bundle: dict[str, Any], status: int) -> list[dict[str, Any]]:
    """`status` with an error OperationOutcome, and nothing stored (R12)."""
    response = await client.post("/fhir", json=bundle)
    assert response.status_code == status, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] in ("error", "fatal")
    await nothing_stored(client)
    issues: list[dict[str, Any]] = outcome["issue"]
    return issues


async def business_rule(client: Client, bundle: dict[str, Any], rule: str, where: str) -> None:
    issues = await refused(client, bundle, 422)
    assert any(
        i["code"] == "business-rule"
        and i["diagnostics"].startswith(f"IG {rule}:")
        and i["expression"] == [where]
        for i in issues
    ), issues


async def search(client: Client, query: str, status: int = 200) -> dict[str, Any]:
    response = await client.get(f"/fhir/{query}")
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    if status == 200:
        assert body["resourceType"] == "Bundle"
        assert body["type"] == "searchset"
    return body


def matches(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in body.get("entry", []) if e["search"]["mode"] == "match"]


async def submit_async(client: Client, bundle: dict[str, Any], path: str = "/fhir") -> str:
    response = await client.post(path, json=bundle, headers=ASYNC)
    assert response.status_code == 202, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    location = response.headers["content-location"]
    assert "/fhir/$async-status/" in location
    return str(location.split("micdr.local", 1)[1])


@pytest.fixture
async def records(client: Client) -> Client:
    for bundle in (
        episode(1),
        variant("200000001", "2023-06-01", "MR-KNEE-L", "MR"),
        variant("200000002", "2025-01-10", "CT-HEAD", "CT"),
        episode(2),
    ):
        await submit(client, bundle)
    await indexed(client)
    return client


async def main_refs_of(client: Client, patient: str) -> set[str]:
    """`Type/id` of every ServiceRequest, ImagingStudy and DiagnosticReport of a patient."""
    out = set()
    for type_ in MAIN:
        for r in matches(await search(client, f"{type_}?{patient}&_count=100")):
            out.add(f"{type_}/{r['id']}")
    return out


# -- R1-R4: FHIR version and formats -------------------------------------------------------


async def test_r01_the_server_is_fhir_r4_4_0_1(client: Client) -> None:
    """R1: FHIR R4 4.0.1."""
    statement = (await client.get("/fhir/metadata")).json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    assert set(statement["format"]) >= {"application/fhir+json", "application/fhir+xml"}


async def test_r02_an_xml_submission_is_answered_in_xml(client: Client) -> None:
    """R2: application/fhir+xml in and out (a Submit MI Bundle in XML)."""
    response = await client.post(
        "/fhir",
        content=to_xml(episode(1)),
        headers={"Content-Type": "application/fhir+xml", "Accept": "application/fhir+xml"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == XML_TYPE
    body = parse_xml(response.content)
    assert (body["resourceType"], body["type"]) == ("Bundle", "transaction-response")
    assert statuses(body) == ["201 Created"] * 7
    study = refs(body)["ImagingStudy"]
    read = await client.get(f"/fhir/{study}", params={"_format": "xml"})
    assert read.headers["content-type"] == XML_TYPE
    assert parse_xml(read.content)["started"] == resource(episode(1), "ImagingStudy")["started"]


async def test_r02_a_json_submission_is_answered_in_json(client: Client) -> None:
    """R2: application/fhir+json in and out."""
    response = await client.post(
        "/fhir",
        content=json.dumps(episode(1)).encode(),
        headers={"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == JSON_TYPE
    assert response.json()["type"] == "transaction-response"


async def test_r03_a_get_naming_no_format_answers_json(records: Client) -> None:
    """R3: JSON when a GET names no format (neither `_format` nor a specific Accept)."""
    for accept in ({}, {"Accept": "*/*"}):
        response = await records.get(f"/fhir/ImagingStudy?{A}", headers=accept)
        assert response.status_code == 200
        assert response.headers["content-type"] == JSON_TYPE
        assert response.json()["type"] == "searchset"


async def test_r04_utf8_non_ascii_names_round_trip_in_json_and_xml(client: Client) -> None:
    """R4: UTF-8 throughout: non-ASCII names sent as UTF-8 come back identical, JSON and XML."""
    bundle = episode(2)  # Zoë Gagnon
    patient = resource(bundle, "Patient")
    patient["name"] = [{"family": "Bélanger-Côté", "given": ["Zoë", "Anaïs", "Łucja"]}]
    resource(bundle, "DiagnosticReport")["conclusion"] = "Pas d'anomalie aiguë — ≤ 2 mm."
    raw = json.dumps(bundle, ensure_ascii=False).encode("utf-8")
    response = await client.post(
        "/fhir", content=raw, headers={"Content-Type": "application/fhir+json; charset=utf-8"}
    )
    assert response.status_code == 200, response.text
    created = refs(response.json())
    as_json = await client.get(f"/fhir/{created['Patient']}")
    assert as_json.headers["content-type"] == JSON_TYPE
    assert "Bélanger-Côté".encode() in as_json.content  # UTF-8 bytes, not \u escapes
    assert as_json.json()["name"] == patient["name"]
    as_xml = await client.get(f"/fhir/{created['Patient']}", params={"_format": "xml"})
    assert as_xml.headers["content-type"] == XML_TYPE
    assert parse_xml(as_xml.content)["name"] == patient["name"]
    report = (await client.get(f"/fhir/{created['DiagnosticReport']}")).json()
    assert report["conclusion"] == "Pas d'anomalie aiguë — ≤ 2 mm."


# -- R5-R11: submission ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/fhir/Bundle", "/fhir"])
async def test_r05_a_transaction_is_processed_at_bundle_and_at_the_base(
    client: Client, path: str
) -> None:
    """R5: `POST [base]/Bundle` (Submit MI Bundle) and `POST [base]` process a transaction."""
    body = await submit(client, episode(1), path)
    assert statuses(body) == ["201 Created"] * 7
    for ref in refs(body).values():
        assert (await client.get(f"/fhir/{ref}")).status_code == 200


@pytest.mark.parametrize("kind", ["collection", "document", "message", "searchset", None])
async def test_r06_a_bundle_that_is_not_a_transaction_or_batch_is_rejected(
    client: Client, kind: str | None
) -> None:
    """R6: a submission whose Bundle.type is not transaction (or batch) is rejected."""
    bundle = episode(1)
    bundle["type"] = kind
    await refused(client, bundle, 400)


async def test_r07_an_entry_without_request_is_rejected(client: Client) -> None:
    """R7: an entry without `request` is rejected (and nothing is stored)."""
    bundle = episode(1)
    del bundle["entry"][5]["request"]
    issues = await refused(client, bundle, 400)
    assert issues[0]["expression"] == ["Bundle.entry[5].request"]


async def test_r08_an_async_submission_answers_202_with_a_status_url(client: Client) -> None:
    """R8: an asynchronous submission answers 202 (before processing) with where to poll."""
    status_path = await submit_async(client, episode(1), "/fhir/Bundle")
    done = await finished(client, status_path)
    assert done.status_code == 200


async def test_r09_further_submissions_are_accepted_meanwhile(client: Client) -> None:
    """R9: while one submission is queued, the contributor may send more; all are processed."""
    bundles = [
        episode(1),
        variant("200000001", "2023-06-01", "MR-KNEE-L", "MR"),
        episode(2),
    ]
    paths = [await submit_async(client, b) for b in bundles]
    assert len(set(paths)) == 3
    for path in paths:
        done = await finished(client, path)
        assert done.headers["x-original-status"] == "200"
    await indexed(client)
    assert sorted(accessions(await search(client, f"ImagingStudy?{A}"))) == [
        "ACC144272509",
        "ACC200000001",
    ]


async def test_r10_polling_gives_the_outcome_when_processing_ends(client: Client) -> None:
    """R10: when processing ends the contributor gets the outcome: success and failure."""
    ok = await finished(client, await submit_async(client, episode(3)))
    assert (ok.status_code, ok.headers["x-original-status"]) == (200, "200")
    assert ok.json()["type"] == "transaction-response"
    assert statuses(ok.json()) == ["201 Created"] * 7
    bad = episode(1)
    keep_identifiers(bad, "Practitioner")
    failed = await finished(client, await submit_async(client, bad))
    assert (failed.status_code, failed.headers["x-original-status"]) == (200, "422")
    assert failed.json()["issue"][0]["diagnostics"].startswith("IG R27:")


async def test_r11_a_sync_submission_answers_its_outcome_in_the_same_exchange(
    client: Client,
) -> None:
    """R11: synchronous: validated and answered in the same exchange (success or refusal)."""
    ok = await client.post("/fhir", json=episode(1))
    assert ok.status_code == 200
    assert statuses(ok.json()) == ["201 Created"] * 7
    assert "content-location" not in ok.headers
    bad = episode(2)
    resource(bad, "ImagingStudy")["status"] = "no-such-status"
    refusal = await client.post("/fhir", json=bad)
    assert refusal.status_code == 400
    assert refusal.json()["resourceType"] == "OperationOutcome"


# -- R12-R19: transaction semantics ----------------------------------------------------------


@pytest.mark.parametrize("position", [0, 3, 6])
async def test_r12_any_failing_entry_stores_nothing(client: Client, position: int) -> None:
    """R12: atomic: one failing entry (first, middle, last) → nothing stored."""
    bundle = episode(1)
    bundle["entry"][position]["resource"]["gender" if position == 0 else "status"] = "bogus"
    issues = await refused(client, bundle, 400)
    assert any(e.startswith(f"Bundle.entry[{position}].resource") for e in issues[0]["expression"])


async def test_r13_the_outcome_does_not_depend_on_entry_order(client: Client) -> None:
    """R13: the same Bundle reversed stores the same resources, references resolved."""
    bundle = episode(2)
    bundle["entry"].reverse()
    body = await submit(client, bundle)
    assert statuses(body) == ["201 Created"] * 7
    created = refs(body)
    report = (await client.get(f"/fhir/{created['DiagnosticReport']}")).json()
    assert report["subject"] == {"reference": created["Patient"]}
    assert report["basedOn"] == [{"reference": created["ServiceRequest"]}]
    assert report["imagingStudy"] == [{"reference": created["ImagingStudy"]}]


async def test_r14_the_same_resource_twice_is_rejected(client: Client) -> None:
    """R14: a resource may appear only once per transaction."""
    bundle = episode(1)
    twice = copy.deepcopy(bundle["entry"][3])
    twice["fullUrl"] = "urn:uuid:00000000-0000-0000-0000-000000000001"
    bundle["entry"].append(twice)
    issues = await refused(client, bundle, 400)
    assert issues[0]["code"] == "duplicate"


async def test_r15_a_conditional_put_creates_when_nothing_matches(client: Client) -> None:
    """R15: PUT Type?identifier=… with no match creates."""
    body = await submit(client, episode(1))
    assert statuses(body) == ["201 Created"] * 7
    order = (await client.get(f"/fhir/{refs(body)['ServiceRequest']}")).json()
    assert order["meta"]["versionId"] == "1"


async def test_r16_a_conditional_put_updates_when_exactly_one_matches(client: Client) -> None:
    """R16: …updates the single match (same id, next version)."""
    first = refs(await submit(client, episode(1)))
    changed = episode(1)
    resource(changed, "DiagnosticReport")["status"] = "amended"
    body = await submit(client, changed)
    assert refs(body) == first
    report = next(e for e in body["entry"] if "/DiagnosticReport/" in e["fullUrl"])
    assert report["response"]["status"] == "200 OK"
    stored = (await client.get(f"/fhir/{first['DiagnosticReport']}")).json()
    assert (stored["status"], stored["meta"]["versionId"]) == ("amended", "2")


async def test_r17_several_matches_reject_the_whole_bundle(client: Client) -> None:
    """R17: …and rejects the whole Bundle when several match."""
    twin = {"resourceType": "Organization", "identifier": [{"system": "urn:s", "value": "dup"}]}
    for _ in range(2):
        assert (await client.post("/fhir/Organization", json=twin)).status_code == 201
    bundle = episode(1)
    bundle["entry"][1]["request"]["url"] = "Organization?identifier=urn:s|dup"
    response = await client.post("/fhir", json=bundle)
    assert response.status_code == 412
    assert response.json()["issue"][0]["code"] == "multiple-matches"
    for type_ in ("Patient", *MAIN):
        history = (await client.get(f"/fhir/{type_}/_history")).json()
        assert history.get("entry", []) == []


async def test_r18_ids_are_assigned_and_urn_uuid_references_rewritten(client: Client) -> None:
    """R18: the server assigns ids; fullUrls are not ids; urn:uuid: references are rewritten."""
    bundle = episode(1)
    body = await submit(client, bundle)
    created = refs(body)
    sent = {e["fullUrl"].removeprefix("urn:uuid:") for e in bundle["entry"]}
    assert not sent & {ref.split("/")[1] for ref in created.values()}
    study = (await client.get(f"/fhir/{created['ImagingStudy']}")).json()
    assert study["subject"] == {"reference": created["Patient"]}
    assert study["basedOn"] == [{"reference": created["ServiceRequest"]}]
    assert study["endpoint"] == [{"reference": created["Endpoint"]}]
    assert "urn:uuid:" not in json.dumps(study)


async def test_r19_a_submitted_id_is_never_the_stored_id(client: Client) -> None:
    """R19: an `id` on a submitted resource is not used (in a Bundle nor on a create)."""
    bundle = episode(1)
    for entry in bundle["entry"]:
        entry["resource"]["id"] = "client-chosen"
    created = refs(await submit(client, bundle))
    assert all(ref.split("/")[1] != "client-chosen" for ref in created.values())
    alone = {"resourceType": "Endpoint", "id": "mine", **_endpoint_body()}
    response = await client.post("/fhir/Endpoint", json=alone)
    assert response.status_code == 201
    assert response.json()["id"] != "mine"
    assert (await client.get("/fhir/Endpoint/mine")).status_code == 404


def _endpoint_body() -> dict[str, Any]:
    endpoint = resource(episode(1), "Endpoint")
    return {k: v for k, v in endpoint.items() if k not in ("resourceType", "id")}


# -- R20-R24: submission content -------------------------------------------------------------

REPORT_PROFILE = "http://ontariohealth.ca/fhir/micdr/StructureDefinition/bundle-submit-mi-report"


def report_submission() -> dict[str, Any]:
    """A Submit MI Report: a transaction with a DiagnosticReport and what it references."""
    bundle = without_type(episode(1), "Endpoint", "ImagingStudy")
    resource(bundle, "DiagnosticReport").pop("imagingStudy")
    bundle["meta"] = {"profile": [REPORT_PROFILE]}
    return bundle


async def test_r20_a_report_submission_with_its_report_is_accepted(client: Client) -> None:
    """R20 (the part that holds): a Submit MI Report Bundle — DiagnosticReport plus the
    resources it references — is accepted synchronously."""
    body = await submit(client, report_submission(), "/fhir/Bundle")
    assert set(refs(body)) == {
        "Patient",
        "Organization",
        "Practitioner",
        "ServiceRequest",
        "DiagnosticReport",
    }


async def test_r20_a_report_submission_without_a_report_is_rejected(client: Client) -> None:
    """R20: a Submit MI Report Bundle (declared by Bundle.meta.profile; the IG's profile URL is
    unpublished, so the accepted URLs are MICDR_REPORT_BUNDLE_PROFILES, whose default this is)
    without a DiagnosticReport is rejected."""
    bundle = without_type(report_submission(), "DiagnosticReport")
    await refused(client, bundle, 422)


async def test_r21_order_report_and_study_are_accepted_together(client: Client) -> None:
    """R21: ServiceRequest + DiagnosticReport + ImagingStudy + referenced resources at once."""
    created = refs(await submit(client, episode(3), "/fhir/Bundle"))
    assert set(created) == {
        "Patient",
        "Organization",
        "Practitioner",
        "ServiceRequest",
        "Endpoint",
        "ImagingStudy",
        "DiagnosticReport",
    }
    report = (await client.get(f"/fhir/{created['DiagnosticReport']}")).json()
    assert report["basedOn"] == [{"reference": created["ServiceRequest"]}]


@pytest.mark.parametrize(
    ("type_", "element"),
    [
        ("ServiceRequest", "status"),
        ("ServiceRequest", "intent"),
        ("ServiceRequest", "subject"),
        ("ImagingStudy", "status"),
        ("ImagingStudy", "subject"),
        ("DiagnosticReport", "status"),
        ("DiagnosticReport", "code"),
        ("Endpoint", "address"),
    ],
)
async def test_r22_a_missing_mandatory_element_is_an_error(
    client: Client, type_: str, element: str
) -> None:
    """R22: a missing mandatory (min ≥ 1) element → error naming it, nothing stored."""
    bundle = episode(1)
    del resource(bundle, type_)[element]
    issues = await refused(client, bundle, 400)
    assert any(
        expr.endswith(f".resource.{element}") or expr.endswith(f"{type_}.{element}")
        for issue in issues
        for expr in issue.get("expression", [])
    ), issues


@pytest.mark.parametrize(
    ("type_", "elements"),
    [
        ("ServiceRequest", ("requester", "category", "authoredOn")),
        ("ImagingStudy", ("numberOfSeries", "numberOfInstances", "series", "basedOn")),
        ("DiagnosticReport", ("resultsInterpreter", "conclusion", "effectiveDateTime")),
        ("Patient", ("birthDate", "gender")),
    ],
)
async def test_r23_missing_optional_must_support_elements_are_accepted(
    client: Client, type_: str, elements: tuple[str, ...]
) -> None:
    """R23: optional Must Support elements may be missing: no error."""
    bundle = episode(1)
    r = resource(bundle, type_)
    for element in elements:
        del r[element]
    keep_identifiers(bundle, "Patient", MRN)  # the HCN is a "should": missing is fine too
    body = await submit(client, bundle)
    assert statuses(body) == ["201 Created"] * 7


async def test_r24_valid_elements_outside_the_profile_are_accepted(client: Client) -> None:
    """R24: valid FHIR elements outside the submission profiles are not rejected."""
    bundle = episode(1)
    resource(bundle, "Patient")["maritalStatus"] = {"text": "married"}
    resource(bundle, "ServiceRequest")["note"] = [{"text": "patient claustrophobic"}]
    resource(bundle, "ServiceRequest")["priority"] = "urgent"
    resource(bundle, "ImagingStudy")["description"] = "chest two views"
    resource(bundle, "DiagnosticReport")["presentedForm"] = [
        {"contentType": "text/plain", "data": "Tm8gYWN1dGUgZmluZGluZ3Mu"}
    ]
    body = await submit(client, bundle)
    assert statuses(body) == ["201 Created"] * 7
    assert all(e["response"].get("outcome") is None for e in body["entry"])


# -- R25-R29: identifier rules ---------------------------------------------------------------


async def test_r25_a_hospital_patient_without_an_mrn_is_rejected(client: Client) -> None:
    """R25: hospital submission without an MRN → rejected (422 business-rule)."""
    bundle = keep_identifiers(episode(1), "Patient", HCN)
    await business_rule(client, bundle, "R25", "Patient.identifier")


async def test_r26_an_ichsc_patient_with_neither_mrn_nor_hcn_is_rejected(client: Client) -> None:
    """R26: ICHSC submission with neither MRN nor HCN → rejected; either one suffices."""
    await business_rule(
        client, as_ichsc(keep_identifiers(episode(2), "Patient")), "R26", "Patient.identifier"
    )
    await submit(client, as_ichsc(keep_identifiers(episode(2), "Patient", HCN)))
    await submit(client, as_ichsc(keep_identifiers(episode(3), "Patient", MRN)))


async def test_r27_a_practitioner_without_a_licence_is_rejected(client: Client) -> None:
    """R27: Practitioner without a licence/registration identifier → rejected."""
    bundle = keep_identifiers(episode(1), "Practitioner")
    await business_rule(client, bundle, "R27", "Practitioner.identifier")


async def test_r28_an_organization_without_a_upi_is_rejected(client: Client) -> None:
    """R28: Organization without a UPI → rejected."""
    bundle = keep_identifiers(episode(1), "Organization")
    await business_rule(client, bundle, "R28", "Organization.identifier")


async def test_r29_the_hcn_is_recognised_by_the_ig_system(client: Client) -> None:
    """R29: the HCN uses .../ca-on-patient-hcn; the same number under another system is not an
    HCN (an ICHSC patient identified only by it is refused)."""
    elsewhere = as_ichsc(keep_identifiers(episode(2), "Patient", HCN))
    resource(elsewhere, "Patient")["identifier"][0]["system"] = "urn:oid:2.16.840.1.113883.4.59"
    await business_rule(client, elsewhere, "R26", "Patient.identifier")
    ontario = as_ichsc(keep_identifiers(episode(2), "Patient", HCN))
    assert resource(ontario, "Patient")["identifier"][0]["system"] == HCN
    await submit(client, ontario)


# -- R30-R31: the longitudinal index ---------------------------------------------------------


async def test_r30_every_main_resource_gets_a_document_reference(client: Client) -> None:
    """R30: a server-made DocumentReference per ServiceRequest, DiagnosticReport, ImagingStudy."""
    created = refs(await submit(client, episode(1)))
    history = (await client.get("/fhir/DocumentReference/_history")).json()
    docs = [e["resource"] for e in history["entry"]]
    assert len(docs) == 3
    assert sorted(d["content"][0]["attachment"]["url"] for d in docs) == sorted(
        created[t] for t in MAIN
    )
    assert all(d["subject"] == {"reference": created["Patient"]} for d in docs)


async def test_r31_the_attachment_url_resolves_to_the_resource(client: Client) -> None:
    """R31: content.attachment.url resolves (against the base) to the indexed resource."""
    created = refs(await submit(client, episode(2)))
    history = (await client.get("/fhir/DocumentReference/_history")).json()
    for entry in history["entry"]:
        url = entry["resource"]["content"][0]["attachment"]["url"]
        target = await client.get(f"/fhir/{url}")
        assert target.status_code == 200
        body = target.json()
        assert created[body["resourceType"]] == f"{body['resourceType']}/{body['id']}" == url


# -- R32-R46: searches ---------------------------------------------------------------------


async def test_r32_document_references_of_a_patient_are_exactly_their_mi_records(
    records: Client,
) -> None:
    """R32: DocumentReference?patient.identifier=system|value → searchset of exactly the
    patient's MI DocumentReferences, one per ServiceRequest/ImagingStudy/DiagnosticReport."""
    for patient, episodes in ((A, 3), (B, 1)):
        docs = matches(await search(records, f"DocumentReference?{patient}&_count=100"))
        assert all(d["resourceType"] == "DocumentReference" for d in docs)
        urls = [d["content"][0]["attachment"]["url"] for d in docs]
        assert len(urls) == len(set(urls)) == 3 * episodes
        assert set(urls) == await main_refs_of(records, patient)
        assert len({json.dumps(d["subject"]) for d in docs}) == 1


async def test_r32_an_unknown_patient_has_no_document_references(records: Client) -> None:
    """R32: an identifier that names no patient answers an empty searchset."""
    body = await search(records, f"DocumentReference?patient.identifier={HCN}|0000000000")
    assert matches(body) == []


async def test_r33_service_requests_by_patient_identifier(records: Client) -> None:
    """R33: ServiceRequest?patient.identifier → the patient's orders."""
    assert sorted(accessions(await search(records, f"ServiceRequest?{A}"))) == A_ALL
    assert accessions(await search(records, f"ServiceRequest?{B}")) == ["ACC926756582"]


async def test_r34_diagnostic_reports_by_patient_identifier(records: Client) -> None:
    """R34: DiagnosticReport?patient.identifier → the patient's reports."""
    assert sorted(accessions(await search(records, f"DiagnosticReport?{A}"))) == A_ALL
    assert accessions(await search(records, f"DiagnosticReport?{B}")) == ["ACC926756582"]


async def test_r35_imaging_studies_by_patient_identifier(records: Client) -> None:
    """R35: ImagingStudy?patient.identifier → the patient's studies."""
    assert sorted(accessions(await search(records, f"ImagingStudy?{A}"))) == A_ALL
    assert accessions(await search(records, f"ImagingStudy?{B}")) == ["ACC926756582"]


@pytest.mark.parametrize(
    "query",
    [
        "ServiceRequest",
        "DiagnosticReport?status=final",
        "ImagingStudy?identifier=urn:dicom:uid|urn:oid:1.2.840.99.144272509",
        "DocumentReference",
        "DocumentReference?patient.gender=female",
    ],
)
async def test_r36_an_mi_search_without_patient_identifier_is_rejected(
    records: Client, query: str
) -> None:
    """R36: an MI search without patient.identifier → rejected (400 required)."""
    body = await search(records, query, status=400)
    assert body["issue"][0]["code"] == "required"


@pytest.mark.parametrize("value", ["5566009041", f"{HCN}|", "|5566009041", HCN])
async def test_r37_patient_identifier_needs_both_system_and_value(
    records: Client, value: str
) -> None:
    """R37: patient.identifier without both system and value → rejected."""
    body = await search(records, f"ImagingStudy?patient.identifier={value}", status=400)
    assert body["issue"][0]["code"] == "required"


async def test_r38_hcn_mrn_and_ecid_systems_are_accepted(client: Client) -> None:
    """R38: HCN, MRN and ECID identify the patient in a search."""
    bundle = episode(1)
    resource(bundle, "Patient")["identifier"].append({"system": ECID, "value": "ECID-77"})
    await submit(client, bundle)
    await submit(client, episode(2))
    await indexed(client)
    for ident in (f"{HCN}|5566009041", f"{MRN}|MRN1978347", f"{ECID}|ECID-77"):
        body = await search(client, f"ImagingStudy?patient.identifier={ident}")
        assert accessions(body) == ["ACC144272509"], ident


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("patient.gender=female", A_ALL),
        ("patient.gender=male", []),
        ("patient.birthDate=1987-08-21", A_ALL),
        ("patient.birthDate=1951-12-26", []),
    ],
)
async def test_r39_patient_gender_and_birth_date_filter(
    records: Client, query: str, expected: list[str]
) -> None:
    """R39: patient.gender and patient.birthDate filter."""
    assert sorted(accessions(await search(records, f"DiagnosticReport?{A}&{query}"))) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("authored=ge2023-01-01", ["ACC200000001", "ACC200000002"]),
        ("authored=lt2022", ["ACC144272509"]),
        ("status=completed", A_ALL),
        ("status=active", []),
        ("code=urn:oid:2.16.840.1.113883.3.239.99.1|CT-HEAD", ["ACC200000002"]),
        ("category=http://dicom.nema.org/resources/ontology/DCM|MR", ["ACC200000001"]),
        (f"identifier={ACC}|ACC200000001", ["ACC200000001"]),
        (
            "identifier=https://example.org/fhir/NamingSystem/hospital-a-placer|PL144272509",
            ["ACC144272509"],
        ),
    ],
)
async def test_r40_service_request_parameters(
    records: Client, query: str, expected: list[str]
) -> None:
    """R40: ServiceRequest occurrence/authored, status, code, category, identifier."""
    assert sorted(accessions(await search(records, f"ServiceRequest?{A}&{query}"))) == expected


async def test_r40_service_request_occurrence(client: Client) -> None:
    """R40: ServiceRequest `occurrence` filters on occurrence[x]."""
    bundle = episode(1)
    resource(bundle, "ServiceRequest")["occurrenceDateTime"] = "2021-03-01T10:00:00-05:00"
    await submit(client, bundle)
    await indexed(client)
    hit = await search(client, f"ServiceRequest?{A}&occurrence=2021-03-01")
    assert accessions(hit) == ["ACC144272509"]
    assert accessions(await search(client, f"ServiceRequest?{A}&occurrence=lt2021-03")) == []


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("authored", A_ALL),
        ("-authored", A_ALL[::-1]),
        ("identifier", A_ALL),
        ("-identifier", A_ALL[::-1]),
    ],
)
async def test_r41_service_request_sort(records: Client, sort: str, expected: list[str]) -> None:
    """R41: ServiceRequest _sort on identifier and authoredOn, `-` descending."""
    assert accessions(await search(records, f"ServiceRequest?{A}&_sort={sort}")) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("issued=ge2023-06-01T15:00:00-05:00", ["ACC200000001", "ACC200000002"]),
        ("status=final", A_ALL),
        ("status=preliminary", []),
        ("code=MR-KNEE-L", ["ACC200000001"]),
        (f"identifier={ACC}|ACC200000002", ["ACC200000002"]),
        ("based-on:ServiceRequest.code=CT-HEAD", ["ACC200000002"]),
        ("based-on:ServiceRequest.category=DX", ["ACC144272509"]),
    ],
)
async def test_r42_diagnostic_report_parameters(
    records: Client, query: str, expected: list[str]
) -> None:
    """R42: DiagnosticReport issued, status, code, identifier, based-on:ServiceRequest.*."""
    assert sorted(accessions(await search(records, f"DiagnosticReport?{A}&{query}"))) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("started=gt2023-05-31", ["ACC200000001", "ACC200000002"]),
        ("started=ge2025-01-10T09:30:00-05:00", ["ACC200000002"]),
        ("started=lt2021-02-17", ["ACC144272509"]),
        ("started=le2023-06-01", ["ACC144272509", "ACC200000001"]),
        ("identifier=urn:dicom:uid|urn:oid:1.2.840.99.200000001", ["ACC200000001"]),
        (f"identifier={ACC}|ACC200000002", ["ACC200000002"]),
        ("based-on:ServiceRequest.code=MR-KNEE-L", ["ACC200000001"]),
        ("based-on:ServiceRequest.category=CT", ["ACC200000002"]),
        (
            "based-on:ServiceRequest.code=CT-HEAD&based-on:ServiceRequest.category=CT",
            ["ACC200000002"],
        ),
        ("based-on:ServiceRequest.code=CT-HEAD&based-on:ServiceRequest.category=MR", []),
    ],
)
async def test_r43_imaging_study_parameters(
    records: Client, query: str, expected: list[str]
) -> None:
    """R43: ImagingStudy started gt/ge/lt/le, identifier, order code/category chains and their
    composite (both on the order)."""
    assert sorted(accessions(await search(records, f"ImagingStudy?{A}&{query}"))) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (f"identifier={ACC}|ACC200000001", ["ACC200000001"] * 3),
        ("identifier=urn:dicom:uid|urn:oid:1.2.840.99.200000002", ["ACC200000002"]),
        ("date=ge2020-01-01", sorted(A_ALL * 3)),
        ("date=lt2020-01-01", []),
        ("period=ge2023-01-01", sorted(["ACC200000001", "ACC200000002"] * 3)),
        ("period=2021-02-16", ["ACC144272509"] * 3),
        ("period=gt2025-12-31", []),
    ],
)
async def test_r44_document_reference_identifier_date_and_period(
    records: Client, query: str, expected: list[str]
) -> None:
    """R44: DocumentReference identifier, date (when indexed) and period (clinical date)."""
    body = await search(records, f"DocumentReference?{A}&{query}&_count=100")
    assert sorted(accessions(body)) == expected


async def test_r45_count_limits_entries(records: Client) -> None:
    """R45: _count limits the entries of a page, with a next link for the rest."""
    body = await search(records, f"DocumentReference?{A}&_count=4")
    assert len(matches(body)) == 4
    assert any(link["relation"] == "next" for link in body["link"])
    assert len(matches(await search(records, f"ImagingStudy?{A}&_count=1"))) == 1


@pytest.mark.parametrize(
    ("query", "included"),
    [
        ("DiagnosticReport?{A}&_include=DiagnosticReport:subject", ["Patient"]),
        ("DiagnosticReport?{A}&_include=DiagnosticReport:based-on", ["ServiceRequest"] * 3),
        ("ImagingStudy?{A}&_include=ImagingStudy:basedon", ["ServiceRequest"] * 3),
        ("ServiceRequest?{A}&_include=ServiceRequest:subject", ["Patient"]),
        ("DocumentReference?{A}&_include=DocumentReference:subject", ["Patient"]),
    ],
)
async def test_r46_include_on_mi_searches(records: Client, query: str, included: list[str]) -> None:
    """R46: _include on MI searches adds the referenced resources (mode include)."""
    body = await search(records, query.format(A=A) + "&_count=100")
    kinds = sorted(
        e["resource"]["resourceType"] for e in body["entry"] if e["search"]["mode"] == "include"
    )
    assert kinds == included


# -- R47-R51: reads, endpoints, amendments, open-ended dates ---------------------------------


@pytest.mark.parametrize("type_", ["DiagnosticReport", "ServiceRequest"])
async def test_r47_get_report_and_order_by_id(client: Client, type_: str) -> None:
    """R47: GET DiagnosticReport/{id} and ServiceRequest/{id} → 200."""
    ref = refs(await submit(client, episode(1)))[type_]
    response = await client.get(f"/fhir/{ref}")
    assert response.status_code == 200
    body = response.json()
    assert (body["resourceType"], body["id"]) == (type_, ref.split("/")[1])
    assert body["identifier"] == resource(episode(1), type_)["identifier"]


async def test_r48_get_imaging_study_by_id(client: Client) -> None:
    """R48: GET ImagingStudy/{id} → 200."""
    ref = refs(await submit(client, episode(1)))["ImagingStudy"]
    response = await client.get(f"/fhir/{ref}")
    assert response.status_code == 200
    body = response.json()
    assert (body["resourceType"], body["id"]) == ("ImagingStudy", ref.split("/")[1])
    assert body["series"] == resource(episode(1), "ImagingStudy")["series"]


async def test_r49_imaging_study_results_carry_their_endpoints(records: Client) -> None:
    """R49: ImagingStudy results can carry their Endpoint resources (_include)."""
    body = await search(records, f"ImagingStudy?{A}&_include=ImagingStudy:endpoint")
    studies = matches(body)
    endpoints = {
        f"Endpoint/{e['resource']['id']}": e["resource"]
        for e in body["entry"]
        if e["search"]["mode"] == "include"
    }
    assert len(studies) == 3
    assert {s["endpoint"][0]["reference"] for s in studies} == set(endpoints)
    assert all(e["resourceType"] == "Endpoint" for e in endpoints.values())


async def test_r50_addendum_of_is_accepted_preserved_and_searchable(client: Client) -> None:
    """R50: a DiagnosticReport's ext-di-addendum-of is accepted and preserved as received."""
    created = refs(await submit(client, episode(1)))
    bundle = episode(1)
    report = resource(bundle, "DiagnosticReport")
    report["identifier"] = [{"system": ACC, "value": "ACC144272509-ADD1"}]
    report["status"] = "amended"
    report["conclusion"] = "Addendum: small nodule, follow up in 6 months."
    report["extension"] = [
        {"url": ADDENDUM, "valueReference": {"reference": created["DiagnosticReport"]}}
    ]
    bundle["entry"][-1]["request"]["url"] = f"DiagnosticReport?identifier={ACC}|ACC144272509-ADD1"
    addendum = refs(await submit(client, bundle))["DiagnosticReport"]
    assert addendum != created["DiagnosticReport"]
    stored = (await client.get(f"/fhir/{addendum}")).json()
    assert stored["extension"] == report["extension"]
    original = (await client.get(f"/fhir/{created['DiagnosticReport']}")).json()
    assert (original["status"], original["meta"]["versionId"]) == ("final", "1")
    await indexed(client)
    found = await search(client, f"DiagnosticReport?{A}&addendum-of={created['DiagnosticReport']}")
    assert [f"DiagnosticReport/{r['id']}" for r in matches(found)] == [addendum]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ImagingStudy?{A}&started=le2024-12-31", ["ACC144272509", "ACC200000001"]),
        ("ImagingStudy?{A}&started=lt2021-02-17", ["ACC144272509"]),
        ("DiagnosticReport?{A}&issued=lt2030", A_ALL),
        ("ServiceRequest?{A}&authored=le2023-06-01", ["ACC144272509", "ACC200000001"]),
        (
            "DocumentReference?{A}&period=le2024-12-31&_count=100",
            sorted(["ACC144272509", "ACC200000001"] * 3),
        ),
    ],
)
async def test_r51_an_end_date_alone_covers_everything_before_it(
    records: Client, query: str, expected: list[str]
) -> None:
    """R51: a search with no start date covers everything before its end date."""
    assert sorted(accessions(await search(records, query.format(A=A)))) == expected
