"""Bulk Data import (`POST [base]/$import`, docs/api/import.md) on every deployment: NDJSON
inputs named by `file:` URL (inside MICDR_IMPORT_DIRS) or by http(s) URL, loaded as `micdr
load` loads them, with a manifest of what each input loaded and files of the refused lines;
kick-offs that cannot run are refused with 400 before anything is stored."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from litestar.testing import AsyncTestClient

from tests.conformance._auth import ORG_A, ORG_B, bearer, secured_client, token, viewer
from tests.conformance._clients import DEPLOYMENTS, PLAIN_FHIR, client_with
from tests.conformance.conftest import finished

Client = AsyncTestClient[Any]
BASE = "http://micdr.local/fhir"
ASYNC = {"Prefer": "respond-async"}
MRN = "urn:oid:2.16.840.1.113883.3.239.18.148"


def patient(id_: str | None, mrn: str | None, family: str, gender: str = "female") -> bytes:
    resource: dict[str, Any] = {"resourceType": "Patient", "name": [{"family": family}]}
    resource["gender"] = gender
    if id_:
        resource["id"] = id_
    if mrn:
        resource["identifier"] = [{"system": MRN, "value": mrn}]
    return orjson.dumps(resource)


# Line 3 is not JSON, line 5 has a gender the value set does not hold: 3 loaded, 2 refused.
PATIENTS = b"\n".join(
    [
        patient("p1", None, "One"),
        patient(None, "M-2", "Two"),
        b"{not json",
        patient(None, None, "Three"),
        patient("p5", None, "Five", gender="robot"),
    ]
)
ORGANIZATIONS = orjson.dumps({"resourceType": "Organization", "id": "org1", "name": "Hospital"})


def parameters(*inputs: tuple[str | None, str], **extra: str) -> dict[str, Any]:
    parameter: list[dict[str, Any]] = [
        {"name": "inputFormat", "valueCode": extra.get("fmt", "application/fhir+ndjson")}
    ]
    for type_, url in inputs:
        parts: list[dict[str, Any]] = [{"name": "url", "valueUri": url}]
        if type_:
            parts.append({"name": "type", "valueCode": type_})
        parameter.append({"name": "input", "part": parts})
    return {"resourceType": "Parameters", "parameter": parameter}


async def kick_off(client: Client, body: dict[str, Any]) -> str:
    response = await client.post("/fhir/$import", json=body, headers=ASYNC)
    assert response.status_code == 202, response.text
    location = response.headers["content-location"]
    assert location.startswith(f"{BASE}/$import-status/")
    return location.split("micdr.local", 1)[1]


async def manifest_of(client: Client, status: str) -> dict[str, Any]:
    response = await finished(client, status, timeout=60.0)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    return body


async def diagnostics_of(client: Client, url: str) -> list[str]:
    response = await client.get(url.split("micdr.local", 1)[1])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+ndjson")
    outcomes = [orjson.loads(line) for line in response.content.splitlines()]
    return [o["issue"][0]["diagnostics"] for o in outcomes]


async def searched(client: Client, query: str, expected: int) -> list[dict[str, Any]]:
    """The search's matches once the index holds `expected` of them (projection runs after
    the commits)."""
    for _ in range(200):
        bundle = (await client.get(f"/fhir/{query}")).json()
        found = [e["resource"] for e in bundle.get("entry", [])]
        if len(found) == expected:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"{query}: {len(found)} matches, not {expected}")


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "patients.ndjson").write_bytes(PATIENTS)
    (folder / "orgs.ndjson").write_bytes(ORGANIZATIONS + b"\n")
    return folder


@pytest.fixture(params=DEPLOYMENTS)
async def client(request: pytest.FixtureRequest, tmp_path: Path, inbox: Path) -> Any:
    env = {**PLAIN_FHIR, "MICDR_IMPORT_DIRS": str(inbox)}
    async with client_with(env, request.param, tmp_path / "data") as c:
        yield c


async def test_an_import_loads_each_input_and_reports_refused_lines(
    client: Client, inbox: Path
) -> None:
    patients = (inbox / "patients.ndjson").as_uri()
    orgs = (inbox / "orgs.ndjson").as_uri()
    status = await kick_off(client, parameters(("Patient", patients), ("Organization", orgs)))
    manifest = await manifest_of(client, status)
    assert manifest["request"] == f"{BASE}/$import"
    assert manifest["requiresAccessToken"] is False
    assert manifest["output"] == [
        {"type": "Patient", "inputUrl": patients, "count": 3},
        {"type": "Organization", "inputUrl": orgs, "count": 1},
    ]
    [error] = manifest["error"]
    assert {k: error[k] for k in ("type", "inputUrl", "count")} == {
        "type": "OperationOutcome",
        "inputUrl": patients,
        "count": 2,
    }
    diagnostics = await diagnostics_of(client, error["url"])
    assert diagnostics[0].startswith(f"{patients} line 3: 400 Bad Request: not JSON: ")
    assert diagnostics[1] == (
        f"{patients} line 5: 400 Bad Request: "
        "invalid code 'robot': expected one of female, male, other, unknown"
    )
    assert (await client.get("/fhir/Patient/p1")).json()["meta"]["versionId"] == "1"
    assert (await client.get("/fhir/Patient/p5")).status_code == 404
    assert (await client.get("/fhir/Organization/org1")).status_code == 200
    found = await searched(client, f"Patient?identifier={MRN}|M-2", 1)
    assert found[0]["name"] == [{"family": "Two"}]
    assert len(await searched(client, "Patient?_count=50", 3)) == 3


async def test_an_import_again_changes_nothing_for_lines_with_an_id_or_identifier(
    client: Client, inbox: Path
) -> None:
    """The line with neither (line 4) is created again; the others are no-op updates."""
    body = parameters(("Patient", (inbox / "patients.ndjson").as_uri()))
    for _ in range(2):
        manifest = await manifest_of(client, await kick_off(client, body))
        assert manifest["output"][0]["count"] == 3
    assert (await client.get("/fhir/Patient/p1")).json()["meta"]["versionId"] == "1"
    [two] = await searched(client, f"Patient?identifier={MRN}|M-2", 1)
    assert two["meta"]["versionId"] == "1"
    assert len(await searched(client, "Patient?name=Three", 2)) == 2


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


@contextlib.contextmanager
def served_folder(folder: Path) -> Iterator[str]:
    """`folder` served over plain HTTP on loopback (allowed: http to a loopback address)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def test_an_http_input_is_downloaded_and_one_that_fails_is_an_error(
    client: Client, inbox: Path
) -> None:
    with served_folder(inbox) as url:
        missing, orgs = f"{url}/gone.ndjson", f"{url}/orgs.ndjson"
        status = await kick_off(client, parameters(("Patient", missing), (None, orgs)))
        manifest = await manifest_of(client, status)
    assert manifest["output"] == [
        {"type": "Patient", "inputUrl": missing, "count": 0},
        {"type": "Resource", "inputUrl": orgs, "count": 1},
    ]
    [error] = manifest["error"]
    assert (error["inputUrl"], error["count"]) == (missing, 1)
    assert await diagnostics_of(client, error["url"]) == [
        f"{missing}: not read: GET {missing} answered 404"
    ]
    assert (await client.get("/fhir/Organization/org1")).status_code == 200


@pytest.mark.parametrize(
    ("body", "headers", "code", "says"),
    [
        (parameters(("Patient", "file:///x.ndjson")), {}, "invalid", "Prefer: respond-async"),
        ({"resourceType": "Patient"}, ASYNC, "invalid", "must be a Parameters resource"),
        (parameters(fmt="text/csv"), ASYNC, "not-supported", "inputFormat 'text/csv'"),
        (parameters(), ASYNC, "invalid", "at least one input"),
        (parameters(("Nonsense", "file:///x.ndjson")), ASYNC, "invalid", "'Nonsense'"),
        (parameters(("Patient", "file:///etc/passwd")), ASYNC, "security", "import folders"),
        (parameters(("Patient", "http://10.1.2.3/a.ndjson")), ASYNC, "security", "https"),
        (
            parameters(("Patient", "https://10.1.2.3/a.ndjson")),
            ASYNC,
            "security",
            "internal address 10.1.2.3",
        ),
        (
            {"resourceType": "Parameters", "parameter": [{"name": "since"}]},
            ASYNC,
            "invalid",
            "no parameter 'since'",
        ),
    ],
)
async def test_a_kick_off_that_cannot_run_is_refused_before_anything_is_stored(
    client: Client, body: dict[str, Any], headers: dict[str, str], code: str, says: str
) -> None:
    response = await client.post("/fhir/$import", json=body, headers=headers)
    assert response.status_code == 400, response.text
    [issue] = response.json()["issue"]
    assert issue["code"] == code
    assert says in issue["diagnostics"]
    health = (await client.get("/health")).json()["submissions"]
    assert health["queue_depth"] == 0


async def test_the_capability_statement_declares_import(client: Client) -> None:
    rest = (await client.get("/fhir/metadata")).json()["rest"][0]
    assert {"name": "import", "definition": "http://micdr.org/fhir/OperationDefinition/import"} in [
        {k: o[k] for k in ("name", "definition")} for o in rest.get("operation", [])
    ]


@pytest.fixture(params=DEPLOYMENTS)
async def secured(request: pytest.FixtureRequest, tmp_path: Path, inbox: Path) -> Any:
    env = {"MICDR_IMPORT_DIRS": str(inbox)}
    async with secured_client(request.param, tmp_path, env) as c:
        yield c


async def test_scopes_bound_what_an_import_may_write_at_kick_off_and_per_line(
    secured: Client, inbox: Path
) -> None:
    patients_only = bearer(token("system/Patient.cruds", org=ORG_A))
    orgs = (inbox / "orgs.ndjson").as_uri()
    body = parameters(("Organization", orgs))
    assert (await secured.post("/fhir/$import", json=body, headers=ASYNC)).status_code == 401
    for headers, status in [(viewer("user/*.rs"), 403), (patients_only, 403)]:
        response = await secured.post("/fhir/$import", json=body, headers={**ASYNC, **headers})
        assert response.status_code == status, response.text
    # undeclared, the input's lines are checked one by one, as the submitter
    response = await secured.post(
        "/fhir/$import", json=parameters((None, orgs)), headers={**ASYNC, **patients_only}
    )
    assert response.status_code == 202, response.text
    status_path = response.headers["content-location"].split("micdr.local", 1)[1]
    other = bearer(token("system/*.cruds", org=ORG_B))
    assert (await secured.get(status_path, headers=other)).status_code == 404
    done = await finished(secured, status_path, timeout=60.0, headers=patients_only)
    manifest = done.json()
    assert manifest["requiresAccessToken"] is True
    assert manifest["output"] == [{"type": "Resource", "inputUrl": orgs, "count": 0}]
    [error] = manifest["error"]
    file = await secured.get(error["url"].split("micdr.local", 1)[1], headers=patients_only)
    [outcome] = [orjson.loads(line) for line in file.content.splitlines()]
    assert outcome["issue"][0]["diagnostics"].startswith(f"{orgs} line 1: 403 Forbidden: ")
    assert (await secured.get("/fhir/Organization/org1", headers=viewer())).status_code == 404


@pytest.mark.parametrize("deployment", ["embedded", "mongo"])
async def test_a_queued_import_is_cancelled_then_404(
    deployment: str, tmp_path: Path, inbox: Path
) -> None:
    """(MICDR_ASYNC_CONCURRENCY=0: accepted, never started; on the full stack a worker beside
    the API could start it before the DELETE.)"""
    env = {**PLAIN_FHIR, "MICDR_IMPORT_DIRS": str(inbox), "MICDR_ASYNC_CONCURRENCY": "0"}
    async with client_with(env, deployment, tmp_path / "data") as client:
        status = await kick_off(
            client, parameters(("Patient", (inbox / "patients.ndjson").as_uri()))
        )
        waiting = await client.get(status)
        assert (waiting.status_code, waiting.headers["x-progress"]) == (202, "queued")
        assert (await client.delete(status)).status_code == 202
        assert (await client.get(status)).status_code == 404
        assert (
            await client.get(status.replace("$import-status", "$export-status"))
        ).status_code == 404
        assert (
            await client.get(status.replace("$import-status", "$async-status"))
        ).status_code == 404
