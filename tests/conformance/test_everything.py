"""`Patient/[id]/$everything` (R4 patient-operation-everything.html) on every deployment: the
patient's compartment (R4 CompartmentDefinition/patient) as a searchset Bundle, the Patient
first, paged by `_count`, narrowed by `_type` and `_since`. See docs/api/export.md."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar.testing import AsyncTestClient

from tests.conformance import _clients
from tests.conformance.conftest import indexed
from tests.conformance.test_export import observation, patient, put, seed

Client = AsyncTestClient[Any]
plain_client = _clients.plain_client  # a fixture: IG mode off


def refs(bundle: dict[str, Any]) -> list[str]:
    return [
        f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle.get("entry", [])
    ]


async def test_everything_is_the_patients_compartment(plain_client: Client) -> None:
    await seed(plain_client)
    await indexed(plain_client)
    response = await plain_client.get("/fhir/Patient/p1/$everything")
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "searchset"
    assert bundle["total"] == 3
    assert refs(bundle) == ["Patient/p1", "Group/g1", "Observation/o1"]


async def test_everything_pages_by_count(plain_client: Client) -> None:
    await seed(plain_client)
    await indexed(plain_client)
    seen: list[str] = []
    url: str | None = "/fhir/Patient/p1/$everything?_count=2"
    while url is not None:
        bundle = (await plain_client.get(url)).json()
        assert bundle["total"] == 3
        assert len(bundle.get("entry", [])) <= 2
        seen += refs(bundle)
        nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        url = nxt[0].split("micdr.local", 1)[1] if nxt else None
    assert seen == ["Patient/p1", "Group/g1", "Observation/o1"]


async def test_everything_narrows_by_type_and_since(plain_client: Client) -> None:
    await seed(plain_client)
    await asyncio.sleep(0.01)
    later = await put(plain_client, observation("o1b", "Patient/p1"))
    await put(plain_client, patient("p9"))
    await indexed(plain_client)
    typed = (await plain_client.get("/fhir/Patient/p1/$everything?_type=Observation")).json()
    assert refs(typed) == ["Observation/o1", "Observation/o1b"]
    since = later["meta"]["lastUpdated"]
    recent = (await plain_client.get(f"/fhir/Patient/p1/$everything?_since={since}")).json()
    assert refs(recent) == ["Observation/o1b"]


async def test_everything_refuses_what_it_cannot_do(plain_client: Client) -> None:
    await seed(plain_client)
    assert (await plain_client.get("/fhir/Patient/nope/$everything")).status_code == 404
    assert (await plain_client.get("/fhir/Observation/o1/$everything")).status_code == 404
    response = await plain_client.get("/fhir/Patient/p1/$everything?start=last-week")
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["start"]
    response = await plain_client.get("/fhir/Patient/p1/$everything?_since=yesterday")
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["_since"]


async def test_everything_narrows_by_care_dates_not_record_dates(plain_client: Client) -> None:
    """`start` / `end`: each type's clinical date (an Observation's `date`, its effective
    time) overlaps the range; the Patient and the Group have no care date and stay."""
    await seed(plain_client)
    for id_, when in (("o-2019", "2019-05-01T10:00:00Z"), ("o-2024", "2024-03-01")):
        await put(plain_client, {**observation(id_, "Patient/p1"), "effectiveDateTime": when})
    await indexed(plain_client)

    async def everything(query: str) -> list[str]:
        response = await plain_client.get(f"/fhir/Patient/p1/$everything?{query}")
        assert response.status_code == 200, response.text
        return refs(response.json())

    assert await everything("start=2024-01-01") == [
        "Patient/p1",
        "Group/g1",
        "Observation/o-2024",
    ]
    assert await everything("end=2020") == ["Patient/p1", "Group/g1", "Observation/o-2019"]
    assert await everything("start=2019-05&end=2019-05") == [
        "Patient/p1",
        "Group/g1",
        "Observation/o-2019",
    ]
    assert await everything("start=2025-01-01&_type=Observation") == []
