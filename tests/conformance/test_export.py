"""Bulk Data export (Bulk Data Access IG v2.0.0, export.html) on every deployment: kick-off at
system, patient and group level by GET and POST, the status URL (202 while running, the
manifest when done), the NDJSON files (each line strict R4, its declared type, the manifest's
counts), DELETE, expiry, and the snapshot: what is committed after the kick-off is not in the
export. See docs/api/export.md."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from litestar.testing import AsyncTestClient

from tests.conformance import _clients
from tests.conformance._clients import DEPLOYMENTS, PLAIN_FHIR, client_with, served_with
from tests.conformance.conftest import finished, indexed

Client = AsyncTestClient[Any]
plain_client = _clients.plain_client  # a fixture: IG mode off
ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}
BASE = "http://micdr.local/fhir"


def path_of(url: str) -> str:
    return url.split("micdr.local", 1)[1]


async def put(client: httpx.AsyncClient, resource: dict[str, Any]) -> dict[str, Any]:
    response = await client.put(f"/fhir/{resource['resourceType']}/{resource['id']}", json=resource)
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


def patient(id_: str, family: str = "Doe") -> dict[str, Any]:
    return {"resourceType": "Patient", "id": id_, "name": [{"family": family}]}


def observation(id_: str, subject: str | None) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": id_,
        "status": "final",
        "code": {"text": "dose"},
    }
    if subject is not None:
        obs["subject"] = {"reference": subject}
    return obs


async def seed(client: Client) -> None:
    """Three patients, an observation of each and one of no one, an organisation, and a group
    of p1, p2 and a patient that does not exist (p3 a former member)."""
    for id_ in ("p1", "p2", "p3"):
        await put(client, patient(id_))
    await put(client, observation("o1", "Patient/p1"))
    await put(client, observation("o2", "Patient/p2"))
    await put(client, observation("o3", "Patient/p3"))
    await put(client, observation("o-none", None))
    await put(client, {"resourceType": "Organization", "id": "org1", "name": "Hospital A"})
    await put(
        client,
        {
            "resourceType": "Group",
            "id": "g1",
            "type": "person",
            "actual": True,
            "member": [
                {"entity": {"reference": "Patient/p1"}},
                {"entity": {"reference": "Patient/p2"}},
                {"entity": {"reference": "Patient/p3"}, "inactive": True},
                {"entity": {"reference": "Patient/ghost"}},
            ],
        },
    )


async def kick_off(client: Client, url: str, body: Any = None, **headers: str) -> str:
    if body is None:
        response = await client.get(url, headers={**ASYNC, **headers})
    else:
        response = await client.post(url, json=body, headers={**ASYNC, **headers})
    assert response.status_code == 202, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    location = response.headers["content-location"]
    assert location.startswith(f"{BASE}/$export-status/")
    return path_of(location)


async def complete(client: Client, status: str) -> dict[str, Any]:
    response = await finished(client, status)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    manifest: dict[str, Any] = response.json()
    return manifest


async def lines_of(client: Client, manifest: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every output file's resources by type; each file's lines are of its declared type and
    as many as the manifest says."""
    out: dict[str, list[dict[str, Any]]] = {}
    for entry in manifest["output"]:
        response = await client.get(
            path_of(entry["url"]), headers={"Accept": "application/fhir+ndjson"}
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/fhir+ndjson")
        resources = [orjson.loads(line) for line in response.content.splitlines()]
        assert len(resources) == entry["count"]
        assert {r["resourceType"] for r in resources} == {entry["type"]}
        out.setdefault(entry["type"], []).extend(resources)
    return out


def ids(by_type: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    return {t: sorted(r["id"] for r in rs) for t, rs in by_type.items()}


async def test_system_export_has_every_type_and_resource(plain_client: Client) -> None:
    await seed(plain_client)
    status = await kick_off(plain_client, "/fhir/$export")
    manifest = await complete(plain_client, status)
    assert manifest["request"] == f"{BASE}/$export"
    assert manifest["requiresAccessToken"] is False
    assert manifest["error"] == []
    assert ids(await lines_of(plain_client, manifest)) == {
        "Group": ["g1"],
        "Observation": ["o-none", "o1", "o2", "o3"],
        "Organization": ["org1"],
        "Patient": ["p1", "p2", "p3"],
    }


async def test_patient_export_holds_only_patient_compartments(plain_client: Client) -> None:
    await seed(plain_client)
    status = await kick_off(plain_client, "/fhir/Patient/$export")
    manifest = await complete(plain_client, status)
    assert manifest["request"] == f"{BASE}/Patient/$export"
    # the observation of no one and the organisation are in no patient's compartment; the
    # group is in its members' (R4 CompartmentDefinition: Group by `member`)
    assert ids(await lines_of(plain_client, manifest)) == {
        "Group": ["g1"],
        "Observation": ["o1", "o2", "o3"],
        "Patient": ["p1", "p2", "p3"],
    }


async def test_group_export_holds_exactly_the_active_members_compartments(
    plain_client: Client,
) -> None:
    await seed(plain_client)
    status = await kick_off(plain_client, "/fhir/Group/g1/$export")
    manifest = await complete(plain_client, status)
    assert manifest["request"] == f"{BASE}/Group/g1/$export"
    assert ids(await lines_of(plain_client, manifest)) == {
        "Group": ["g1"],
        "Observation": ["o1", "o2"],
        "Patient": ["p1", "p2"],
    }
    # the member that does not exist is reported in an error file
    (error,) = manifest["error"]
    assert (error["type"], error["count"]) == ("OperationOutcome", 1)
    body = (await plain_client.get(path_of(error["url"]))).content
    (outcome,) = [orjson.loads(line) for line in body.splitlines()]
    assert outcome["issue"][0]["code"] == "not-found"
    assert outcome["issue"][0]["diagnostics"].startswith("Patient/ghost, listed by Group/g1,")


async def test_post_kickoff_takes_parameters_and_patient(plain_client: Client) -> None:
    await seed(plain_client)
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "_outputFormat", "valueString": "application/fhir+ndjson"},
            {"name": "_type", "valueString": "Patient,Observation"},
            {"name": "patient", "valueReference": {"reference": "Patient/p2"}},
        ],
    }
    status = await kick_off(plain_client, "/fhir/Group/g1/$export", body)
    manifest = await complete(plain_client, status)
    assert ids(await lines_of(plain_client, manifest)) == {
        "Observation": ["o2"],
        "Patient": ["p2"],
    }


async def test_type_since_and_elements_shape_the_output(plain_client: Client) -> None:
    await seed(plain_client)
    await asyncio.sleep(0.01)
    since = (await put(plain_client, patient("p1", "Later")))["meta"]["lastUpdated"]
    status = await kick_off(
        plain_client,
        f"/fhir/$export?_type=Patient,Organization&_since={since}&_elements=name",
    )
    manifest = await complete(plain_client, status)
    by_type = await lines_of(plain_client, manifest)
    assert ids(by_type) == {"Patient": ["p1"]}
    (p1,) = by_type["Patient"]
    assert p1["name"] == [{"family": "Later"}]
    assert [t["code"] for t in p1["meta"]["tag"]] == ["SUBSETTED"]


async def test_type_filters_are_ored_per_type_and_anded_within(plain_client: Client) -> None:
    await seed(plain_client)
    await indexed(plain_client)
    filters = [
        "Observation?subject=Patient/p1",
        "Observation?subject=Patient/p2",
        "Patient?family=Doe&_id=p3",
    ]
    query = "&".join(f"_typeFilter={quote(f, safe='')}" for f in filters)
    status = await kick_off(plain_client, f"/fhir/$export?_type=Patient,Observation&{query}")
    by_type = await lines_of(plain_client, await complete(plain_client, status))
    assert ids(by_type) == {"Observation": ["o1", "o2"], "Patient": ["p3"]}


async def test_later_commits_are_not_in_the_snapshot(plain_client: Client) -> None:
    await seed(plain_client)
    status = await kick_off(plain_client, "/fhir/$export?_type=Patient,Observation")
    # after the kick-off: a new patient, a changed one, a deleted one
    await put(plain_client, patient("p4"))
    await put(plain_client, patient("p1", "Changed"))
    assert (await plain_client.delete("/fhir/Observation/o3")).status_code in (200, 204)
    by_type = await lines_of(plain_client, await complete(plain_client, status))
    assert ids(by_type) == {
        "Observation": ["o-none", "o1", "o2", "o3"],
        "Patient": ["p1", "p2", "p3"],
    }
    p1 = next(p for p in by_type["Patient"] if p["id"] == "p1")
    assert p1["name"] == [{"family": "Doe"}]
    assert p1["meta"]["versionId"] == "1"


async def test_delete_cancels_and_removes_the_files(plain_client: Client) -> None:
    await seed(plain_client)
    status = await kick_off(plain_client, "/fhir/$export")
    manifest = await complete(plain_client, status)
    file_url = path_of(manifest["output"][0]["url"])
    response = await plain_client.delete(status)
    assert response.status_code == 202
    assert (await plain_client.get(status)).status_code == 404
    assert (await plain_client.get(file_url)).status_code == 404
    assert (await plain_client.delete(status)).status_code == 404


SMALL = {**PLAIN_FHIR, "MICDR_EXPORT_BATCH": "2", "MICDR_EXPORT_FILE_BYTES": "300"}


@pytest.fixture(params=DEPLOYMENTS)
async def small_files_client(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Client]:
    """Batches of 2 resources, files split at 300 bytes, exports kept 2 seconds."""
    async with client_with({**SMALL, "MICDR_EXPORT_RETENTION": "2"}, request.param, tmp_path) as c:
        yield c


@pytest.fixture(params=DEPLOYMENTS)
async def small_batches_client(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Client]:
    async with client_with(SMALL, request.param, tmp_path) as c:
        yield c


async def test_files_split_at_the_configured_size_and_expire(small_files_client: Client) -> None:
    client = small_files_client
    for n in range(7):
        await put(client, patient(f"p{n}"))
    status = await kick_off(client, "/fhir/$export?_type=Patient")
    manifest = await complete(client, status)
    names = [e["url"].rsplit("/", 1)[1] for e in manifest["output"]]
    assert len(names) > 1
    assert names == [f"Patient.{n}.ndjson" for n in range(1, len(names) + 1)]
    by_type = await lines_of(client, manifest)
    assert ids(by_type) == {"Patient": [f"p{n}" for n in range(7)]}
    await asyncio.sleep(2.1)
    assert (await client.get(status)).status_code == 404
    assert (await client.get(path_of(manifest["output"][0]["url"]))).status_code == 404


@pytest.mark.parametrize(
    ("url", "headers", "code", "expression"),
    [
        ("/fhir/$export", {"Prefer": ""}, "invalid", "Prefer"),
        ("/fhir/$export?_outputFormat=text/csv", {}, "not-supported", "_outputFormat"),
        ("/fhir/$export?_since=yesterday", {}, "invalid", "_since"),
        ("/fhir/$export?_type=Nonsense", {}, "invalid", "_type"),
        ("/fhir/$export?_typeFilter=Patient%3Fcolour%3Dred", {}, "invalid", "_typeFilter"),
        ("/fhir/$export?_typeFilter=Patient%3F_sort%3Dname", {}, "invalid", "_typeFilter"),
        ("/fhir/$export?includeAssociatedData=_all", {}, "not-supported", "includeAssociatedData"),
        ("/fhir/$export?colour=red", {}, "invalid", "colour"),
        ("/fhir/$export?patient=Patient/p1", {}, "invalid", "patient"),
        ("/fhir/Patient/$export?_type=Organization", {}, "invalid", "_type"),
        ("/fhir/Patient/$export?patient=Patient/p1", {}, "invalid", "patient"),
        ("/fhir/$export", {"Accept": "text/html"}, "not-supported", "Accept"),
    ],
)
async def test_a_bad_kickoff_is_a_400_naming_the_parameter(
    plain_client: Client, url: str, headers: dict[str, str], code: str, expression: str
) -> None:
    response = await plain_client.get(url, headers={**ASYNC, **headers})
    assert response.status_code == 400, response.text
    (issue,) = response.json()["issue"]
    assert issue["code"] == code
    assert issue["expression"] == [expression]


async def test_lenient_handling_ignores_what_it_cannot_honour(plain_client: Client) -> None:
    await seed(plain_client)
    response = await plain_client.get(
        "/fhir/$export?_type=Organization&colour=red",
        headers={**ASYNC, "Prefer": "respond-async, handling=lenient"},
    )
    assert response.status_code == 202, response.text
    warnings = [i for i in response.json()["issue"] if i["severity"] == "warning"]
    assert [w["diagnostics"] for w in warnings] == ["unknown kick-off parameter 'colour'"]
    manifest = await complete(plain_client, path_of(response.headers["content-location"]))
    assert ids(await lines_of(plain_client, manifest)) == {"Organization": ["org1"]}


async def test_an_unknown_group_or_export_is_404(plain_client: Client) -> None:
    response = await plain_client.get("/fhir/Group/nope/$export", headers=ASYNC)
    assert response.status_code == 404
    assert (await plain_client.get("/fhir/$export-status/nope")).status_code == 404
    assert (await plain_client.get("/fhir/$export-file/nope/Patient.1.ndjson")).status_code == 404
    # an export is not an asynchronous submission
    status = await kick_off(plain_client, "/fhir/$export")
    export_id = status.rsplit("/", 1)[1]
    assert (await plain_client.get(f"/fhir/$async-status/{export_id}")).status_code == 404
    assert (await plain_client.delete(f"/fhir/$async-status/{export_id}")).status_code == 404


async def test_the_capability_statement_declares_the_operations(plain_client: Client) -> None:
    statement = (await plain_client.get("/fhir/metadata")).json()
    rest = statement["rest"][0]
    assert rest["operation"] == [
        {
            "name": "export",
            "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
        },
        {"name": "import", "definition": "http://micdr.org/fhir/OperationDefinition/import"},
    ]
    by_type = {r["type"]: r.get("operation") for r in rest["resource"]}
    assert by_type["Patient"] == [
        {
            "name": "export",
            "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export",
        },
        {
            "name": "everything",
            "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
        },
    ]
    assert by_type["Group"] == [
        {
            "name": "export",
            "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export",
        }
    ]
    assert statement["instantiates"] == [
        "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"
    ]


async def test_under_ingest_the_export_is_the_kickoff_snapshot(
    small_batches_client: Client,
) -> None:
    """Writes go on while the export runs (in small batches, so the job reads the store between
    them): every write that returned before the kick-off is in the export, none made after its
    202 is, whichever batch the job was at. (The test client sends one request at a time; the
    next test writes from several clients at once.)"""
    client = small_batches_client
    before = [f"b{n:02d}" for n in range(10)]
    for id_ in before:
        await put(client, patient(id_))
    status = await kick_off(client, "/fhir/$export?_type=Patient")
    for n in range(30):
        await put(client, patient(f"a{n:02d}"))  # ids sorting before the first ones
        await put(client, patient(before[n % 10], f"Changed{n}"))
    manifest = await complete(client, status)
    by_type = await lines_of(client, manifest)
    assert ids(by_type) == {"Patient": before}
    assert {p["name"][0]["family"] for p in by_type["Patient"]} == {"Doe"}


WRITERS = 4
WRITES_EACH = 40  # at most: a writer stops once the export has finished
SEEDED = 400  # with batches of 2, the export reads the store 200 times or more


@dataclass(frozen=True)
class Written:
    """A write as its client saw it: the version it made, and when (monotonic) it was sent and
    answered."""

    id: str
    version: int
    family: str
    sent: float
    answered: float


@pytest.fixture(params=DEPLOYMENTS)
async def served_small_batches(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    async with served_with(SMALL, request.param, tmp_path) as c:
        yield c


def local_path(url: str) -> str:
    return "/" + url.split("/", 3)[3]


async def put_timed(client: httpx.AsyncClient, id_: str, family: str) -> Written:
    sent = time.monotonic()
    body = await put(client, patient(id_, family))
    return Written(id_, int(body["meta"]["versionId"]), family, sent, time.monotonic())


async def test_parallel_writers_leave_the_kickoff_snapshot_as_it_was(
    served_small_batches: httpx.AsyncClient,
) -> None:
    """Clients write at once (creates, and updates of patients of their own) before, during
    and after the kick-off and while the export runs, on a real server: the export holds
    exactly each patient's last version answered before the kick-off was sent, and nothing
    sent after its 202; a write in flight during the kick-off may fall on either side."""
    client = served_small_batches
    seeded = [f"s{n:03d}" for n in range(SEEDED)]
    entries = [
        {"resource": patient(i, "seed"), "request": {"method": "PUT", "url": f"Patient/{i}"}}
        for i in seeded
    ]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    answer = await client.post("/fhir", json=bundle)
    assert answer.status_code == 200, answer.text
    log = [Written(i, 1, "seed", 0.0, 0.0) for i in seeded]
    finished_at: list[float] = []

    async def writer(w: int) -> None:
        own = seeded[w : WRITERS * 5 : WRITERS]
        for n in range(WRITES_EACH):
            if finished_at:
                return
            id_ = f"w{w}-{n:02d}" if n % 2 == 0 else own[n // 2 % len(own)]
            log.append(await put_timed(client, id_, f"w{w}n{n}"))

    async def export() -> tuple[float, float, dict[str, Any], list[tuple[float, str]]]:
        while len(log) < SEEDED + 2 * WRITERS:  # kick off while every writer is busy
            await asyncio.sleep(0.005)
        sent = time.monotonic()
        kicked = await client.get("/fhir/$export?_type=Patient", headers=ASYNC)
        answered = time.monotonic()
        assert kicked.status_code == 202, kicked.text
        status = local_path(kicked.headers["content-location"])
        polls: list[tuple[float, str]] = []
        while (answer := await client.get(status)).status_code == 202:
            polls.append((time.monotonic(), answer.headers["x-progress"]))
            await asyncio.sleep(0.02)
        finished_at.append(time.monotonic())
        assert answer.status_code == 200, answer.text
        return sent, answered, answer.json(), polls

    async with asyncio.timeout(240):
        (sent, answered, manifest, polls), *_ = await asyncio.gather(
            export(), *(writer(w) for w in range(WRITERS))
        )

    # The writers did commit while the export ran: after a poll found it half done.
    half_done = [t for t, progress in polls if not progress.endswith(" 0 resources")]
    assert half_done, polls
    assert any(half_done[0] < w.sent and w.answered < finished_at[0] for w in log)

    lines: dict[str, dict[str, Any]] = {}
    for entry in manifest["output"]:
        ndjson = {"Accept": "application/fhir+ndjson"}
        got = await client.get(local_path(entry["url"]), headers=ndjson)
        assert got.status_code == 200, got.text
        resources = [orjson.loads(line) for line in got.content.splitlines()]
        assert len(resources) == entry["count"]
        lines.update((r["id"], r) for r in resources if r["resourceType"] == "Patient")
    assert sum(e["count"] for e in manifest["output"]) == len(lines)  # no line twice
    exported = {i: (int(r["meta"]["versionId"]), r["name"][0]["family"]) for i, r in lines.items()}
    # per patient: its last version answered before the kick-off was sent (0: none), and the
    # versions of its writes in flight during the kick-off, which may be either side
    before: dict[str, tuple[int, str]] = {}
    either: dict[str, set[tuple[int, str]]] = {}
    for w in log:
        if w.answered < sent:
            before[w.id] = max(before.get(w.id, (0, "")), (w.version, w.family))
        elif w.sent <= answered:
            either.setdefault(w.id, set()).add((w.version, w.family))
    assert {i: v for i, v in exported.items() if i not in either} == {
        i: v for i, v in before.items() if i not in either
    }
    for id_, versions in either.items():
        assert exported.get(id_) in {before.get(id_), *versions}
    assert all(r["meta"]["lastUpdated"] <= manifest["transactionTime"] for r in lines.values())


async def test_a_finished_export_is_audited(plain_client: Client, tmp_path: Path) -> None:
    """Who exported, what, and how many: one audit line when the export finishes."""
    await seed(plain_client)
    status = await kick_off(plain_client, "/fhir/$export?_type=Patient,Observation")
    await complete(plain_client, status)
    export_id = status.rsplit("/", 1)[1]
    lines = [orjson.loads(line) for line in (tmp_path / "audit.jsonl").read_bytes().splitlines()]
    (finished_line,) = [
        line for line in lines if line.get("submission") == export_id and line.get("async")
    ]
    assert finished_line["interaction"] == "export"
    assert finished_line["status"] == 200
    assert (
        finished_line["detail"] == "exported 7 resources in 2 files"
    )  # 3 Patients, 4 Observations


async def test_a_small_export_is_not_held_up_by_a_large_one(small_batches_client: Client) -> None:
    """Exports run side by side, each taking turns between its batches: one kicked off after a
    long one finishes first."""
    client = small_batches_client
    for start in range(0, 600, 100):
        entries = [
            {
                "resource": patient(f"big{n:04d}"),
                "request": {"method": "PUT", "url": f"Patient/big{n:04d}"},
            }
            for n in range(start, start + 100)
        ]
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        assert (await client.post("/fhir", json=bundle)).status_code == 200
    await put(client, {"resourceType": "Organization", "id": "org1", "name": "Hospital A"})
    large = await kick_off(client, "/fhir/$export?_type=Patient")  # 300 batches of 2
    small = await kick_off(client, "/fhir/$export?_type=Organization")
    manifest = await complete(client, small)
    assert ids(await lines_of(client, manifest)) == {"Organization": ["org1"]}
    assert (await client.get(large)).status_code == 202  # the large one is still running
    assert len(ids(await lines_of(client, await complete(client, large)))["Patient"]) == 600
