"""transaction-response and batch-response entries (http.html#transaction-response, bundle.html
`Bundle.entry.response`; issue 16): every entry that names a resource version carries
`response.location` (`Type/id/_history/n`), `response.etag` and `response.lastModified`, whatever
its status, and `Prefer: return=...` applies per entry as it does to a write alone."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest
from litestar.testing import AsyncTestClient

from tests.conformance import _clients
from tests.conformance.conftest import finished

Client = AsyncTestClient[Any]
plain_client = _clients.plain_client  # a fixture: IG mode off

SYSTEM = "urn:example:mrn"


def patient(family: str, mrn: str | None = None, id_: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Patient", "name": [{"family": family}]}
    if mrn is not None:
        body["identifier"] = [{"system": SYSTEM, "value": mrn}]
    if id_ is not None:
        body["id"] = id_
    return body


async def seeded(client: Client) -> dict[str, dict[str, Any]]:
    """Patients to update, leave unchanged, match, delete and find deleted, by role."""
    run = uuid.uuid4().hex  # a test may seed twice: its identifiers must not match twice
    roles = {
        "changed": patient("Changed", f"changed-{run}"),
        "same": patient("Same", f"same-{run}"),
        "matched-put": patient("MatchedPut", f"put-{run}"),
        "matched-post": patient("MatchedPost", f"post-{run}"),
        "deleted": patient("Deleted"),
        "gone": patient("Gone"),
    }
    stored = {}
    for role, body in roles.items():
        response = await client.post("/fhir/Patient", json=body)
        assert response.status_code == 201, response.text
        stored[role] = response.json()
    gone = stored["gone"]["id"]
    assert (await client.delete(f"/fhir/Patient/{gone}")).status_code == 204
    return stored


def requests(stored: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry of each kind; the expected status and version follow in EXPECTED."""
    changed, same = stored["changed"], stored["same"]

    def mrn(role: str) -> str:
        return str(stored[role]["identifier"][0]["value"])

    return [
        {
            "fullUrl": "urn:uuid:8c3f0f1e-0000-4000-8000-000000000001",
            "resource": patient("Created"),
            "request": {"method": "POST", "url": "Patient"},
        },
        {
            "resource": {**patient("Changed again", mrn("changed")), "id": changed["id"]},
            "request": {"method": "PUT", "url": f"Patient/{changed['id']}"},
        },
        {
            "resource": {**patient("Same", mrn("same")), "id": same["id"]},
            "request": {"method": "PUT", "url": f"Patient/{same['id']}"},
        },
        {
            "resource": patient("MatchedPut", mrn("matched-put")),
            "request": {
                "method": "PUT",
                "url": f"Patient?identifier={SYSTEM}|{mrn('matched-put')}",
            },
        },
        {
            "resource": patient("MatchedPost", mrn("matched-post")),
            "request": {
                "method": "POST",
                "url": "Patient",
                "ifNoneExist": f"identifier={SYSTEM}|{mrn('matched-post')}",
            },
        },
        {"request": {"method": "DELETE", "url": f"Patient/{stored['deleted']['id']}"}},
        {"request": {"method": "DELETE", "url": f"Patient/{stored['gone']['id']}"}},
    ]


# (status, role whose id the entry names or None for a new one, version it names)
EXPECTED = [
    ("201 Created", None, 1),
    ("200 OK", "changed", 2),  # an update
    ("200 OK", "same", 1),  # identical content: a no-op names the current version
    ("200 OK", "matched-put", 1),  # a conditional update that matched, unchanged
    ("200 OK", "matched-post", 1),  # a conditional create that matched
    ("204 No Content", "deleted", 2),  # the deletion's version
    ("204 No Content", "gone", 2),  # already deleted: the deleted version
]


async def submitted(client: Client, kind: str, prefer: str | None = None) -> Any:
    stored = await seeded(client)
    body = {"resourceType": "Bundle", "type": kind, "entry": requests(stored)}
    headers = {"Prefer": f"return={prefer}"} if prefer else {}
    response = await client.post("/fhir", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return stored, response.json()


async def check_names_every_version(
    client: Client, stored: dict[str, dict[str, Any]], answer: dict[str, Any]
) -> None:
    assert [e["response"]["status"] for e in answer["entry"]] == [s for s, _, _ in EXPECTED]
    for entry, (_, role, version) in zip(answer["entry"], EXPECTED, strict=True):
        response = entry["response"]
        id_ = entry["fullUrl"].rsplit("/", 1)[1]
        if role is not None:
            assert id_ == stored[role]["id"], entry
        assert response["location"] == f"Patient/{id_}/_history/{version}", entry
        assert response["etag"] == f'W/"{version}"', entry
        history = (await client.get(f"/fhir/Patient/{id_}/_history")).json()
        named = next(e for e in history["entry"] if e["response"]["etag"] == f'W/"{version}"')
        assert response["lastModified"] == named["response"]["lastModified"], entry


@pytest.mark.parametrize("kind", ["transaction", "batch"])
async def test_every_entry_names_the_version_it_touched(plain_client: Client, kind: str) -> None:
    stored, answer = await submitted(plain_client, kind)
    await check_names_every_version(plain_client, stored, answer)


@pytest.mark.parametrize("kind", ["transaction", "batch"])
async def test_return_minimal_is_the_default_and_leaves_out_the_resources(
    plain_client: Client, kind: str
) -> None:
    for prefer in (None, "minimal"):
        _, answer = await submitted(plain_client, kind, prefer)
        assert [sorted(e) for e in answer["entry"]] == [["fullUrl", "response"]] * 7
        assert all("outcome" not in e["response"] for e in answer["entry"])


@pytest.mark.parametrize("kind", ["transaction", "batch"])
async def test_return_representation_carries_each_stored_version(
    plain_client: Client, kind: str
) -> None:
    stored, answer = await submitted(plain_client, kind, "representation")
    await check_names_every_version(plain_client, stored, answer)
    written = answer["entry"][:5]  # the deletes have no resource to represent
    for entry in written:
        version = await plain_client.get(f"/fhir/{entry['response']['location']}")
        assert entry["resource"] == version.json()
    assert [("resource" in e) for e in answer["entry"][5:]] == [False, False]


@pytest.mark.parametrize("kind", ["transaction", "batch"])
async def test_return_operation_outcome_answers_an_outcome_per_entry(
    plain_client: Client, kind: str
) -> None:
    stored, answer = await submitted(plain_client, kind, "OperationOutcome")
    await check_names_every_version(plain_client, stored, answer)
    assert all("resource" not in e for e in answer["entry"])
    outcomes = [e["response"]["outcome"] for e in answer["entry"]]
    assert [o["resourceType"] for o in outcomes] == ["OperationOutcome"] * 7
    assert [[i["severity"] for i in o["issue"]] for o in outcomes] == [["information"]] * 7
    assert outcomes[1]["issue"][0]["diagnostics"] == (
        f"PUT Patient/{stored['changed']['id']} succeeded with status 200"
    )


async def test_a_batch_delete_of_an_unknown_id_says_why(plain_client: Client) -> None:
    body = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "DELETE", "url": "Patient/unknown"}}],
    }
    answer = (await plain_client.post("/fhir", json=body)).json()
    assert answer["entry"] == [
        {
            "response": {
                "status": "404 Not Found",
                "outcome": {
                    "resourceType": "OperationOutcome",
                    "issue": [
                        {
                            "severity": "error",
                            "code": "not-found",
                            "diagnostics": "Patient/unknown is not known",
                        }
                    ],
                },
            }
        }
    ]


async def test_read_entries_name_the_version_they_answer(plain_client: Client) -> None:
    created = (await plain_client.post("/fhir/Patient", json=patient("Read"))).json()
    id_ = created["id"]
    body = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": f"Patient/{id_}"}},
            {"request": {"method": "GET", "url": f"Patient/{id_}/_history/1"}},
        ],
    }
    answer = (await plain_client.post("/fhir", json=body)).json()
    for entry in answer["entry"]:
        assert entry["fullUrl"].endswith(f"/fhir/Patient/{id_}")
        assert entry["response"] == {
            "status": "200 OK",
            "location": f"Patient/{id_}/_history/1",
            "etag": 'W/"1"',
            "lastModified": created["meta"]["lastUpdated"],
        }
        assert entry["resource"] == created


async def test_an_asynchronous_transaction_answers_the_same_entries(plain_client: Client) -> None:
    stored = await seeded(plain_client)
    body = {"resourceType": "Bundle", "type": "transaction", "entry": requests(stored)}
    accepted = await plain_client.post("/fhir", json=body, headers={"Prefer": "respond-async"})
    assert accepted.status_code == 202, accepted.text
    status_path = urlsplit(accepted.headers["content-location"]).path
    result = await finished(plain_client, status_path)
    assert result.status_code == 200
    assert result.headers["x-original-status"] == "200"
    await check_names_every_version(plain_client, stored, result.json())
