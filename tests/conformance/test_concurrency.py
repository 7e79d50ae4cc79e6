"""Concurrency (http.html#concurrency, #ccreate): racing writers are serialised by the store, not
by luck. 20 `If-Match` updates of one version: one wins, the rest are 412. 20 conditional
creates of one identifier: one resource exists afterwards, every request answered 201 or 200."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from litestar.testing import AsyncTestClient

from tests.conformance.conftest import indexed

MRN = "http://hospital.example/mrn"
RACERS = 20


async def patients_with(client: AsyncTestClient[Any], mrn: str) -> int:
    """How many Patients the server finds with the MRN, once the index has caught up."""
    await indexed(client)
    found = await client.get(f"/fhir/Patient?identifier={MRN}|{mrn}&_summary=count")
    assert found.status_code == 200, found.text
    return int(found.json()["total"])


async def test_concurrent_if_match_updates_let_exactly_one_win(
    client: AsyncTestClient[Any],
) -> None:
    id_ = (await client.post("/fhir/Patient", json={"resourceType": "Patient"})).json()["id"]

    async def update(n: int) -> Any:
        body = {"resourceType": "Patient", "id": id_, "name": [{"family": f"F{n}"}]}
        return await client.put(f"/fhir/Patient/{id_}", json=body, headers={"If-Match": 'W/"1"'})

    responses = await asyncio.gather(*(update(n) for n in range(RACERS)))
    assert Counter(r.status_code for r in responses) == {200: 1, 412: RACERS - 1}
    winner = next(r for r in responses if r.status_code == 200)
    assert winner.headers["etag"] == 'W/"2"'
    assert {r.json()["issue"][0]["code"] for r in responses if r.status_code == 412} == {"conflict"}
    current = (await client.get(f"/fhir/Patient/{id_}")).json()
    assert current["meta"]["versionId"] == "2"
    assert current["name"] == winner.json()["name"]


async def test_concurrent_updates_chained_by_version_each_win_once(
    client: AsyncTestClient[Any],
) -> None:
    id_ = (await client.post("/fhir/Patient", json={"resourceType": "Patient"})).json()["id"]

    async def update(n: int, version: int) -> int:
        body = {"resourceType": "Patient", "id": id_, "name": [{"family": f"F{n}-{version}"}]}
        r = await client.put(
            f"/fhir/Patient/{id_}", json=body, headers={"If-Match": f'W/"{version}"'}
        )
        return int(r.status_code)

    for version in (1, 2, 3):
        statuses = await asyncio.gather(*(update(n, version) for n in range(RACERS)))
        assert Counter(statuses) == {200: 1, 412: RACERS - 1}
    history = (await client.get(f"/fhir/Patient/{id_}/_history")).json()
    assert [e["response"]["etag"] for e in history["entry"]] == ['W/"4"', 'W/"3"', 'W/"2"', 'W/"1"']


async def test_concurrent_conditional_creates_make_one_resource(
    client: AsyncTestClient[Any],
) -> None:
    body = {"resourceType": "Patient", "identifier": [{"system": MRN, "value": "race"}]}

    async def create() -> Any:
        return await client.post(
            "/fhir/Patient", json=body, headers={"If-None-Exist": f"identifier={MRN}|race"}
        )

    responses = await asyncio.gather(*(create() for _ in range(RACERS)))
    assert Counter(r.status_code for r in responses) == {201: 1, 200: RACERS - 1}
    assert len({r.json()["id"] for r in responses}) == 1
    assert await patients_with(client, "race") == 1
    history = (await client.get("/fhir/Patient/_history")).json()
    assert len(history["entry"]) == 1


async def test_concurrent_conditional_updates_make_one_resource(
    client: AsyncTestClient[Any],
) -> None:
    body = {"resourceType": "Patient", "identifier": [{"system": MRN, "value": "put-race"}]}
    responses = await asyncio.gather(
        *(client.put(f"/fhir/Patient?identifier={MRN}|put-race", json=body) for _ in range(RACERS))
    )
    assert {r.status_code for r in responses} <= {200, 201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert await patients_with(client, "put-race") == 1
