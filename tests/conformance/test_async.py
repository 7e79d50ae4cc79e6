"""Asynchronous submissions (FHIR http.html#async, async.html; IG R8-R10) on both stores:
`Prefer: respond-async` answers 202 with a status URL; polling it answers 202 while queued or
running and 200 with the original answer (status in `X-Original-Status`) when done; DELETE
cancels a queued submission; resubmissions are idempotent; results expire; outcomes are pushed,
signed, to a registered callback. See docs/api/async.md."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.conformance._clients import DEPLOYMENTS, PLAIN_FHIR, client_with
from tests.conformance._receiver import Receiver, receiver
from tests.conformance.conftest import episode, finished
from workers import inprocess

ASYNC = {"Prefer": "respond-async"}


def path_of(url: str) -> str:
    return url.split("micdr.local", 1)[1]


async def submit(
    client: AsyncTestClient[Any], body: Any, url: str = "/fhir", **headers: str
) -> str:
    response = await client.post(url, json=body, headers={**ASYNC, **headers})
    assert response.status_code == 202, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    location = response.headers["content-location"]
    assert "/fhir/$async-status/" in location
    return path_of(location)


@pytest.fixture(params=DEPLOYMENTS)
def store(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_a_transaction_answers_202_then_its_transaction_response(
    client: AsyncTestClient[Any],
) -> None:
    bundle = episode(1)
    status_path = await submit(client, bundle)
    done = await finished(client, status_path)
    assert done.status_code == 200
    assert done.headers["x-original-status"] == "200"
    body = done.json()
    assert body["type"] == "transaction-response"
    assert len(body["entry"]) == len(bundle["entry"])
    for entry in body["entry"]:
        assert entry["response"]["status"] == "201 Created"
        assert entry["response"]["etag"] == 'W/"1"'
        location = entry["response"]["location"]
        assert location.endswith("/_history/1")
        read = await client.get(f"/fhir/{location}")
        assert read.status_code == 200, location
        assert path_of(entry["fullUrl"]) == f"/fhir/{location.split('/_history')[0]}"
    # polling again answers the same
    assert (await client.get(status_path)).json() == body


async def test_the_ig_bundle_endpoint_and_a_batch_are_asynchronous_too(
    client: AsyncTestClient[Any],
) -> None:
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": {"resourceType": "Basic", "code": {"text": "a"}},
                "request": {"method": "POST", "url": "Basic"},
            },
            {"request": {"method": "GET", "url": "Nope/1"}},
        ],
    }
    done = await finished(client, await submit(client, batch, "/fhir/Bundle"))
    body = done.json()
    assert (done.status_code, done.headers["x-original-status"]) == (200, "200")
    assert body["type"] == "batch-response"
    assert body["entry"][0]["response"]["status"] == "201 Created"
    assert body["entry"][1]["response"]["status"].startswith("4")


async def test_an_invalid_bundle_ends_with_its_400_outcome(client: AsyncTestClient[Any]) -> None:
    bundle = episode(1)
    bundle["entry"][0]["resource"]["birthDate"] = "not a date"
    done = await finished(client, await submit(client, bundle))
    assert done.status_code == 200
    assert done.headers["x-original-status"] == "400"
    outcome = done.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] == "error"


async def test_a_malformed_envelope_is_refused_before_202(client: AsyncTestClient[Any]) -> None:
    not_json = await client.post(
        "/fhir", content=b"{nope", headers={**ASYNC, "Content-Type": "application/fhir+json"}
    )
    assert not_json.status_code == 400
    collection = await client.post(
        "/fhir", json={"resourceType": "Bundle", "type": "collection"}, headers=ASYNC
    )
    assert collection.status_code == 400
    wrong_type = await client.post(
        "/fhir/Patient", json={"resourceType": "Observation"}, headers=ASYNC
    )
    assert wrong_type.status_code == 400
    assert "content-location" not in wrong_type.headers


async def test_single_writes_answer_their_original_status(client: AsyncTestClient[Any]) -> None:
    created = await finished(
        client,
        await submit(client, {"resourceType": "Basic", "code": {"text": "x"}}, "/fhir/Basic"),
    )
    assert created.headers["x-original-status"] == "201"
    assert created.json()["resourceType"] == "Basic"
    ref = f"Basic/{created.json()['id']}"
    assert created.headers["location"].endswith(f"{ref}/_history/1")

    update = {"resourceType": "Basic", "id": ref[6:], "code": {"text": "y"}}
    response = await client.put(f"/fhir/{ref}", json=update, headers=ASYNC)
    assert response.status_code == 202
    updated = await finished(client, path_of(response.headers["content-location"]))
    assert updated.headers["x-original-status"] == "200"
    assert updated.json()["meta"]["versionId"] == "2"

    response = await client.delete(f"/fhir/{ref}", headers=ASYNC)
    assert response.status_code == 202
    deleted = await finished(client, path_of(response.headers["content-location"]))
    assert deleted.headers["x-original-status"] == "204"
    assert (await client.get(f"/fhir/{ref}")).status_code == 410


async def test_a_resubmission_with_the_same_key_answers_the_first_job(
    client: AsyncTestClient[Any],
) -> None:
    body = {"resourceType": "Basic", "code": {"text": "once"}}
    first = await submit(client, body, "/fhir/Basic", **{"X-Idempotency-Key": "k-1"})
    again = await submit(client, body, "/fhir/Basic", **{"X-Idempotency-Key": "k-1"})
    other = await submit(
        client, body, "/fhir/Basic", **{"X-Idempotency-Key": "k-1", "X-Micdr-Contributor": "b"}
    )
    assert again == first
    assert other != first

    bundle = episode(2)
    bundle["identifier"] = {"system": "urn:example:feed", "value": "message-42"}
    by_identifier = await submit(client, bundle)
    assert await submit(client, bundle) == by_identifier
    done = await finished(client, by_identifier)
    assert done.headers["x-original-status"] == "200"
    # after it finished, a resubmission still answers the same job (and its result)
    assert await submit(client, bundle) == by_identifier


@pytest.mark.parametrize("deployment", ["embedded", "mongo"])
async def test_cancel_a_queued_submission_then_404(deployment: str, tmp_path: Path) -> None:
    # MICDR_ASYNC_CONCURRENCY=0 (accept only) is the in-process runner's: on the full stack the
    # arq worker beside the API may start the submission before the DELETE arrives
    async with client_with({"MICDR_ASYNC_CONCURRENCY": "0"}, deployment, tmp_path) as client:
        status_path = await submit(client, episode(1))
        waiting = await client.get(status_path)
        assert (waiting.status_code, waiting.headers["x-progress"]) == (202, "queued")
        health = (await client.get("/health")).json()["submissions"]
        assert health["queue_depth"] == 1 and health["oldest_waiting"] is not None
        assert (await client.delete(status_path)).status_code == 202
        assert (await client.get(status_path)).status_code == 404
        assert (await client.delete(status_path)).status_code == 404
        assert (await client.get("/fhir/$async-status/unknown")).status_code == 404


@pytest.mark.parametrize("deployment", ["embedded", "mongo"])
async def test_the_in_process_runner_starts_a_submission_on_its_wake_up(
    deployment: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the runner's poll an hour long, each submission still runs at once: the submit
    wakes the runner, whose round sees it due (arriving while the runner waits, after the last
    round, is what every submission of an idle server does)."""
    monkeypatch.setattr(inprocess, "SUBMISSION_POLL_SECONDS", 3600.0)
    async with client_with(PLAIN_FHIR, deployment, tmp_path) as client:
        for n in range(3):
            await asyncio.sleep(0.05)  # the runner is idle, waiting
            basic = {"resourceType": "Basic", "code": {"text": f"b{n}"}}
            status_path = await submit(client, basic, "/fhir/Basic")
            done = await finished(client, status_path, timeout=10.0)
            assert (n, done.status_code, done.headers["x-original-status"]) == (n, 200, "201")


async def test_a_finished_submission_cannot_be_cancelled(client: AsyncTestClient[Any]) -> None:
    status_path = await submit(client, {"resourceType": "Basic"}, "/fhir/Basic")
    await finished(client, status_path)
    assert (await client.delete(status_path)).status_code == 409
    assert (await client.get(status_path)).status_code == 200


async def test_results_expire_410_then_404(store: str, tmp_path: Path) -> None:
    async with client_with({"MICDR_ASYNC_RESULT_TTL": "1"}, store, tmp_path) as client:
        status_path = await submit(client, {"resourceType": "Basic"}, "/fhir/Basic")
        assert (await finished(client, status_path)).status_code == 200
        await asyncio.sleep(1.2)
        assert (await client.get(status_path)).status_code == 410
        for _ in range(100):  # purged a TTL later
            if (await client.get(status_path)).status_code == 404:
                break
            await asyncio.sleep(0.1)
        assert (await client.get(status_path)).status_code == 404


@pytest.fixture
async def callback_server() -> AsyncIterator[Receiver]:
    async with receiver() as server:
        yield server


async def test_the_outcome_is_pushed_signed_to_the_registered_callback(
    store: str, tmp_path: Path, callback_server: Receiver
) -> None:
    secret = "s3cret"
    callbacks = {
        "hospital-a": {"url": callback_server.url, "secret": secret},
        "hospital-b": {"url": "http://127.0.0.1:9/closed", "secret": "x"},
    }
    env = {"MICDR_ASYNC_CALLBACKS": json.dumps(callbacks)}
    async with client_with(env, store, tmp_path) as client:
        status_path = await submit(client, episode(1), **{"X-Micdr-Contributor": "hospital-a"})
        pushed = (await callback_server.wait_for(lambda r: len(r) > 0, 30))[0]
        headers, raw = pushed.headers, pushed.raw
        assert headers["x-original-status"] == "200"
        assert path_of(headers["content-location"]) == status_path
        stamp, _, mac = headers["x-micdr-signature"].partition(",sha256=")
        timestamp = stamp.removeprefix("t=")
        expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256)
        assert hmac.compare_digest(mac, expected.hexdigest())
        assert json.loads(raw)["type"] == "transaction-response"
        for _ in range(100):  # the attempt is recorded once the POST returned
            done = await client.get(status_path)
            if done.headers["x-callback-delivery"].startswith("delivered"):
                break
            await asyncio.sleep(0.05)
        assert done.headers["x-callback-delivery"] == "delivered; attempts=1"
        assert json.loads(raw) == done.json()

        failing = await submit(client, episode(2), **{"X-Micdr-Contributor": "hospital-b"})
        result = await finished(client, failing)
        for _ in range(100):
            result = await client.get(failing)
            if "error=" in result.headers.get("x-callback-delivery", ""):
                break
            await asyncio.sleep(0.05)
        assert result.headers["x-callback-delivery"].startswith("pending; attempts=")
        assert "error=" in result.headers["x-callback-delivery"]


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
async def test_an_asynchronous_request_too_large_for_a_mongodb_document_is_refused_when_sent(
    deployment: str, tmp_path: Path
) -> None:
    """On MongoDB a submission (its request, then the resources it wrote and its answer) is one
    document of at most 16 MB: a request of more than 4 MiB is refused with 413 before anything
    is stored, instead of a 500 or a failure after its commits. The embedded store has no such
    limit and runs it."""
    entries = [
        {
            "resource": {"resourceType": "Basic", "code": {"text": "x" * 200_000}},
            "request": {"method": "POST", "url": "Basic"},
        }
        for _ in range(22)
    ]
    body = {"resourceType": "Bundle", "type": "batch", "entry": entries}
    async with client_with({}, deployment, tmp_path) as client:
        answer = await client.post("/fhir", json=body, headers={"Prefer": "respond-async"})
        if deployment == "embedded":
            assert answer.status_code == 202
            done = await finished(client, answer.headers["content-location"], timeout=120.0)
            statuses = [e["response"]["status"] for e in done.json()["entry"]]
            assert statuses == ["201 Created"] * 22
            return
        assert answer.status_code == 413
        issue = answer.json()["issue"][0]
        size = len(json.dumps({"body": body}, separators=(",", ":")))
        assert issue["code"] == "too-costly"
        assert issue["diagnostics"].startswith(
            "an asynchronous request may hold at most 4194304 bytes of JSON on this server "
            "(this one holds "
        )
        held = int(issue["diagnostics"].split("(this one holds ")[1].split(")")[0])
        assert size < held < size + 2000  # the body and the request's method, base and headers
        assert (await client.get("/health")).json()["submissions"]["queue_depth"] == 0
