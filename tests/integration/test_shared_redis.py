"""Two deployments on one Redis database (workers/keys.py `QueueNames`): each worker runs only
its own deployment's jobs. Before the namespaces, a worker of another deployment took this
one's reindex job (same id, same queue) and ran it against its own store, so a newly posted
SearchParameter was never applied to the resources already stored here."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from litestar.testing import AsyncTestClient

from app.deploy.worker import build_worker
from app.main import create_app
from app.settings import load_settings
from tests._full_stack import drop, full_stack_env, start_worker, unique_name
from tests._search_parameters import MARITAL

# the tests' custom parameter, as a client creates it (no id; R4 requires a description)
PARAMETER = {
    **{k: v for k, v in MARITAL.items() if k != "id"},
    "description": "Marital status",
}


def married(family: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "name": [{"family": family}],
        "maritalStatus": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M"}
            ]
        },
    }


async def _searchable(client: AsyncTestClient[Any], query: str, ids: list[str]) -> list[str]:
    """The ids the query finds once they are all there, or what it finds after 20 s."""
    found: list[str] = []
    for _ in range(100):
        answer = await client.get(f"/fhir/{query}", headers={"Prefer": "handling=strict"})
        if answer.status_code == 503:  # an index just created, its shard not ready: retry later
            await asyncio.sleep(0.2)
            continue
        assert answer.status_code == 200, answer.text
        found = sorted(e["resource"]["id"] for e in answer.json().get("entry", []))
        if found == sorted(ids):
            break
        await asyncio.sleep(0.2)
    return found


async def test_another_deployments_worker_does_not_take_this_ones_jobs() -> None:
    # both on the tests' one Redis database (full_stack_env empties it: set up both first)
    here = load_settings({**await full_stack_env(unique_name()), "MICDR_IG_MODE": "0"})
    there = load_settings({**await full_stack_env(unique_name()), "MICDR_IG_MODE": "0"})
    assert here.redis_url == there.redis_url
    # Both workers run all along; the other site's polls 50 times as often, so without
    # namespaces it would take nearly every job this site queues.
    stop_there = start_worker(there)
    worker_here = build_worker(here, handle_signals=False, poll_delay=1.0)
    running_here = asyncio.create_task(worker_here.async_run())
    try:
        async with AsyncTestClient(app=create_app(here), base_url="http://micdr.local") as client:
            ids = []
            for family in ("Ito", "Okafor"):
                created = await client.post("/fhir/Patient", json=married(family))
                assert created.status_code == 201, created.text
                ids.append(created.json()["id"])
            assert await _searchable(client, "Patient?_id=" + ",".join(ids), ids) == sorted(ids)
            # stored and indexed before the parameter exists: only a reindex can find them
            assert (await client.post("/fhir/SearchParameter", json=PARAMETER)).status_code == 201
            assert await _searchable(client, "Patient?marital=M", ids) == sorted(ids)
    finally:
        running_here.cancel()
        await asyncio.wait([running_here, *worker_here.tasks.values()])
        await worker_here.close()
        await stop_there()
        for settings in (here, there):
            with contextlib.suppress(Exception):
                await drop(settings)
