"""capabilities (http.html#capabilities): `GET [base]/metadata` answers a CapabilityStatement
that says exactly what the routes do."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from app.fhir.validate import validate_resource
from app.fhir.xml import parse_xml


async def metadata(client: AsyncTestClient[Any]) -> dict[str, Any]:
    response = await client.get("/fhir/metadata")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def test_capability_statement_is_a_valid_r4_resource(client: AsyncTestClient[Any]) -> None:
    body = await metadata(client)
    validate_resource(body)
    assert (body["resourceType"], body["kind"], body["fhirVersion"]) == (
        "CapabilityStatement",
        "instance",
        "4.0.1",
    )
    assert body["format"] == ["application/fhir+json", "application/fhir+xml"]
    assert body["implementation"]["url"] == "http://micdr.local/fhir"


async def test_every_resource_type_lists_the_instance_and_type_interactions(
    client: AsyncTestClient[Any],
) -> None:
    body = await metadata(client)
    resources = body["rest"][0]["resource"]
    assert len(resources) == 146
    patient = next(r for r in resources if r["type"] == "Patient")
    assert [i["code"] for i in patient["interaction"]] == [
        "read",
        "vread",
        "update",
        "patch",
        "delete",
        "history-instance",
        "history-type",
        "create",
        "search-type",
    ]
    assert (patient["versioning"], patient["conditionalDelete"]) == ("versioned-update", "single")
    assert patient["conditionalCreate"] is True and patient["conditionalUpdate"] is True


async def test_system_interactions_are_transaction_batch_search_and_history(
    client: AsyncTestClient[Any],
) -> None:
    body = await metadata(client)
    assert [i["code"] for i in body["rest"][0]["interaction"]] == [
        "transaction",
        "batch",
        "search-system",
        "history-system",
    ]


async def test_every_routed_interaction_is_declared(client: AsyncTestClient[Any]) -> None:
    from app.http.routes import TABLE

    body = await metadata(client)
    declared = {i["code"] for i in body["rest"][0]["interaction"]} | {
        i["code"] for i in body["rest"][0]["resource"][0]["interaction"]
    }
    assert {row.code for row in TABLE if not row.operation} <= declared
    operations = {
        (r["type"], o["name"], o["definition"])
        for r in body["rest"][0]["resource"]
        for o in r.get("operation", [])
    }
    bulk_data = {
        ("Patient", "export", "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"),
        ("Group", "export", "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"),
        ("Patient", "everything", "http://hl7.org/fhir/OperationDefinition/Patient-everything"),
    }
    assert {
        (row.on, row.segments[-1][1:], row.operation) for row in TABLE if row.operation
    } | bulk_data == operations


async def test_metadata_answers_xml_when_asked(client: AsyncTestClient[Any]) -> None:
    response = await client.get("/fhir/metadata", params={"_format": "xml"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/fhir+xml; charset=utf-8"
    assert parse_xml(response.content)["fhirVersion"] == "4.0.1"


async def test_the_subscription_entry_names_each_built_in_topic(
    client: AsyncTestClient[Any],
) -> None:
    """Subscriptions Backport IG: the topics a server offers are advertised on its Subscription
    resource entry with the subscriptiontopic-canonical extension."""
    statement = (await client.get("/fhir/metadata")).json()
    entry = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Subscription")
    url = (
        "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
        "capabilitystatement-subscriptiontopic-canonical"
    )
    assert entry["extension"] == [
        {"url": url, "valueCanonical": "http://micdr.org/fhir/SubscriptionTopic/imaging-report"},
        {"url": url, "valueCanonical": "http://micdr.org/fhir/SubscriptionTopic/imaging-study"},
        {"url": url, "valueCanonical": "http://micdr.org/fhir/SubscriptionTopic/order-status"},
    ]
