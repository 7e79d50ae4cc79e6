"""Bulk Data export with authentication on (docs/api/export.md, docs/security.md): scopes limit
what a kick-off may name and what the files hold; the manifest requires the token; status and
files answer the submitter only."""

from __future__ import annotations

from typing import Any

import orjson
from litestar.testing import AsyncTestClient

from tests.conformance.conftest import finished
from tests.conformance.test_security_scopes import A, B, client, seed, viewer

__all__ = ["client"]  # the secured client fixture, on every deployment

ASYNC = {"Prefer": "respond-async"}


def path_of(url: str) -> str:
    return url.split("micdr.local", 1)[1]


async def test_an_export_holds_what_the_token_may_read(client: AsyncTestClient[Any]) -> None:
    ids = await seed(client)
    response = await client.get("/fhir/$export?_type=Patient,ImagingStudy", headers={**ASYNC, **A})
    assert response.status_code == 202, response.text
    status = path_of(response.headers["content-location"])
    # the status and the files are the submitter's only
    assert (await client.get(status, headers=B)).status_code == 404
    done = await finished(client, status, headers=A)
    assert done.status_code == 200, done.text
    manifest = done.json()
    assert manifest["requiresAccessToken"] is True
    exported: set[str] = set()
    for entry in manifest["output"]:
        url = path_of(entry["url"])
        assert (await client.get(url, headers=B)).status_code == 404
        body = (await client.get(url, headers=A)).content
        exported |= {orjson.loads(line)["id"] for line in body.splitlines()}
    # hospital A's patient and studies; none of hospital B's
    assert exported == {ids["pa"], ids["sa0"], ids["sa1"], ids["sa2"]}


async def test_a_type_the_token_may_not_read_is_403(client: AsyncTestClient[Any]) -> None:
    response = await client.get(
        "/fhir/$export?_type=ImagingStudy", headers={**ASYNC, **viewer("user/Patient.rs")}
    )
    assert response.status_code == 403, response.text


async def test_without_a_token_the_kickoff_is_401(client: AsyncTestClient[Any]) -> None:
    assert (await client.get("/fhir/$export", headers=ASYNC)).status_code == 401
