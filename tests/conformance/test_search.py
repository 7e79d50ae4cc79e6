"""search (search.html) through the HTTP API on both deployments' stores with the embedded
index; the IG's MI searches (IG R32-R46, R49, R51) over IG-shaped episodes.

Fixture: patient A (HCN 5566009041, MRN1978347) has three episodes (2021 XR chest / DX,
2023 MR knee / MR, 2025 CT head / CT); patient B (episode 2's Gagnon, HCN 1242886303) one.
Results are compared by accession number, exactly and in order where a sort is asked.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.conformance.conftest import episode, indexed

Client = AsyncTestClient[Any]
HCN = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn"
MRN = "https://example.org/fhir/NamingSystem/hospital-a-mrn"
ACC = "https://example.org/fhir/NamingSystem/hospital-a-accession"
A = f"patient.identifier={HCN}|5566009041"
B = f"patient.identifier={HCN}|1242886303"


def variant(accession: str, day: str, code: str, modality: str) -> dict[str, Any]:
    """Episode 1 for the same patient with another accession, date, procedure and modality."""
    bundle = copy.deepcopy(episode(1))
    old = "144272509"
    for entry in bundle["entry"]:
        resource = entry["resource"]
        kind = resource["resourceType"]
        for ident in resource.get("identifier", []):
            ident["value"] = ident["value"].replace(old, accession)
        entry["request"]["url"] = entry["request"]["url"].replace(old, accession)
        if kind == "ServiceRequest":
            resource["authoredOn"] = f"{day}T08:00:00-05:00"
            resource["code"]["coding"][0]["code"] = code
            resource["category"][0]["coding"][0]["code"] = modality
        if kind == "ImagingStudy":
            resource["started"] = f"{day}T09:30:00-05:00"
            resource["modality"][0]["code"] = modality
            for series in resource.get("series", []):
                series["modality"]["code"] = modality
        if kind == "DiagnosticReport":
            resource["issued"] = f"{day}T15:00:00-05:00"
            resource["effectiveDateTime"] = f"{day}T09:30:00-05:00"
            resource["code"]["coding"][0]["code"] = code
    return bundle


@pytest.fixture
async def loaded(client: Client) -> Client:
    for bundle in (
        episode(1),
        variant("200000001", "2023-06-01", "MR-KNEE-L", "MR"),
        variant("200000002", "2025-01-10", "CT-HEAD", "CT"),
        episode(2),
    ):
        response = await client.post("/fhir", json=bundle)
        assert response.status_code == 200, response.text
    await indexed(client)
    return client


async def search(client: Client, query: str, status: int = 200) -> dict[str, Any]:
    response = await client.get(f"/fhir/{query}")
    assert response.status_code == status, response.text
    return response.json()


def accessions(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    out = []
    for entry in bundle.get("entry", []):
        if entry["search"]["mode"] != mode:
            continue
        idents = entry["resource"].get("identifier", [])
        out.append(next(i["value"] for i in idents if i.get("system") == ACC))
    return out


async def test_r33_service_requests_of_a_patient(loaded: Client) -> None:
    body = await search(loaded, f"ServiceRequest?{A}&_sort=authored")
    assert body["type"] == "searchset"
    assert accessions(body) == ["ACC144272509", "ACC200000001", "ACC200000002"]


async def test_r41_sort_descending_by_authored(loaded: Client) -> None:
    body = await search(loaded, f"ServiceRequest?{A}&_sort=-authored")
    assert accessions(body) == ["ACC200000002", "ACC200000001", "ACC144272509"]


async def test_r41_sort_by_identifier(loaded: Client) -> None:
    body = await search(loaded, f"ServiceRequest?{A}&_sort=-identifier")
    assert accessions(body)[0] == "ACC200000002"


async def test_r38_mrn_identifies_the_patient_too(loaded: Client) -> None:
    body = await search(loaded, f"ImagingStudy?patient.identifier={MRN}|MRN1978347")
    assert sorted(accessions(body)) == ["ACC144272509", "ACC200000001", "ACC200000002"]


async def test_r34_reports_of_another_patient_are_not_returned(loaded: Client) -> None:
    assert accessions(await search(loaded, f"DiagnosticReport?{B}")) == ["ACC926756582"]


@pytest.mark.parametrize(
    "query",
    [
        "DiagnosticReport?status=final",
        "ServiceRequest?code=XR-CHEST",
        "ImagingStudy",
        "DocumentReference",
    ],
)
async def test_r36_an_mi_search_without_patient_identifier_is_refused(
    loaded: Client, query: str
) -> None:
    body = await search(loaded, query, status=400)
    assert body["issue"][0]["code"] == "required"


@pytest.mark.parametrize("value", ["5566009041", f"{HCN}|", "|5566009041"])
async def test_r37_patient_identifier_needs_system_and_value(loaded: Client, value: str) -> None:
    await search(loaded, f"DiagnosticReport?patient.identifier={value}", status=400)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("patient.gender=female", ["ACC144272509", "ACC200000001", "ACC200000002"]),
        ("patient.gender=male", []),
        ("patient.birthDate=1987-08-21", ["ACC144272509", "ACC200000001", "ACC200000002"]),
        ("patient.birthdate=lt1950", []),
    ],
)
async def test_r39_patient_gender_and_birth_date_filter(
    loaded: Client, query: str, expected: list[str]
) -> None:
    body = await search(loaded, f"ImagingStudy?{A}&{query}")
    assert sorted(accessions(body)) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("authored=ge2023-01-01", ["ACC200000001", "ACC200000002"]),
        ("authored=lt2023", ["ACC144272509"]),
        ("authored=2023-06", ["ACC200000001"]),
        ("code=urn:oid:2.16.840.1.113883.3.239.99.1|CT-HEAD", ["ACC200000002"]),
        ("code=MR-KNEE-L,CT-HEAD", ["ACC200000001", "ACC200000002"]),
        ("category=http://dicom.nema.org/resources/ontology/DCM|DX", ["ACC144272509"]),
        ("status=completed", ["ACC144272509", "ACC200000001", "ACC200000002"]),
        ("status=active", []),
        (f"identifier={ACC}|ACC200000001", ["ACC200000001"]),
        ("identifier=PL200000002", ["ACC200000002"]),
    ],
)
async def test_r40_service_request_parameters(
    loaded: Client, query: str, expected: list[str]
) -> None:
    body = await search(loaded, f"ServiceRequest?{A}&{query}")
    assert sorted(accessions(body)) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("issued=ge2023-06-01T15:00:00-05:00", ["ACC200000001", "ACC200000002"]),
        ("issued=le2021", ["ACC144272509"]),
        ("status=final", ["ACC144272509", "ACC200000001", "ACC200000002"]),
        ("code=CT-HEAD", ["ACC200000002"]),
        ("based-on:ServiceRequest.code=MR-KNEE-L", ["ACC200000001"]),
        ("based-on:ServiceRequest.category=DX", ["ACC144272509"]),
        (f"identifier={ACC}|ACC144272509", ["ACC144272509"]),
    ],
)
async def test_r42_diagnostic_report_parameters(
    loaded: Client, query: str, expected: list[str]
) -> None:
    body = await search(loaded, f"DiagnosticReport?{A}&{query}")
    assert sorted(accessions(body)) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # gt compares with the end of the day: a study on 2023-06-01 is not after 2023-06-01
        ("started=gt2023-06-01", ["ACC200000002"]),
        ("started=gt2023-05-31", ["ACC200000001", "ACC200000002"]),
        ("started=ge2025-01-10T09:30:00-05:00", ["ACC200000002"]),
        ("started=lt2021-02-17", ["ACC144272509"]),
        ("started=le2021-02-16T14:30:00Z", ["ACC144272509"]),
        ("identifier=urn:dicom:uid|urn:oid:1.2.840.99.200000001", ["ACC200000001"]),
        ("based-on:ServiceRequest.code=CT-HEAD", ["ACC200000002"]),
    ],
)
async def test_r43_imaging_study_parameters(
    loaded: Client, query: str, expected: list[str]
) -> None:
    body = await search(loaded, f"ImagingStudy?{A}&{query}")
    assert sorted(accessions(body)) == expected


async def test_r45_count_limits_entries_and_pages_without_repeats(loaded: Client) -> None:
    seen: list[str] = []
    body = await search(loaded, f"ServiceRequest?{A}&_count=2&_sort=authored")
    assert len(body["entry"]) == 2
    seen += accessions(body)
    next_link = next(link["url"] for link in body["link"] if link["relation"] == "next")
    second = (await loaded.get(next_link)).json()
    seen += accessions(second)
    assert seen == ["ACC144272509", "ACC200000001", "ACC200000002"]
    assert all(link["relation"] != "next" for link in second["link"])


async def test_a_tampered_page_link_is_refused(loaded: Client) -> None:
    body = await search(loaded, f"ServiceRequest?{A}&_count=1")
    next_link = next(link["url"] for link in body["link"] if link["relation"] == "next")
    tampered = next_link[:-3] + ("AAA" if not next_link.endswith("AAA") else "BBB")
    response = await loaded.get(tampered)
    assert response.status_code == 400


async def test_r46_include_subject_and_based_on(loaded: Client) -> None:
    body = await search(
        loaded,
        f"DiagnosticReport?{A}&issued=ge2025&_include=DiagnosticReport:subject"
        "&_include=DiagnosticReport:based-on",
    )
    assert accessions(body) == ["ACC200000002"]
    included = sorted(
        e["resource"]["resourceType"] for e in body["entry"] if e["search"]["mode"] == "include"
    )
    assert included == ["Patient", "ServiceRequest"]


async def test_r49_imaging_studies_carry_their_endpoints(loaded: Client) -> None:
    body = await search(loaded, f"ImagingStudy?{A}&_include=ImagingStudy:endpoint")
    endpoints = [e for e in body["entry"] if e["search"]["mode"] == "include"]
    assert [e["resource"]["resourceType"] for e in endpoints] == ["Endpoint"] * 3


async def test_total_accurate_counts_every_match(loaded: Client) -> None:
    body = await search(loaded, f"ImagingStudy?{A}&_total=accurate&_count=1")
    assert body["total"] == 3
    assert len(body["entry"]) == 1


async def test_summary_count_answers_only_the_total(loaded: Client) -> None:
    body = await search(loaded, f"ImagingStudy?{A}&_summary=count")
    assert body["total"] == 3
    assert body.get("entry", []) == []


async def test_post_search_answers_like_get(loaded: Client) -> None:
    response = await loaded.post(
        "/fhir/ImagingStudy/_search",
        content=f"{A}&started=gt2022",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert sorted(accessions(response.json())) == ["ACC200000001", "ACC200000002"]


async def test_unknown_parameters_are_ignored_leniently_and_refused_strictly(
    loaded: Client,
) -> None:
    lenient = await search(loaded, f"ImagingStudy?{A}&unknown=1")
    assert len(accessions(lenient)) == 3
    assert "unknown" not in lenient["link"][0]["url"]
    strict = await loaded.get(
        f"/fhir/ImagingStudy?{A}&unknown=1", headers={"Prefer": "handling=strict"}
    )
    assert strict.status_code == 400


async def test_plain_search_of_other_types_works(loaded: Client) -> None:
    body = await search(loaded, "Patient?family=gagnon&given=zoe")
    assert [e["resource"]["name"][0]["family"] for e in body["entry"]] == ["Gagnon"]
    body = await search(loaded, "Patient?birthdate=ge1980&_sort=birthdate")
    assert [e["resource"]["birthDate"] for e in body["entry"]] == ["1987-08-21"]


async def test_a_search_after_a_delete_no_longer_finds_it(loaded: Client) -> None:
    body = await search(loaded, f"ImagingStudy?{A}&started=ge2025")
    ref = body["entry"][0]["fullUrl"].split("/fhir/")[1]
    assert (await loaded.delete(f"/fhir/{ref}")).status_code == 204
    await indexed(loaded)
    assert accessions(await search(loaded, f"ImagingStudy?{A}&started=ge2025")) == []
