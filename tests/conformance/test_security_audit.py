"""The audit trail (docs/security.md, "Audit"): one JSON line per read, search, write and
asynchronous job, naming who, which client, which patients, which resources, the outcome and the
request id; optionally AuditEvent resources, which the API never lets anyone write or delete."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conformance._auth import ORG_A, contributor, secured_client, token, viewer
from tests.conformance._clients import DEPLOYMENTS
from tests.conformance.conftest import indexed

A = contributor(ORG_A)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("store", DEPLOYMENTS)
async def test_reads_searches_writes_and_refusals_are_audited(store: str, tmp_path: Path) -> None:
    async with secured_client(store, tmp_path) as client:
        body = {"resourceType": "Patient", "name": [{"family": "Audit"}]}
        r = await client.post("/fhir/Patient", json=body, headers={**A, "X-Request-Id": "w-1"})
        pid = r.json()["id"]
        obs = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "subject": {"reference": f"Patient/{pid}"},
        }
        await client.post("/fhir/Observation", json=obs, headers=A)
        await indexed(client)
        reader = viewer()
        await client.get(f"/fhir/Patient/{pid}", headers={**reader, "X-Request-Id": "r-1"})
        await client.get("/fhir/Observation", headers={**reader, "X-Request-Id": "s-1"})
        await client.get("/fhir/Patient", headers={"X-Request-Id": "u-1"})
        await client.get("/fhir/metadata")
    records = {rec["request_id"]: rec for rec in lines(tmp_path / "audit.jsonl")}
    write = records["w-1"]
    assert write["interaction"] == "create" and write["status"] == 201
    assert write["org"] == ORG_A and write["client_id"] == f"client-{ORG_A}"
    assert write["resources"] == [f"Patient/{pid}"] and write["patients"] == [f"Patient/{pid}"]
    read = records["r-1"]
    assert read["interaction"] == "read" and read["outcome"] == "success"
    assert read["patients"] == [f"Patient/{pid}"] and read["client_id"] == "viewer-app"
    search = records["s-1"]
    assert search["interaction"] == "search-type" and search["patients"] == [f"Patient/{pid}"]
    assert len(search["resources"]) == 1
    refused = records["u-1"]
    assert refused["status"] == 401 and refused["outcome"] == "failure"
    assert refused["authenticated"] is False
    assert not any(r["path"].endswith("/metadata") for r in records.values())


async def test_async_jobs_are_audited_when_accepted_and_when_run(tmp_path: Path) -> None:
    async with secured_client("embedded", tmp_path) as client:
        headers = {**A, "Prefer": "respond-async", "X-Request-Id": "job-1"}
        body = {"resourceType": "Patient", "name": [{"family": "Later"}]}
        r = await client.post("/fhir/Patient", json=body, headers=headers)
        assert r.status_code == 202
        status_url = r.headers["content-location"].replace("http://micdr.local", "")
        for _ in range(200):
            if (await client.get(status_url, headers=A)).status_code == 200:
                break
            await asyncio.sleep(0.05)
    jobs = [rec for rec in lines(tmp_path / "audit.jsonl") if rec["request_id"] == "job-1"]
    assert [j["status"] for j in jobs] == [202, 201]
    assert jobs[0]["submission"] == jobs[1]["submission"]
    assert jobs[1]["async"] is True and jobs[1]["org"] == ORG_A
    assert jobs[1]["resources"][0].startswith("Patient/")


@pytest.mark.parametrize("store", DEPLOYMENTS)
async def test_audit_events_are_stored_and_cannot_be_edited(store: str, tmp_path: Path) -> None:
    env = {"MICDR_AUDIT_EVENTS": "1"}
    async with secured_client(store, tmp_path, env) as client:
        body = {"resourceType": "Patient", "name": [{"family": "Evented"}]}
        await client.post("/fhir/Patient", json=body, headers=A)
        await indexed(client)
        auditor = {"Authorization": f"Bearer {token('user/AuditEvent.rs')}"}
        r = await client.get("/fhir/AuditEvent", params={"_total": "accurate"}, headers=auditor)
        assert r.status_code == 200
        events = [e["resource"] for e in r.json()["entry"]]
        assert any(e.get("action") == "C" for e in events)
        event_id = events[0]["id"]
        for method in ("PUT", "PATCH", "DELETE"):
            r = await client.request(
                method, f"/fhir/AuditEvent/{event_id}", headers=A, json=events[0]
            )
            assert r.status_code == 405, method
        r = await client.post("/fhir/AuditEvent", json=events[0], headers=A)
        assert r.status_code == 405
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"request": {"method": "DELETE", "url": f"AuditEvent/{event_id}"}}],
        }
        assert (await client.post("/fhir", json=bundle, headers=A)).status_code == 403
        r = await client.get(f"/fhir/AuditEvent/{event_id}", headers=auditor)
        assert r.status_code == 200


async def test_audit_events_cannot_be_written_on_the_open_server(tmp_path: Path) -> None:
    from tests.conformance._clients import client_with

    async with client_with({}, "embedded", tmp_path) as client:
        event = {"resourceType": "AuditEvent"}
        assert (await client.post("/fhir/AuditEvent", json=event)).status_code == 405
        bundle = {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [{"resource": event, "request": {"method": "POST", "url": "AuditEvent"}}],
        }
        r = await client.post("/fhir", json=bundle)
        assert r.json()["entry"][0]["response"]["status"].startswith("403")
