"""The embedded search index is derived data in a file of its own (app/engines.py): a start that
finds it empty while the store holds resources (the file deleted, or a data dir from before the
index had its own file) rebuilds it from the store in the background, and searches find again
what was written before, and not what was deleted."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient

from app.main import create_app
from app.settings import load_settings
from tests.conformance.conftest import indexed


async def found(client: AsyncTestClient[Any], query: str, want: set[str]) -> set[str]:
    """The ids a search answers, polled until they are `want` or 20 s pass (the rebuild runs in
    the background)."""
    deadline = asyncio.get_running_loop().time() + 20.0
    while True:
        response = await client.get(f"/fhir/{query}")
        assert response.status_code == 200, response.text
        ids = {e["resource"]["id"] for e in response.json().get("entry", [])}
        if ids == want or asyncio.get_running_loop().time() > deadline:
            return ids
        await asyncio.sleep(0.05)


async def create(client: AsyncTestClient[Any], resource: dict[str, Any]) -> str:
    response = await client.post(f"/fhir/{resource['resourceType']}", json=resource)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def patient(given: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": "Rebuilt", "given": [given]}]}


async def test_a_deleted_index_file_is_rebuilt_from_the_store(tmp_path: Path) -> None:
    settings = load_settings({"MICDR_DATA_DIR": str(tmp_path)})
    async with AsyncTestClient(app=create_app(settings), base_url="http://micdr.local") as client:
        ada, bea, cy = [await create(client, patient(given)) for given in ("Ada", "Bea", "Cy")]
        org = await create(client, {"resourceType": "Organization", "name": "Rebuilt Hospital"})
        assert (await client.delete(f"/fhir/Patient/{bea}")).status_code in (200, 204)
        await indexed(client)
        assert await found(client, "Patient?family=Rebuilt", {ada, cy}) == {ada, cy}

    for suffix in ("", "-wal", "-shm"):
        Path(f"{settings.sqlite_index_path}{suffix}").unlink(missing_ok=True)

    async with AsyncTestClient(app=create_app(settings), base_url="http://micdr.local") as client:
        assert await found(client, "Patient?family=Rebuilt", {ada, cy}) == {ada, cy}
        assert await found(client, "Organization?name=Rebuilt", {org}) == {org}
        # new commits are projected as usual next to the rebuild
        dee = await create(client, patient("Dee"))
        await indexed(client)
        assert await found(client, "Patient?family=Rebuilt", {ada, cy, dee}) == {ada, cy, dee}
