"""app/subscriptions/subscription.py: which Subscriptions are accepted (R4 subscription.html;
Backport IG backport-subscription), the settings kept from them, and header secrets kept out
of what is stored and read back."""

from __future__ import annotations

from typing import Any

import pytest

from app.subscriptions.subscription import (
    SUBSCRIPTION_PROFILE,
    Channel,
    InvalidSubscription,
    SubscriptionSettings,
    parse_subscription,
    shown,
    without_secrets,
)
from app.subscriptions.topics import BUILT_IN_TOPICS
from app.subscriptions.trigger import Criteria
from indexing.registry import SearchParamRegistry

BP = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
REPORT_TOPIC = "http://micdr.org/fhir/SubscriptionTopic/imaging-report"
TOPICS = {t.url: t for t in BUILT_IN_TOPICS}


@pytest.fixture(scope="module")
def criteria() -> Criteria:
    return Criteria(SearchParamRegistry.load())


def r4(**changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "new reports for my patient",
        "criteria": "DiagnosticReport?patient=Patient/p1&status=final",
        "channel": {
            "type": "rest-hook",
            "endpoint": "https://rx.example.org/hook",
            "header": ["Authorization: Bearer s3cret"],
        },
    }
    resource.update(changes)
    return resource


def topic_based(*filters: str, content: str | None = "full-resource") -> dict[str, Any]:
    channel: dict[str, Any] = {
        "type": "rest-hook",
        "endpoint": "https://rx.example.org/hook",
        "payload": "application/fhir+json",
        "extension": [
            {"url": BP + "backport-heartbeat-period", "valueUnsignedInt": 60},
            {"url": BP + "backport-timeout", "valueUnsignedInt": 30},
            {"url": BP + "backport-max-count", "valuePositiveInt": 20},
        ],
    }
    if content is not None:
        channel["_payload"] = {
            "extension": [{"url": BP + "backport-payload-content", "valueCode": content}]
        }
    return {
        "resourceType": "Subscription",
        "meta": {"profile": [SUBSCRIPTION_PROFILE]},
        "status": "requested",
        "reason": "reports",
        "end": "2027-01-01T00:00:00Z",
        "criteria": REPORT_TOPIC,
        "_criteria": {
            "extension": [
                {"url": BP + "backport-filter-criteria", "valueString": f} for f in filters
            ]
        },
        "channel": channel,
    }


def test_an_r4_criteria_subscription_keeps_its_search_and_headers(criteria: Criteria) -> None:
    assert parse_subscription(r4(), TOPICS, criteria) == SubscriptionSettings(
        style="criteria",
        criteria="DiagnosticReport?patient=Patient/p1&status=final",
        resource_types=frozenset({"DiagnosticReport"}),
        filters=(),
        content="empty",
        channel=Channel("https://rx.example.org/hook", None, ("Authorization: Bearer s3cret",)),
        end=None,
    )


def test_a_topic_subscription_keeps_topic_filters_content_and_channel(criteria: Criteria) -> None:
    resource = topic_based(
        "DiagnosticReport?patient=Patient/p1", "DiagnosticReport?patient.identifier=https://hcn|1"
    )
    assert parse_subscription(resource, TOPICS, criteria) == SubscriptionSettings(
        style="topic",
        criteria=REPORT_TOPIC,
        resource_types=frozenset({"DiagnosticReport"}),
        filters=(
            "DiagnosticReport?patient=Patient/p1",
            "DiagnosticReport?patient.identifier=https://hcn|1",
        ),
        content="full-resource",
        channel=Channel("https://rx.example.org/hook", "application/fhir+json", (), 60, 30, 20),
        end="2027-01-01T00:00:00Z",
    )


def test_a_topic_subscription_defaults_to_id_only(criteria: Criteria) -> None:
    settings = parse_subscription(topic_based(content=None), TOPICS, criteria)
    assert settings.content == "id-only"


@pytest.mark.parametrize(
    ("resource", "code", "expression", "message"),
    [
        (r4(status="active"), "invalid", "Subscription.status", "must be 'requested' or 'off'"),
        (r4(channel=None), "invalid", "Subscription.channel", "needs a channel"),
        (
            r4(channel={"type": "websocket"}),
            "not-supported",
            "Subscription.channel.type",
            "only rest-hook",
        ),
        (
            r4(channel={"type": "rest-hook"}),
            "invalid",
            "Subscription.channel.endpoint",
            "needs an endpoint",
        ),
        (
            r4(channel={"type": "rest-hook", "endpoint": "https://10.0.0.1/x"}),
            "security",
            "Subscription.channel.endpoint",
            "internal address",
        ),
        (
            r4(channel={"type": "rest-hook", "endpoint": "http://rx.example.org/x"}),
            "security",
            "Subscription.channel.endpoint",
            "must use https",
        ),
        (
            r4(channel={"type": "rest-hook", "endpoint": "https://a.org/", "header": ["x"]}),
            "invalid",
            "Subscription.channel.header",
            "'Name: value'",
        ),
        (r4(criteria=" "), "invalid", "Subscription.criteria", "needs criteria"),
        (r4(criteria="DiagnosticReport?bogus=1"), "invalid", "Subscription.criteria", "bogus"),
        (
            {**topic_based(), "criteria": "http://example.org/unknown-topic"},
            "not-supported",
            "Subscription.criteria",
            "not a topic of this server",
        ),
        (
            topic_based("DiagnosticReport?status=final"),
            "invalid",
            "Subscription.criteria",
            "cannot filter DiagnosticReport by 'status'",
        ),
        (
            topic_based("ImagingStudy?patient=Patient/1"),
            "invalid",
            "Subscription.criteria",
            "no trigger on ImagingStudy",
        ),
        (
            topic_based(content="everything"),
            "invalid",
            "Subscription.channel.payload",
            "not one of empty, id-only, full-resource",
        ),
    ],
)
def test_an_invalid_subscription_is_refused_precisely(
    criteria: Criteria, resource: dict[str, Any], code: str, expression: str, message: str
) -> None:
    with pytest.raises(InvalidSubscription) as raised:
        parse_subscription(resource, TOPICS, criteria)
    assert (raised.value.code, raised.value.expression) == (code, expression)
    assert message in raised.value.diagnostics


def test_an_allow_listed_internal_endpoint_is_accepted(criteria: Criteria) -> None:
    resource = r4(channel={"type": "rest-hook", "endpoint": "https://10.0.0.1/x"})
    assert parse_subscription(resource, TOPICS, criteria, ["10.0.0.1"]).channel.endpoint == (
        "https://10.0.0.1/x"
    )


def test_the_server_may_store_an_active_subscription(criteria: Criteria) -> None:
    settings = parse_subscription(r4(status="active"), TOPICS, criteria, creating=False)
    assert settings.style == "criteria"


def test_header_values_never_leave_the_server() -> None:
    resource = r4()
    resource["channel"]["header"] = ["Authorization: Bearer s3cret", "X-Tenant:  42"]
    stored = without_secrets(resource)
    assert stored["channel"]["header"] == ["Authorization: [redacted]", "X-Tenant: [redacted]"]
    assert resource["channel"]["header"][0] == "Authorization: Bearer s3cret"  # not modified
    assert "s3cret" not in repr(stored)
    assert without_secrets(topic_based()) == topic_based()  # nothing to hide


def test_a_response_body_shows_no_header_value_at_any_depth() -> None:
    inner = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r4()}]}
    body = {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [{"resource": r4()}, {"resource": inner}, {"response": {"status": "404"}}],
    }
    assert shown(body) == {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [
            {"resource": without_secrets(r4())},
            {
                "resource": {
                    "resourceType": "Bundle",
                    "type": "searchset",
                    "entry": [{"resource": without_secrets(r4())}],
                }
            },
            {"response": {"status": "404"}},
        ],
    }
    patient = {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient"}}]}
    assert shown(patient) is patient  # nothing to hide: not even copied


def test_the_read_placeholder_is_refused_as_a_header_value(criteria: Criteria) -> None:
    resource = r4()
    resource["channel"]["header"] = ["Authorization: [redacted]"]
    with pytest.raises(InvalidSubscription, match="send the header's value again"):
        parse_subscription(resource, TOPICS, criteria)
