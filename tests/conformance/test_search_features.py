"""search (R4 search.html) through the HTTP API, on both stores with the embedded index: chains
(§3.1.1.6.4, multi-level and `:[type]`), `_has` (§3.1.1.6.5), `_include`/`_revinclude` with
`:iterate` and `*` (§3.1.1.7.4), `_sort` (§3.1.1.7.1), `_count` (§3.1.1.7.2), `_total`
(§3.1.1.7.5), `_summary` and `_elements` (§3.1.1.7.6-7), the parameters for all resources
(§3.1.1.3: `_id`, `_lastUpdated`, `_tag`, `_profile`, `_security`, `_source`), system search
with `_type`, paging while resources are added (http.html#paging), escaping (§3.1.1.5
"Escaping Search Parameters") and `Prefer: handling` (§3.1.1.3 "Handling Errors").

A plain FHIR server (IG mode off), seeded with one transaction of PUTs:

| id | resource |
|---|---|
| org1 | Organization "Acme Imaging" |
| dr1 | Practitioner Welby |
| p1 | Patient Zoë Ångström, female, 1980, org1, dr1, tag/profile/security/source |
| p2 | Patient Liam O'Brien, Jr., male, 1975, org1 |
| p3 | Patient Dollar$Sign, other, 2001 |
| e1, e2 | Encounter of p1 / p2, service provider org1 |
| o1 | Observation 1234-5 of p1 in e1, 2024-01-02, 5.4 mg |
| o2 | Observation 1234-5 of p2 in e2, 2024-01-03, 7 mg |
| o3 | Observation 9999-9 of p1 in e1, 2024-01-01, has-member o1 |
| o4 | Observation 9999-9 of p3, 2023-12-31 |
| r1 | DiagnosticReport final of p1, results o1 and o3 |
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from litestar.testing import AsyncTestClient

from tests.conformance._clients import DEPLOYMENTS, PLAIN_FHIR, client_with
from tests.conformance.conftest import indexed

Client = AsyncTestClient[Any]
LOINC = "http://loinc.org"
MRN = "http://example.org/mrn"
TAGS = "http://example.org/tags"
PROFILE = "http://example.org/StructureDefinition/vip-patient"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
SOURCE = "http://example.org/source#feed-1"
SUBSETTED = "SUBSETTED"


def observation(
    id_: str, code: str, patient: str, day: str, value: float | None, **extra: Any
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": id_,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}], "text": f"test {code}"},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": day,
        **extra,
    }
    if value is not None:
        resource["valueQuantity"] = {
            "value": value,
            "unit": "mg",
            "system": "http://unitsofmeasure.org",
            "code": "mg",
        }
    return resource


RESOURCES: list[dict[str, Any]] = [
    {"resourceType": "Organization", "id": "org1", "name": "Acme Imaging"},
    {"resourceType": "Practitioner", "id": "dr1", "name": [{"family": "Welby"}]},
    {
        "resourceType": "Patient",
        "id": "p1",
        "meta": {
            "tag": [{"system": TAGS, "code": "vip"}],
            "profile": [PROFILE],
            "security": [{"system": CONFIDENTIALITY, "code": "R"}],
            "source": SOURCE,
        },
        "text": {
            "status": "generated",
            "div": '<div xmlns="http://www.w3.org/1999/xhtml">Zoë</div>',
        },
        "identifier": [{"system": MRN, "value": "a|b,c$d"}],
        "name": [{"family": "Ångström", "given": ["Zoë"]}],
        "gender": "female",
        "birthDate": "1980-01-01",
        "managingOrganization": {"reference": "Organization/org1"},
        "generalPractitioner": [{"reference": "Practitioner/dr1"}],
    },
    {
        "resourceType": "Patient",
        "id": "p2",
        "name": [{"family": "O'Brien, Jr.", "given": ["Liam"]}],
        "gender": "male",
        "birthDate": "1975-05-05",
        "managingOrganization": {"reference": "Organization/org1"},
    },
    {
        "resourceType": "Patient",
        "id": "p3",
        "name": [{"family": "Dollar$Sign"}],
        "gender": "other",
        "birthDate": "2001-01-01",
    },
    {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "class": {"code": "AMB"},
        "subject": {"reference": "Patient/p1"},
        "serviceProvider": {"reference": "Organization/org1"},
    },
    {
        "resourceType": "Encounter",
        "id": "e2",
        "status": "finished",
        "class": {"code": "AMB"},
        "subject": {"reference": "Patient/p2"},
        "serviceProvider": {"reference": "Organization/org1"},
    },
    observation(
        "o1", "1234-5", "p1", "2024-01-02T10:00:00Z", 5.4, encounter={"reference": "Encounter/e1"}
    ),
    observation(
        "o2", "1234-5", "p2", "2024-01-03T10:00:00Z", 7, encounter={"reference": "Encounter/e2"}
    ),
    observation(
        "o3",
        "9999-9",
        "p1",
        "2024-01-01T10:00:00Z",
        None,
        encounter={"reference": "Encounter/e1"},
        hasMember=[{"reference": "Observation/o1"}],
    ),
    observation("o4", "9999-9", "p3", "2023-12-31T10:00:00Z", None),
    {
        "resourceType": "DiagnosticReport",
        "id": "r1",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "24323-8"}]},
        "subject": {"reference": "Patient/p1"},
        "result": [{"reference": "Observation/o1"}, {"reference": "Observation/o3"}],
    },
]


def transaction(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": r,
                "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
            }
            for r in resources
        ],
    }


async def seed(client: Client, resources: list[dict[str, Any]]) -> None:
    response = await client.post("/fhir", json=transaction(resources))
    assert response.status_code == 200, response.text
    await indexed(client)


@pytest.fixture(params=DEPLOYMENTS)
async def server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Client]:
    async with client_with(PLAIN_FHIR, request.param, tmp_path) as client:
        await seed(client, RESOURCES)
        yield client


async def search(client: Client, query: str, status: int = 200, **headers: str) -> dict[str, Any]:
    response = await client.get(f"/fhir/{query}", headers=headers)
    assert response.status_code == status, response.text
    return response.json()


def ids(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


def refs(bundle: dict[str, Any], mode: str = "include") -> list[str]:
    return sorted(
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if e["search"]["mode"] == mode
    )


def link(bundle: dict[str, Any], relation: str) -> str | None:
    return next((lk["url"] for lk in bundle.get("link", []) if lk["relation"] == relation), None)


def self_params(bundle: dict[str, Any]) -> list[tuple[str, str]]:
    url = link(bundle, "self")
    assert url is not None
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


# -- chains (§3.1.1.6.4) and _has (§3.1.1.6.5) -------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Observation?subject:Patient.name=zoe", ["o1", "o3"]),  # accents and case ignored
        ("Observation?subject:Patient.family=ANGSTROM", ["o1", "o3"]),
        ("Observation?patient.gender=male", ["o2"]),
        ("Observation?encounter.subject.gender=female", ["o1", "o3"]),  # Patient: has gender
        ("Observation?encounter.subject:Patient.birthdate=lt1979", ["o2"]),
        ("Observation?encounter.service-provider.name=acme", ["o1", "o2", "o3"]),
        ("Observation?subject:Patient.organization.name=acme", ["o1", "o2", "o3"]),
        ("Observation?subject:Patient.general-practitioner.family=welby", ["o1", "o3"]),
        ("DiagnosticReport?result.encounter.subject:Patient.gender=female", ["r1"]),
        ("Observation?subject:Patient.name=nobody", []),
        ("Observation?subject:Patient._id=p1", ["o1", "o3"]),
        ("Observation?subject:Patient._has:DiagnosticReport:subject:status=final", ["o1", "o3"]),
        # a chain ORs its comma-separated values; repeated chains AND
        ("Observation?subject:Patient.gender=male,other", ["o2", "o4"]),
        ("Observation?subject:Patient.gender=female&encounter.subject.gender=female", ["o1", "o3"]),
    ],
)
async def test_chains_resolve_through_every_level(
    server: Client, query: str, expected: list[str]
) -> None:
    assert sorted(ids(await search(server, query))) == expected


async def test_a_chain_through_several_target_types_runs_over_each_that_defines_it(
    server: Client,
) -> None:
    # subject: Group, Device, Patient, Location; `name` is on Patient and Location
    assert sorted(ids(await search(server, "Observation?subject.name=zoe"))) == ["o1", "o3"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Patient?_has:Observation:patient:code=9999-9", ["p1", "p3"]),
        (f"Patient?_has:Observation:subject:code={LOINC}|1234-5", ["p1", "p2"]),
        ("Patient?_has:Observation:patient:code=1234-5&gender=male", ["p2"]),
        ("Patient?_has:Observation:patient:_has:DiagnosticReport:result:status=final", ["p1"]),
        ("Encounter?_has:Observation:encounter:value-quantity=gt6", ["e2"]),
        ("Observation?_has:DiagnosticReport:result:status=final", ["o1", "o3"]),
        ("Patient?_has:Observation:patient:code=0000-0", []),
        ("Patient?_has:Observation:patient:_id=o1", ["p1"]),
        # repeated _has: each must hold (by different Observations)
        (
            "Patient?_has:Observation:patient:code=9999-9&_has:Observation:patient:code=1234-5",
            ["p1"],
        ),
    ],
)
async def test_has_selects_by_the_resources_that_refer(
    server: Client, query: str, expected: list[str]
) -> None:
    assert sorted(ids(await search(server, query))) == expected


# -- _include / _revinclude (§3.1.1.7.4) ------------------------------------------------------


async def test_include_adds_referenced_resources_in_include_mode(server: Client) -> None:
    body = await search(server, "Observation?code=1234-5&_include=Observation:encounter")
    assert sorted(ids(body)) == ["o1", "o2"]
    assert refs(body) == ["Encounter/e1", "Encounter/e2"]


async def test_include_iterate_follows_included_resources(server: Client) -> None:
    body = await search(
        server,
        "Observation?code=1234-5&_include=Observation:encounter"
        "&_include:iterate=Encounter:service-provider",
    )
    assert refs(body) == ["Encounter/e1", "Encounter/e2", "Organization/org1"]


async def test_include_without_iterate_does_not_follow_included_resources(server: Client) -> None:
    body = await search(
        server,
        "Observation?code=1234-5&_include=Observation:encounter"
        "&_include=Encounter:service-provider",
    )
    assert refs(body) == ["Encounter/e1", "Encounter/e2"]
    assert ("_include", "Encounter:service-provider") not in self_params(body)


async def test_include_star_follows_every_reference_once(server: Client) -> None:
    body = await search(server, "Observation?_id=o1&_include=*")
    assert ids(body) == ["o1"]
    # subject and patient both point at p1, which appears once
    assert refs(body) == ["Encounter/e1", "Patient/p1"]


async def test_include_iterate_star_follows_every_reference_of_what_it_includes(
    server: Client,
) -> None:
    body = await search(server, "Observation?_id=o3&_include:iterate=*")
    assert refs(body) == ["Encounter/e1", "Observation/o1", "Patient/p1"]


async def test_includes_are_those_of_the_page(server: Client) -> None:
    body = await search(server, "Observation?_sort=date&_count=2&_include=Observation:subject")
    assert ids(body) == ["o4", "o3"]
    assert refs(body) == ["Patient/p1", "Patient/p3"]
    next_url = link(body, "next")
    assert next_url is not None
    second = (await server.get(next_url)).json()
    assert ids(second) == ["o1", "o2"]
    assert refs(second) == ["Patient/p1", "Patient/p2"]


async def test_include_with_a_target_type(server: Client) -> None:
    body = await search(server, "Patient?_id=p1&_include=Patient:general-practitioner:Practitioner")
    assert refs(body) == ["Practitioner/dr1"]
    body = await search(server, "Patient?_id=p1&_include=Patient:general-practitioner:Organization")
    assert refs(body) == []


async def test_revinclude_adds_the_resources_that_refer(server: Client) -> None:
    body = await search(server, "Patient?_id=p1&_revinclude=Observation:patient")
    assert ids(body) == ["p1"]
    assert refs(body) == ["Observation/o1", "Observation/o3"]


async def test_revinclude_iterate_follows_included_resources(server: Client) -> None:
    body = await search(
        server,
        "Patient?_id=p1&_revinclude=Observation:patient&_revinclude:iterate=DiagnosticReport:result",
    )
    assert refs(body) == ["DiagnosticReport/r1", "Observation/o1", "Observation/o3"]


async def test_a_match_is_not_repeated_as_an_include(server: Client) -> None:
    body = await search(server, "Observation?code=1234-5,9999-9&_include=Observation:has-member")
    assert sorted(ids(body)) == ["o1", "o2", "o3", "o4"]  # o3 has-member o1, itself a match
    assert refs(body) == []


async def test_a_resource_included_by_several_matches_appears_once(server: Client) -> None:
    body = await search(server, "Observation?subject=Patient/p1&_include=Observation:subject")
    assert sorted(ids(body)) == ["o1", "o3"]
    assert refs(body) == ["Patient/p1"]
    urls = [e["fullUrl"] for e in body["entry"]]
    assert len(urls) == len(set(urls))


# -- _sort, _count, _total (§3.1.1.7) --------------------------------------------------------


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("date", ["o4", "o3", "o1", "o2"]),
        ("-date", ["o2", "o1", "o3", "o4"]),
        ("code,-date", ["o2", "o1", "o3", "o4"]),
        ("-code,date", ["o4", "o3", "o1", "o2"]),
        ("value-quantity", ["o1", "o2", "o3", "o4"]),  # missing values last, then by id
        ("-value-quantity", ["o2", "o1", "o3", "o4"]),
        ("-_id", ["o4", "o3", "o2", "o1"]),
    ],
)
async def test_sort_by_several_keys_ascending_and_descending(
    server: Client, sort: str, expected: list[str]
) -> None:
    assert ids(await search(server, f"Observation?_sort={sort}")) == expected


async def test_count_defaults_to_twenty_and_pages_the_rest(server: Client) -> None:
    bulk = [
        {"resourceType": "Patient", "id": f"bulk{n:02d}", "name": [{"family": "Bulk"}]}
        for n in range(23)
    ]
    await seed(server, bulk)
    body = await search(server, "Patient?family=bulk")
    assert len(ids(body)) == 20
    next_url = link(body, "next")
    assert next_url is not None
    second = (await server.get(next_url)).json()
    assert len(ids(second)) == 3
    assert link(second, "next") is None
    assert sorted(ids(body) + ids(second)) == [b["id"] for b in bulk]


async def test_count_is_capped_by_the_configured_maximum(tmp_path: Path) -> None:
    env = {**PLAIN_FHIR, "MICDR_DEFAULT_PAGE_SIZE": "2", "MICDR_MAX_PAGE_SIZE": "3"}
    async with client_with(env, "embedded", tmp_path) as client:
        await seed(client, RESOURCES)
        assert len(ids(await search(client, "Observation"))) == 2
        body = await search(client, "Observation?_count=100")
        assert len(ids(body)) == 3
        assert ("_count", "3") in self_params(body)


async def test_total_accurate_counts_every_match_beyond_the_page(server: Client) -> None:
    body = await search(server, "Observation?_total=accurate&_count=1")
    assert body["total"] == 4
    assert len(ids(body)) == 1
    assert "total" not in await search(server, "Observation?_count=1")


@pytest.mark.parametrize("query", ["Observation?_summary=count", "Observation?_count=0"])
async def test_count_only_answers_the_total(server: Client, query: str) -> None:
    body = await search(server, query)
    assert (body["total"], body.get("entry", [])) == (4, [])


# -- _summary, _elements (§3.1.1.7.6-7) ---------------------------------------------------------


def subsetted(resource: dict[str, Any]) -> bool:
    return any(tag.get("code") == SUBSETTED for tag in resource.get("meta", {}).get("tag", []))


async def test_summary_true_keeps_the_summary_elements(server: Client) -> None:
    resource = (await search(server, "Patient?_id=p1&_summary=true"))["entry"][0]["resource"]
    assert {"name", "gender", "birthDate", "identifier"} <= set(resource)
    assert "text" not in resource
    assert subsetted(resource)


async def test_summary_text_keeps_text_and_mandatory_elements(server: Client) -> None:
    resource = (await search(server, "Patient?_id=p1&_summary=text"))["entry"][0]["resource"]
    assert set(resource) == {"resourceType", "id", "meta", "text"}
    assert subsetted(resource)
    observation = (await search(server, "Observation?_id=o1&_summary=text"))["entry"][0]
    # Observation.status and Observation.code are mandatory (1..1): kept
    assert {"status", "code"} <= set(observation["resource"])
    assert "valueQuantity" not in observation["resource"]


async def test_summary_data_drops_only_the_text(server: Client) -> None:
    resource = (await search(server, "Patient?_id=p1&_summary=data"))["entry"][0]["resource"]
    assert "text" not in resource
    assert {"name", "generalPractitioner", "managingOrganization"} <= set(resource)
    assert subsetted(resource)


async def test_elements_keeps_the_listed_elements(server: Client) -> None:
    resource = (await search(server, "Patient?_id=p1&_elements=name,gender"))["entry"][0][
        "resource"
    ]
    assert set(resource) == {"resourceType", "id", "meta", "name", "gender"}
    assert subsetted(resource)


async def test_summary_false_returns_the_whole_resource(server: Client) -> None:
    resource = (await search(server, "Patient?_id=p1&_summary=false"))["entry"][0]["resource"]
    assert "text" in resource and not subsetted(resource)


# -- parameters for all resources (§3.1.1.3) ---------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Patient?_id=p1,p3", ["p1", "p3"]),
        (f"Patient?_tag={TAGS}|vip", ["p1"]),
        ("Patient?_tag:not=vip", ["p2", "p3"]),
        (f"Patient?_profile={PROFILE}", ["p1"]),
        ("Patient?_security=R", ["p1"]),
        (f"Patient?_security={CONFIDENTIALITY}|R", ["p1"]),
        (f"Patient?_source={quote(SOURCE)}", ["p1"]),
        ("Patient?_source:missing=false", ["p1"]),
    ],
)
async def test_parameters_for_all_resources(
    server: Client, query: str, expected: list[str]
) -> None:
    assert sorted(ids(await search(server, query))) == expected


async def test_last_updated_is_the_server_time_of_the_last_write(server: Client) -> None:
    body = await search(server, "Patient?_id=p2")
    updated = body["entry"][0]["resource"]["meta"]["lastUpdated"]
    assert sorted(ids(await search(server, f"Patient?_lastUpdated=ge{quote(updated)}"))) == [
        "p1",
        "p2",
        "p3",
    ]
    assert ids(await search(server, "Patient?_lastUpdated=lt2000")) == []
    await asyncio.sleep(0.01)
    update = {**RESOURCES[4], "gender": "unknown"}  # p3
    assert (await server.put("/fhir/Patient/p3", json=update)).status_code == 200
    await indexed(server)
    newest = (await search(server, "Patient?_id=p3"))["entry"][0]["resource"]["meta"]
    assert ids(await search(server, f"Patient?_lastUpdated=ge{quote(newest['lastUpdated'])}")) == [
        "p3"
    ]


# -- system search with _type ------------------------------------------------------------------


async def test_system_search_across_the_named_types(server: Client) -> None:
    body = (await server.get("/fhir?_type=Patient,Observation&_id=p1,o1,e1")).json()
    assert refs(body, "match") == ["Observation/o1", "Patient/p1"]
    body = (await server.get("/fhir?_type=Patient,Encounter&_lastUpdated=ge2000")).json()
    assert {e["resource"]["resourceType"] for e in body["entry"]} == {"Patient", "Encounter"}
    assert ("_type", "Patient,Encounter") in self_params(body)


async def test_system_search_without_type_searches_every_type(server: Client) -> None:
    body = (await server.get(f"/fhir?_tag={TAGS}|vip")).json()
    assert refs(body, "match") == ["Patient/p1"]


# -- paging while resources are added (http.html#paging) ---------------------------------------


async def test_paging_while_inserting_never_repeats_or_skips(server: Client) -> None:
    before = [
        {"resourceType": "Patient", "id": f"page{n:02d}", "name": [{"family": "Pager"}]}
        for n in range(0, 20, 2)
    ]
    await seed(server, before)
    body = await search(server, "Patient?family=pager&_count=3")
    seen = ids(body)
    added = 0
    while (next_url := link(body, "next")) is not None:
        # New resources land before and after the cursor between pages.
        added += 1
        await seed(
            server,
            [
                {"resourceType": "Patient", "id": f"page{n:02d}", "name": [{"family": "Pager"}]}
                for n in (2 * added - 1, 19 + added)
            ],
        )
        body = (await server.get(next_url)).json()
        seen += ids(body)
    assert len(seen) == len(set(seen)), seen
    assert {b["id"] for b in before} <= set(seen)


async def test_paging_links_keep_the_sort(server: Client) -> None:
    pages = []
    body = await search(server, "Observation?_sort=-date&_count=1")
    pages += ids(body)
    while (next_url := link(body, "next")) is not None:
        body = (await server.get(next_url)).json()
        pages += ids(body)
    assert pages == ["o2", "o1", "o3", "o4"]


# -- escaping (§3.1.1.5) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Patient?family=o'brien\\,", ["p2"]),  # `\,` is a comma in the value
        ("Patient?family=o'brien\\, jr", ["p2"]),
        ("Patient?family=o'brien,dollar", ["p2", "p3"]),  # `,` separates alternatives
        ("Patient?family:exact=Dollar\\$Sign", ["p3"]),
        ("Patient?family:contains=r$s", ["p3"]),  # `$` needs no escape outside composites
        (f"Patient?identifier={MRN}|a\\|b\\,c\\$d", ["p1"]),
        ("Patient?identifier=a\\|b\\,c\\$d", ["p1"]),
        ("Patient?identifier=a|b", []),  # unescaped: system `a`, code `b`
    ],
)
async def test_escaped_separators_are_part_of_the_value(
    server: Client, query: str, expected: list[str]
) -> None:
    assert sorted(ids(await search(server, quote(query, safe="?=&:|$,/")))) == expected


# -- Prefer: handling (§3.1.1.3) ---------------------------------------------------------------


async def test_unknown_parameters_are_ignored_and_left_out_of_the_self_link(
    server: Client,
) -> None:
    body = await search(server, "Patient?gender=male&unknown=1&family:sounds-like=x")
    assert ids(body) == ["p2"]
    assert self_params(body) == [("gender", "male")]
    body = await search(server, "Patient?gender=male&unknown=1", Prefer="handling=lenient")
    assert ids(body) == ["p2"]


@pytest.mark.parametrize(
    "query",
    [
        "Patient?gender=male&unknown=1",
        "Patient?family:sounds-like=x",
        "Patient?_sort=unknown",
        "Observation?code:below=1234",
    ],
)
async def test_strict_handling_refuses_what_it_does_not_support(server: Client, query: str) -> None:
    body = await search(server, query, status=400, Prefer="handling=strict")
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "not-supported"


async def test_a_malformed_value_is_refused_in_either_mode(server: Client) -> None:
    await search(server, "Observation?date=notadate", status=400)
    await search(server, "Observation?date=notadate", status=400, Prefer="handling=strict")
