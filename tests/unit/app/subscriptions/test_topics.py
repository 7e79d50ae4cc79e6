"""app/subscriptions/topics.py: the built-in topics, and run-time topics as R4 `Basic` resources
with the cross-version SubscriptionTopic profile (Backport IG; R5 SubscriptionTopic elements as
extensions)."""

from __future__ import annotations

from typing import Any

import pytest

from app.subscriptions.topics import (
    BUILT_IN_TOPICS,
    SUBSCRIPTION_TOPIC_PROFILE,
    FilterDefinition,
    InvalidTopic,
    QueryCriteria,
    ResourceTrigger,
    Topic,
    topic_from_basic,
)

EXT = "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic."


def basic(*extensions: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Basic",
        "meta": {"profile": [SUBSCRIPTION_TOPIC_PROFILE]},
        "code": {
            "coding": [{"system": "http://hl7.org/fhir/fhir-types", "code": "SubscriptionTopic"}]
        },
        "extension": list(extensions),
    }


URL = {"url": EXT + "url", "valueUri": "http://example.org/topic/ct-final"}
STATUS = {"url": EXT + "status", "valueCode": "active"}
TRIGGER = {
    "url": EXT + "resourceTrigger",
    "extension": [
        {"url": "resource", "valueUri": "http://hl7.org/fhir/StructureDefinition/DiagnosticReport"},
        {"url": "supportedInteraction", "valueCode": "create"},
        {"url": "supportedInteraction", "valueCode": "update"},
        {
            "url": "queryCriteria",
            "extension": [
                {"url": "previous", "valueString": "status:not=final"},
                {"url": "resultForCreate", "valueCode": "test-passes"},
                {"url": "current", "valueString": "status=final"},
                {"url": "resultForDelete", "valueCode": "test-fails"},
                {"url": "requireBoth", "valueBoolean": True},
            ],
        },
        {"url": "fhirPathCriteria", "valueString": "%current.code.exists()"},
    ],
}
FILTER = {
    "url": EXT + "canFilterBy",
    "extension": [
        {"url": "resource", "valueUri": "DiagnosticReport"},
        {"url": "filterParameter", "valueString": "patient"},
    ],
}


def test_a_basic_topic_reads_every_element_it_defines() -> None:
    assert topic_from_basic(basic(URL, STATUS, TRIGGER, FILTER)) == Topic(
        url="http://example.org/topic/ct-final",
        title="http://example.org/topic/ct-final",
        status="active",
        triggers=(
            ResourceTrigger(
                "DiagnosticReport",
                frozenset({"create", "update"}),
                QueryCriteria(
                    "status:not=final", "status=final", True, "test-passes", "test-fails"
                ),
                "%current.code.exists()",
            ),
        ),
        filters=(FilterDefinition("DiagnosticReport", "patient", "patient"),),
    )


def test_a_trigger_without_interactions_supports_all_three() -> None:
    trigger = {"url": EXT + "resourceTrigger", "extension": [TRIGGER["extension"][0]]}
    topic = topic_from_basic(basic(URL, STATUS, trigger))
    assert topic.triggers[0].interactions == frozenset({"create", "update", "delete"})
    assert topic.triggers[0].query is None


@pytest.mark.parametrize(
    ("extensions", "message"),
    [
        ((STATUS, TRIGGER), r"extension\[url\]"),
        ((URL, TRIGGER), r"extension\[status\]"),
        ((URL, {"url": EXT + "status", "valueCode": "live"}, TRIGGER), "publication status"),
        ((URL, STATUS), "at least one trigger"),
        ((URL, URL, STATUS, TRIGGER), "at most one"),
        (
            (
                URL,
                STATUS,
                {
                    "url": EXT + "resourceTrigger",
                    "extension": [
                        {"url": "resource", "valueUri": "DiagnosticReport"},
                        {"url": "supportedInteraction", "valueCode": "read"},
                    ],
                },
            ),
            "unknown",
        ),
        (
            (
                URL,
                STATUS,
                {
                    "url": EXT + "resourceTrigger",
                    "extension": [{"url": "resource", "valueUri": "x"}],
                },
            ),
            "resource type",
        ),
    ],
)
def test_a_basic_that_defines_no_topic_is_refused_with_the_element(
    extensions: tuple[dict[str, Any], ...], message: str
) -> None:
    with pytest.raises(InvalidTopic, match=message):
        topic_from_basic(basic(*extensions))


def test_the_built_in_topics_offer_the_filters_the_issue_names() -> None:
    assert {t.url: sorted(f.code for f in t.filters) for t in BUILT_IN_TOPICS} == {
        "http://micdr.org/fhir/SubscriptionTopic/imaging-report": [
            "code",
            "patient",
            "patient.identifier",
            "performer",
        ],
        "http://micdr.org/fhir/SubscriptionTopic/imaging-study": [
            "modality",
            "patient",
            "patient.identifier",
        ],
        "http://micdr.org/fhir/SubscriptionTopic/order-status": [
            "patient",
            "patient.identifier",
            "requester",
        ],
    }
