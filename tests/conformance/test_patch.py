"""patch (http.html#patch): JSON Patch (`application/json-patch+json`) and FHIRPath Patch
(a `Parameters` body, fhirpatch.html); a patch that does not apply is a 422."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

PATIENT = {"resourceType": "Patient", "name": [{"family": "Tremblay"}], "gender": "female"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}


async def created(client: AsyncTestClient[Any]) -> str:
    return str((await client.post("/fhir/Patient", json=PATIENT)).json()["id"])


def fhirpath_patch(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": [{"name": "operation", "part": list(parts)}]}


async def test_json_patch_writes_a_new_version(client: AsyncTestClient[Any]) -> None:
    id_ = await created(client)
    ops = [{"op": "replace", "path": "/gender", "value": "male"}]
    response = await client.patch(f"/fhir/Patient/{id_}", content=_json(ops), headers=JSON_PATCH)
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == 'W/"2"'
    body = response.json()
    assert body["gender"] == "male"
    assert body["name"] == [{"family": "Tremblay"}]
    assert (await client.get(f"/fhir/Patient/{id_}")).json()["gender"] == "male"


async def test_fhirpath_patch_replaces_an_element(client: AsyncTestClient[Any]) -> None:
    id_ = await created(client)
    body = fhirpath_patch(
        {"name": "type", "valueCode": "replace"},
        {"name": "path", "valueString": "Patient.gender"},
        {"name": "value", "valueCode": "other"},
    )
    response = await client.patch(
        f"/fhir/Patient/{id_}", json=body, headers={"Content-Type": "application/fhir+json"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["gender"] == "other"
    assert response.json()["meta"]["versionId"] == "2"


async def test_fhirpath_patch_adds_an_element(client: AsyncTestClient[Any]) -> None:
    id_ = await created(client)
    body = fhirpath_patch(
        {"name": "type", "valueCode": "add"},
        {"name": "path", "valueString": "Patient"},
        {"name": "name", "valueString": "birthDate"},
        {"name": "value", "valueDate": "1930-01-01"},
    )
    response = await client.patch(f"/fhir/Patient/{id_}", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["birthDate"] == "1930-01-01"


async def test_fhirpath_patch_that_does_not_apply_is_422(client: AsyncTestClient[Any]) -> None:
    id_ = await created(client)
    body = fhirpath_patch(
        {"name": "type", "valueCode": "replace"},
        {"name": "path", "valueString": "Patient.birthDate"},
        {"name": "value", "valueDate": "1930-01-01"},
    )
    response = await client.patch(f"/fhir/Patient/{id_}", json=body)
    assert response.status_code == 422
    assert response.json()["issue"] == [
        {
            "severity": "error",
            "code": "processing",
            "diagnostics": "replace: path 'Patient.birthDate' selects nothing in this resource",
            "expression": ["Parameters.parameter[0]"],
        }
    ]


async def test_json_patch_test_op_failure_is_422(client: AsyncTestClient[Any]) -> None:
    id_ = await created(client)
    ops = [{"op": "test", "path": "/gender", "value": "male"}]
    response = await client.patch(f"/fhir/Patient/{id_}", content=_json(ops), headers=JSON_PATCH)
    assert response.status_code == 422
    assert response.json()["issue"][0]["code"] == "processing"


async def test_patch_that_changes_the_id_is_400(client: AsyncTestClient[Any]) -> None:
    id_ = await created(client)
    ops = [{"op": "replace", "path": "/id", "value": "other"}]
    response = await client.patch(f"/fhir/Patient/{id_}", content=_json(ops), headers=JSON_PATCH)
    assert response.status_code == 400
    assert response.json()["issue"][0]["diagnostics"] == (
        "a patch may not change id or resourceType"
    )


async def test_patch_producing_an_invalid_resource_is_400(client: AsyncTestClient[Any]) -> None:
    id_ = await created(client)
    ops = [{"op": "replace", "path": "/gender", "value": "purple"}]
    response = await client.patch(f"/fhir/Patient/{id_}", content=_json(ops), headers=JSON_PATCH)
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["Patient.gender"]


async def test_patch_of_an_unknown_id_is_404(client: AsyncTestClient[Any]) -> None:
    ops = [{"op": "replace", "path": "/gender", "value": "male"}]
    response = await client.patch("/fhir/Patient/nope", content=_json(ops), headers=JSON_PATCH)
    assert response.status_code == 404
    assert response.json()["issue"][0]["code"] == "not-found"


async def test_patch_of_a_deleted_resource_is_410(client: AsyncTestClient[Any]) -> None:
    id_ = await created(client)
    await client.delete(f"/fhir/Patient/{id_}")
    ops = [{"op": "replace", "path": "/gender", "value": "male"}]
    response = await client.patch(f"/fhir/Patient/{id_}", content=_json(ops), headers=JSON_PATCH)
    assert response.status_code == 410
    assert response.json()["issue"][0]["code"] == "deleted"


async def test_patch_with_stale_if_match_is_412(client: AsyncTestClient[Any]) -> None:
    id_ = await created(client)
    ops = [{"op": "replace", "path": "/gender", "value": "male"}]
    response = await client.patch(
        f"/fhir/Patient/{id_}", content=_json(ops), headers={**JSON_PATCH, "If-Match": 'W/"9"'}
    )
    assert response.status_code == 412
    assert response.json()["issue"][0]["code"] == "conflict"


async def test_conditional_patch_changes_the_one_match(client: AsyncTestClient[Any]) -> None:
    body = {**PATIENT, "identifier": [{"system": "http://mrn", "value": "42"}]}
    id_ = (await client.post("/fhir/Patient", json=body)).json()["id"]
    ops = [{"op": "replace", "path": "/gender", "value": "male"}]
    response = await client.patch(
        "/fhir/Patient?identifier=http://mrn|42", content=_json(ops), headers=JSON_PATCH
    )
    assert response.status_code == 200
    assert response.json()["id"] == id_
    assert response.json()["gender"] == "male"


def _json(value: Any) -> bytes:
    import json

    return json.dumps(value).encode()
