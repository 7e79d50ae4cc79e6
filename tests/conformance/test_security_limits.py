"""Hostile input (docs/security.md, "Limits"): every limit answers an OperationOutcome with a
4xx, never a 5xx or a hang, on both stores; search values reach the engines as data only."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.conformance._auth import contributor, secured_client
from tests.conformance._clients import DEPLOYMENTS, client_with
from tests.conformance.conftest import indexed

LIMITS = {
    "MICDR_IG_MODE": "0",
    "MICDR_MAX_QUERY_PARAMS": "10",
    "MICDR_MAX_PARAM_LENGTH": "200",
    "MICDR_MAX_CHAIN_DEPTH": "2",
}


@pytest.fixture(params=DEPLOYMENTS)
async def client(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    async with client_with(LIMITS, request.param, tmp_path) as c:
        yield c


def outcome(r: Any, status: int, code: str | None = None) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    if code:
        assert body["issue"][0]["code"] == code


async def test_too_many_query_parameters(client: AsyncTestClient[Any]) -> None:
    query = "&".join(f"name=n{i}" for i in range(11))
    outcome(await client.get(f"/fhir/Patient?{query}"), 400, "too-costly")


async def test_an_overlong_query_parameter(client: AsyncTestClient[Any]) -> None:
    outcome(await client.get("/fhir/Patient", params={"name": "x" * 300}), 400, "too-costly")


async def test_chains_deeper_than_the_limit(client: AsyncTestClient[Any]) -> None:
    ok = await client.get("/fhir/Observation", params={"subject:Patient.organization.name": "x"})
    assert ok.status_code == 200
    deep = "subject:Patient.organization.partof.name"
    outcome(await client.get("/fhir/Observation", params={deep: "x"}), 400, "too-costly")
    has = "_has:Observation:subject:_has:Provenance:target:_has:AuditEvent:entity:type"
    outcome(await client.get("/fhir/Patient", params={has: "x"}), 400, "too-costly")


async def test_json_nested_beyond_any_resource_is_refused(client: AsyncTestClient[Any]) -> None:
    deep: Any = "x"
    for _ in range(200):
        deep = {"extension": [{"url": "u", "valueString": "v", "extension": [deep]}]}
    body = {"resourceType": "Patient", "extension": [deep]}
    r = await client.post(
        "/fhir/Patient", content=json.dumps(body), headers={"Content-Type": "application/fhir+json"}
    )
    assert 400 <= r.status_code < 500
    very = "[" * 100_000 + "]" * 100_000
    r = await client.post(
        "/fhir/Patient", content=very, headers={"Content-Type": "application/fhir+json"}
    )
    outcome(r, 400)


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE Patient [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Patient xmlns="http://hl7.org/fhir"><id value="&xxe;"/></Patient>"""
LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Patient xmlns="http://hl7.org/fhir"><gender value="&lol3;"/></Patient>"""


@pytest.mark.parametrize("body", [XXE, LAUGHS], ids=["external entity", "entity expansion"])
async def test_xml_with_entities_is_refused(client: AsyncTestClient[Any], body: bytes) -> None:
    r = await client.post(
        "/fhir/Patient", content=body, headers={"Content-Type": "application/fhir+xml"}
    )
    assert r.status_code == 400, r.text
    assert b"root:" not in r.content


HOSTILE = [
    "' OR '1'='1",
    "x'); DROP TABLE resources; --",
    "%",
    "_",
    "*",
    "\\",
    '"}}, "query": {"match_all": {}}, "x": {"',
    "a|b|c",
    "\x00",
    "\U0001d54f unicode \u2211",
]


@pytest.mark.parametrize("value", HOSTILE)
async def test_hostile_search_values_are_data(client: AsyncTestClient[Any], value: str) -> None:
    r = await client.post(
        "/fhir/Patient", json={"resourceType": "Patient", "name": [{"family": "Safe"}]}
    )
    assert r.status_code == 201
    await indexed(client)
    for param in (
        "name",
        "family:exact",
        "name:contains",
        "identifier",
        "_id",
        "organization",
        "birthdate",
        "_tag",
        "_profile",
    ):
        r = await client.get("/fhir/Patient", params={param: value})
        assert r.status_code in (200, 400), (param, r.text)
        if r.status_code == 200:
            assert not r.json().get("entry"), (param, value)
    r = await client.get("/fhir/Patient", params={"_total": "accurate"})
    assert r.json()["total"] == 1


async def test_engine_calls_past_the_deadline_answer_503(tmp_path: Path) -> None:
    env = {"MICDR_ENGINE_TIMEOUT": "0.000001"}
    async with client_with(env, "embedded", tmp_path) as client:
        r = await client.get("/fhir/Patient/abc")
        outcome(r, 503, "timeout")
        assert r.headers["retry-after"]


async def test_a_client_over_its_rate_is_told_when_to_retry(tmp_path: Path) -> None:
    env = {"MICDR_RATE_LIMIT": "1", "MICDR_RATE_BURST": "3"}
    async with secured_client("embedded", tmp_path, env) as client:
        a = contributor("org-a")
        codes = [(await client.get("/fhir/Patient", headers=a)).status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[-1] == 429
        r = await client.get("/fhir/Patient", headers=a)
        outcome(r, 429, "throttled")
        assert int(r.headers["retry-after"]) >= 1
        # another client has its own bucket
        assert (await client.get("/fhir/Patient", headers=contributor("org-b"))).status_code == 200
