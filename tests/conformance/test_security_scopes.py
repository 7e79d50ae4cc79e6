"""Authorisation with SMART v2-style scopes (docs/security.md, "Scopes"), on both stores:
contributors (`system/`) reach their organisation's resources only, viewers (`user/`) every
resource of the granted types, patient apps (`patient/`) one patient's compartment. Searches are
filtered inside the query: totals and pages count only what the caller may see."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.security.access import ORG_TAG_SYSTEM
from tests.conformance._auth import (
    ORG_A,
    ORG_B,
    bearer,
    contributor,
    patient_app,
    secured_client,
    token,
    viewer,
)
from tests.conformance._clients import DEPLOYMENTS
from tests.conformance.conftest import indexed

A, B = contributor(ORG_A), contributor(ORG_B)


@pytest.fixture(params=DEPLOYMENTS)
async def client(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    async with secured_client(request.param, tmp_path) as c:
        yield c


def patient(family: str, mrn: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:mrn", "value": mrn}],
        "name": [{"family": family}],
    }


def study(patient_id: str, uid: str) -> dict[str, Any]:
    return {
        "resourceType": "ImagingStudy",
        "status": "available",
        "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:1.2.{uid}"}],
        "subject": {"reference": f"Patient/{patient_id}"},
    }


async def create(client: AsyncTestClient[Any], who: dict[str, str], body: dict[str, Any]) -> str:
    r = await client.post(f"/fhir/{body['resourceType']}", json=body, headers=who)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def seed(client: AsyncTestClient[Any]) -> dict[str, str]:
    """Hospital A: patient pa with 3 studies; hospital B: patient pb with 2 studies."""
    ids = {"pa": await create(client, A, patient("Alpha", "a1"))}
    ids["pb"] = await create(client, B, patient("Beta", "b1"))
    for n in range(3):
        ids[f"sa{n}"] = await create(client, A, study(ids["pa"], f"1{n}"))
    for n in range(2):
        ids[f"sb{n}"] = await create(client, B, study(ids["pb"], f"2{n}"))
    await indexed(client)
    return ids


def ids_of(bundle: dict[str, Any], mode: str = "match") -> set[str]:
    return {e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode}


async def test_a_contributors_write_records_its_organisation_over_any_sent_tag(
    client: AsyncTestClient[Any],
) -> None:
    body = patient("Spoof", "s1")
    body["meta"] = {"tag": [{"system": ORG_TAG_SYSTEM, "code": ORG_B}]}
    r = await client.post("/fhir/Patient", json=body, headers=A)
    assert r.status_code == 201
    tags = [t for t in r.json()["meta"]["tag"] if t["system"] == ORG_TAG_SYSTEM]
    assert tags == [{"system": ORG_TAG_SYSTEM, "code": ORG_A}]


async def test_a_contributors_search_and_accurate_total_count_only_its_own(
    client: AsyncTestClient[Any],
) -> None:
    ids = await seed(client)
    r = await client.get("/fhir/ImagingStudy", params={"_total": "accurate"}, headers=A)
    assert r.status_code == 200
    assert r.json()["total"] == 3
    assert ids_of(r.json()) == {ids["sa0"], ids["sa1"], ids["sa2"]}
    r = await client.get("/fhir/ImagingStudy", params={"_total": "accurate"}, headers=B)
    assert r.json()["total"] == 2
    r = await client.get("/fhir/ImagingStudy", params={"_summary": "count"}, headers=B)
    assert r.json()["total"] == 2


async def test_a_contributors_pages_hold_only_its_own_and_end_when_they_do(
    client: AsyncTestClient[Any],
) -> None:
    ids = await seed(client)
    seen: list[str] = []
    url: str | None = "/fhir/ImagingStudy?_count=1&_total=accurate"
    pages = 0
    while url:
        r = await client.get(url, headers=A)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["total"] == 3
        seen += sorted(ids_of(body))
        pages += 1
        url = next((lk["url"] for lk in body["link"] if lk["relation"] == "next"), None)
    assert sorted(seen) == sorted([ids["sa0"], ids["sa1"], ids["sa2"]])
    assert pages == 3


async def test_a_viewer_sees_every_organisations_resources(client: AsyncTestClient[Any]) -> None:
    await seed(client)
    r = await client.get("/fhir/ImagingStudy", params={"_total": "accurate"}, headers=viewer())
    assert r.json()["total"] == 5


async def test_out_of_organisation_reads_are_not_found_and_changes_forbidden(
    client: AsyncTestClient[Any],
) -> None:
    ids = await seed(client)
    sb = ids["sb0"]
    assert (await client.get(f"/fhir/ImagingStudy/{sb}", headers=A)).status_code == 404
    assert (await client.get(f"/fhir/ImagingStudy/{sb}/_history/1", headers=A)).status_code == 404
    assert (await client.get(f"/fhir/ImagingStudy/{sb}/_history", headers=A)).status_code == 404
    assert (await client.get(f"/fhir/ImagingStudy/{sb}", headers=B)).status_code == 200
    changed = {**study(ids["pb"], "99"), "id": sb}
    r = await client.put(f"/fhir/ImagingStudy/{sb}", json=changed, headers=A)
    assert r.status_code == 403
    assert r.json()["issue"][0]["code"] == "forbidden"
    assert (await client.delete(f"/fhir/ImagingStudy/{sb}", headers=A)).status_code == 403
    patch = [{"op": "replace", "path": "/status", "value": "cancelled"}]
    r = await client.patch(
        f"/fhir/ImagingStudy/{sb}",
        json=patch,
        headers={**A, "Content-Type": "application/json-patch+json"},
    )
    assert r.status_code == 403
    # its own organisation may
    r = await client.put(f"/fhir/ImagingStudy/{sb}", json=changed, headers=B)
    assert r.status_code == 200
    assert (await client.delete(f"/fhir/ImagingStudy/{sb}", headers=B)).status_code == 204


async def test_a_transaction_touching_another_organisations_resource_is_refused_whole(
    client: AsyncTestClient[Any],
) -> None:
    ids = await seed(client)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": patient("New", "n1"), "request": {"method": "POST", "url": "Patient"}},
            {"request": {"method": "DELETE", "url": f"ImagingStudy/{ids['sb1']}"}},
        ],
    }
    r = await client.post("/fhir", json=bundle, headers=A)
    assert r.status_code == 403
    r = await client.get("/fhir/Patient", params={"family": "New"}, headers=viewer())
    assert not r.json().get("entry")


async def test_includes_leave_out_resources_outside_the_organisation(
    client: AsyncTestClient[Any],
) -> None:
    ids = await seed(client)
    cross = await create(client, A, study(ids["pb"], "77"))  # A's study of B's patient
    await indexed(client)
    r = await client.get(
        "/fhir/ImagingStudy", params={"_id": cross, "_include": "ImagingStudy:subject"}, headers=A
    )
    assert ids_of(r.json()) == {cross}
    assert ids_of(r.json(), "include") == set()
    r = await client.get(
        "/fhir/ImagingStudy",
        params={"_id": cross, "_include": "ImagingStudy:subject"},
        headers=viewer(),
    )
    assert ids_of(r.json(), "include") == {ids["pb"]}


async def test_chains_search_only_within_the_organisation(client: AsyncTestClient[Any]) -> None:
    ids = await seed(client)
    await create(client, A, study(ids["pb"], "78"))  # A's study of B's patient
    await indexed(client)
    r = await client.get("/fhir/ImagingStudy", params={"subject:Patient.family": "Beta"}, headers=A)
    assert ids_of(r.json()) == set()  # A cannot see B's Patient, so the chain finds nothing
    r = await client.get(
        "/fhir/ImagingStudy", params={"subject:Patient.family": "Beta"}, headers=viewer()
    )
    assert len(ids_of(r.json())) == 3


async def test_a_chain_over_several_types_runs_over_those_the_caller_may_search(
    client: AsyncTestClient[Any],
) -> None:
    ids = await seed(client)
    query = {"subject.identifier": "urn:mrn|a1"}  # subject: Patient, Device, Group
    studies = {ids["sa0"], ids["sa1"], ids["sa2"]}
    r = await client.get("/fhir/ImagingStudy", params=query, headers=viewer())
    assert ids_of(r.json()) == studies
    # Device and Group are out of reach: what the caller cannot search cannot match
    scoped = viewer("user/ImagingStudy.rs user/Patient.rs")
    r = await client.get("/fhir/ImagingStudy", params=query, headers=scoped)
    assert r.status_code == 200, r.text
    assert ids_of(r.json()) == studies
    r = await client.get("/fhir/ImagingStudy", params=query, headers=patient_app(ids["pa"]))
    assert ids_of(r.json()) == studies
    r = await client.get("/fhir/ImagingStudy", params=query, headers=A)
    assert ids_of(r.json()) == studies
    # no target type in reach: refused as a `:Type` chain to it is
    r = await client.get("/fhir/ImagingStudy", params=query, headers=viewer("user/ImagingStudy.rs"))
    assert r.status_code == 403
    assert r.json()["issue"][0]["code"] == "forbidden"


async def test_patient_scope_reaches_only_that_patients_compartment(
    client: AsyncTestClient[Any],
) -> None:
    ids = await seed(client)
    me = patient_app(ids["pa"])
    r = await client.get("/fhir/ImagingStudy", params={"_total": "accurate"}, headers=me)
    assert r.json()["total"] == 3
    assert ids_of(r.json()) == {ids["sa0"], ids["sa1"], ids["sa2"]}
    r = await client.get("/fhir/Patient", params={"_total": "accurate"}, headers=me)
    assert ids_of(r.json()) == {ids["pa"]}
    assert (await client.get(f"/fhir/Patient/{ids['pa']}", headers=me)).status_code == 200
    assert (await client.get(f"/fhir/Patient/{ids['pb']}", headers=me)).status_code == 404
    assert (await client.get(f"/fhir/ImagingStudy/{ids['sb0']}", headers=me)).status_code == 404
    r = await client.get(
        "/fhir/ImagingStudy", params={"subject": f"Patient/{ids['pb']}"}, headers=me
    )
    assert ids_of(r.json()) == set()
    r = await client.post("/fhir/Patient", json=patient("X", "x"), headers=me)
    assert r.status_code == 403
    r = await client.get("/fhir/Organization", headers=me)  # outside any compartment
    assert r.status_code == 403


async def test_system_search_needs_type_unless_open_and_history_needs_user_scope(
    client: AsyncTestClient[Any],
) -> None:
    await seed(client)
    assert (await client.get("/fhir", headers=A)).status_code == 403
    r = await client.get(
        "/fhir", params={"_type": "ImagingStudy,Patient", "_total": "accurate"}, headers=A
    )
    assert r.status_code == 200 and r.json()["total"] == 4
    assert (await client.get("/fhir/_history", headers=A)).status_code == 403
    assert (await client.get("/fhir/ImagingStudy/_history", headers=A)).status_code == 403
    assert (await client.get("/fhir/ImagingStudy/_history", headers=viewer())).status_code == 200


@pytest.mark.parametrize(
    ("scope", "path", "status"),
    [
        ("user/ImagingStudy.rs", "/fhir/ImagingStudy", 200),
        ("user/ImagingStudy.rs", "/fhir/Patient", 403),
        ("user/ImagingStudy.r", "/fhir/ImagingStudy", 403),  # read without search
        ("user/*.read", "/fhir/Patient", 200),  # SMART v1
        ("user/*.s", "/fhir/Patient", 200),
        ("openid fhirUser", "/fhir/Patient", 403),
        ("user/*.rs", "/fhir/AuditEvent", 403),  # wildcards do not reach the audit trail
        ("user/AuditEvent.rs", "/fhir/AuditEvent", 200),
        ("system/*.rs", "/fhir/Patient", 403),  # a system scope without an organisation
    ],
)
async def test_scopes_allow_exactly_what_they_name(
    client: AsyncTestClient[Any], scope: str, path: str, status: int
) -> None:
    r = await client.get(path, headers=bearer(token(scope)))
    assert r.status_code == status, r.text
    if status == 403:
        assert r.json()["resourceType"] == "OperationOutcome"
        assert r.json()["issue"][0]["code"] == "forbidden"


async def test_viewers_cannot_write(client: AsyncTestClient[Any]) -> None:
    r = await client.post("/fhir/Patient", json=patient("V", "v"), headers=viewer())
    assert r.status_code == 403
    r = await client.post("/fhir/Patient", json=patient("V", "v"), headers=viewer("user/*.cruds"))
    assert r.status_code == 403  # writes record an organisation; this token has none


async def test_per_type_write_scope(client: AsyncTestClient[Any]) -> None:
    only_studies = bearer(token("system/ImagingStudy.cu", org=ORG_A))
    assert (
        await client.post("/fhir/Patient", json=patient("T", "t"), headers=only_studies)
    ).status_code == 403
    pid = await create(client, A, patient("T", "t"))
    assert (
        await client.post("/fhir/ImagingStudy", json=study(pid, "5"), headers=only_studies)
    ).status_code == 201


async def test_async_submissions_are_visible_to_their_submitter_only(
    client: AsyncTestClient[Any],
) -> None:
    headers = {**A, "Prefer": "respond-async"}
    r = await client.post("/fhir/Patient", json=patient("Async", "as1"), headers=headers)
    assert r.status_code == 202
    status_url = r.headers["content-location"].replace("http://micdr.local", "")
    assert (await client.get(status_url, headers=B)).status_code == 404
    assert (await client.delete(status_url, headers=B)).status_code == 404
    assert (await client.get(status_url, headers=viewer())).status_code == 404
    import asyncio

    for _ in range(200):
        r = await client.get(status_url, headers=A)
        if r.status_code == 200:
            break
        await asyncio.sleep(0.05)
    assert r.status_code == 200 and r.headers["x-original-status"] == "201"
    created = r.json()
    assert {"system": ORG_TAG_SYSTEM, "code": ORG_A} in created["meta"]["tag"]


async def test_an_async_write_runs_with_the_submitters_scopes(
    client: AsyncTestClient[Any],
) -> None:
    ids = await seed(client)
    headers = {**A, "Prefer": "respond-async"}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"request": {"method": "DELETE", "url": f"ImagingStudy/{ids['sb0']}"}}],
    }
    r = await client.post("/fhir", json=bundle, headers=headers)
    assert r.status_code == 202
    status_url = r.headers["content-location"].replace("http://micdr.local", "")
    import asyncio

    for _ in range(200):
        r = await client.get(status_url, headers=A)
        if r.status_code == 200:
            break
        await asyncio.sleep(0.05)
    assert r.headers["x-original-status"] == "403"
    assert (await client.get(f"/fhir/ImagingStudy/{ids['sb0']}", headers=B)).status_code == 200


async def test_a_client_cannot_smuggle_a_principal_header(client: AsyncTestClient[Any]) -> None:
    forged = '{"sub": "x", "open": true}'
    r = await client.get(
        "/fhir/Patient", headers={**viewer("user/Patient.r"), "X-Micdr-Principal": forged}
    )
    assert r.status_code == 403
