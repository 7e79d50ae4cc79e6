"""The Subscription resource's own rules: what a valid R4 or Backport subscription is, the
settings the server keeps from it, and the copy of it that may be stored and read back.

Two styles share the R4 resource (subscription.html; Backport IG, backport-subscription):
- criteria: `criteria` is a search URL (`DiagnosticReport?patient=Patient/1`);
- topic-based: `criteria` is a topic's canonical URL, the filters are repeated
  `backport-filter-criteria` extensions on `criteria`, the content level is the
  `backport-payload-content` extension on `channel.payload`, and `channel` may carry
  `backport-heartbeat-period`, `backport-timeout` and `backport-max-count`.

Only `rest-hook` channels are delivered. A client creates a subscription `requested` (or
`off`); the server moves it to `active` after a successful handshake, or to `error`.
`channel.header` values are credentials for the receiver: they are kept apart from the
resource (`without_secrets`) and never read back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

import orjson

from app.fhir.outcome import FhirError
from app.subscriptions.endpoint import refusal
from app.subscriptions.topics import (
    SUBSCRIPTION_TOPIC_PROFILE,
    InvalidTopic,
    Topic,
    topic_from_basic,
)
from app.subscriptions.trigger import Criteria, InvalidCriteria, split_criteria

__all__ = [
    "SUBSCRIPTION_PROFILE",
    "Channel",
    "InvalidSubscription",
    "SubscriptionSettings",
    "check_written",
    "owner_of",
    "parse_subscription",
    "shown",
    "with_owner",
    "without_secrets",
]

_BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
SUBSCRIPTION_PROFILE = _BACKPORT + "backport-subscription"
FILTER_CRITERIA = _BACKPORT + "backport-filter-criteria"
PAYLOAD_CONTENT = _BACKPORT + "backport-payload-content"
HEARTBEAT_PERIOD = _BACKPORT + "backport-heartbeat-period"
TIMEOUT = _BACKPORT + "backport-timeout"
MAX_COUNT = _BACKPORT + "backport-max-count"
REDACTED = "[redacted]"
# Who wrote the subscription (their token's claims): notifications carry only what they may
# read, decided at each delivery. Set by the server on every write, never shown.
OWNER = "http://micdr.org/fhir/StructureDefinition/subscription-owner"
_CREATABLE = frozenset({"requested", "off"})


class InvalidSubscription(ValueError):
    """Why a Subscription is refused, and where (`expression`, a FHIRPath for the outcome)."""

    def __init__(self, diagnostics: str, expression: str, code: str = "invalid") -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        self.expression = expression
        self.code = code


Content = Literal["empty", "id-only", "full-resource"]
CONTENTS: tuple[Content, ...] = ("empty", "id-only", "full-resource")


@dataclass(frozen=True)
class Channel:
    """The rest-hook channel: where, with which headers, how often a heartbeat."""

    endpoint: str
    payload: str | None  # a MIME type, or None (R4 style: an empty POST)
    headers: tuple[str, ...]
    heartbeat_period: int | None = None  # seconds
    timeout: int | None = None  # seconds
    max_count: int | None = None


@dataclass(frozen=True)
class SubscriptionSettings:
    """What delivery needs from one Subscription, secrets included."""

    style: Literal["criteria", "topic"]
    criteria: str  # the search URL, or the topic's canonical
    resource_types: frozenset[str]  # the types whose changes are tested
    filters: tuple[str, ...]  # topic style: `Type?param=value`, each must hold
    content: Content
    channel: Channel
    end: str | None


def parse_subscription(
    resource: Mapping[str, Any],
    topics: Mapping[str, Topic],
    criteria: Criteria,
    allow_list: Iterable[str] = (),
    *,
    creating: bool = True,
) -> SubscriptionSettings:
    """The settings of a valid Subscription; raises InvalidSubscription naming the first
    problem. `topics` are the topics this server knows, by canonical URL."""
    status = resource.get("status")
    if creating and status not in _CREATABLE:
        raise InvalidSubscription(
            f"a new subscription must be 'requested' or 'off', not {status!r}: the server "
            "makes it active after a successful handshake",
            "Subscription.status",
        )
    channel = resource.get("channel")
    if not isinstance(channel, Mapping):
        raise InvalidSubscription("a subscription needs a channel", "Subscription.channel")
    if channel.get("type") != "rest-hook":
        raise InvalidSubscription(
            f"channel.type {channel.get('type')!r} is not supported: only rest-hook is delivered",
            "Subscription.channel.type",
            "not-supported",
        )
    endpoint = channel.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise InvalidSubscription(
            "a rest-hook channel needs an endpoint", "Subscription.channel.endpoint"
        )
    why = refusal(endpoint, allow_list)
    if why is not None:
        raise InvalidSubscription(why, "Subscription.channel.endpoint", "security")
    text = resource.get("criteria")
    if not isinstance(text, str) or not text.strip():
        raise InvalidSubscription("a subscription needs criteria", "Subscription.criteria")
    headers = tuple(h for h in channel.get("header") or [] if isinstance(h, str))
    for header in headers:
        name, colon, value = header.partition(":")
        if not colon or not name.strip():
            raise InvalidSubscription(
                f"channel.header {name!r} is not 'Name: value'", "Subscription.channel.header"
            )
        if value.strip() == REDACTED:
            raise InvalidSubscription(
                f"channel.header {name.strip()!r} holds the placeholder a read shows, not a "
                "value: send the header's value again",
                "Subscription.channel.header",
            )
    payload = channel.get("payload")
    extensions = _extensions(channel)
    settings = Channel(
        endpoint=endpoint,
        payload=payload if isinstance(payload, str) else None,
        headers=headers,
        heartbeat_period=_positive(extensions, HEARTBEAT_PERIOD, "heartbeat period"),
        timeout=_positive(extensions, TIMEOUT, "timeout"),
        max_count=_positive(extensions, MAX_COUNT, "max count"),
    )
    end = resource.get("end")
    end = end if isinstance(end, str) else None
    profiles = (resource.get("meta") or {}).get("profile") or []
    if SUBSCRIPTION_PROFILE in profiles or text in topics:
        return _topic_style(resource, text, topics, criteria, channel, settings, end)
    try:
        resource_type = criteria.check(text)
    except InvalidCriteria as error:
        raise InvalidSubscription(str(error), "Subscription.criteria") from None
    return SubscriptionSettings(
        style="criteria",
        criteria=text,
        resource_types=frozenset({resource_type}),
        filters=(),
        content="full-resource" if settings.payload else "empty",
        channel=settings,
        end=end,
    )


def _topic_style(
    resource: Mapping[str, Any],
    url: str,
    topics: Mapping[str, Topic],
    criteria: Criteria,
    channel: Mapping[str, Any],
    settings: Channel,
    end: str | None,
) -> SubscriptionSettings:
    topic = topics.get(url)
    if topic is None:
        raise InvalidSubscription(
            f"{url!r} is not a topic of this server (see CapabilityStatement)",
            "Subscription.criteria",
            "not-supported",
        )
    filters: list[str] = []
    for extension in (resource.get("_criteria") or {}).get("extension") or []:
        if extension.get("url") != FILTER_CRITERIA:
            continue
        value = extension.get("valueString")
        if not isinstance(value, str):
            raise InvalidSubscription(
                "a filter criteria extension needs a valueString", "Subscription.criteria"
            )
        try:
            resource_type, query = split_criteria(value)
            criteria.check(value)
        except InvalidCriteria as error:
            raise InvalidSubscription(str(error), "Subscription.criteria") from None
        if resource_type not in topic.resources:
            raise InvalidSubscription(
                f"filter {value!r}: the topic has no trigger on {resource_type}",
                "Subscription.criteria",
            )
        for name, _ in query:
            if topic.filter(resource_type, name.split(":", 1)[0]) is None:
                raise InvalidSubscription(
                    f"filter {value!r}: the topic cannot filter {resource_type} by {name!r}",
                    "Subscription.criteria",
                )
        filters.append(value)
    code: Any = "id-only"
    for extension in (channel.get("_payload") or {}).get("extension") or []:
        if extension.get("url") == PAYLOAD_CONTENT:
            code = extension.get("valueCode")
    content = next((c for c in CONTENTS if c == code), None)
    if content is None:
        raise InvalidSubscription(
            f"payload content {code!r} is not one of {', '.join(CONTENTS)}",
            "Subscription.channel.payload",
        )
    if settings.payload is None:
        settings = replace(settings, payload="application/fhir+json")
    return SubscriptionSettings(
        style="topic",
        criteria=url,
        resource_types=topic.resources,
        filters=tuple(filters),
        content=content,
        channel=settings,
        end=end,
    )


def _extensions(element: Mapping[str, Any]) -> dict[str, Any]:
    return {
        e["url"]: e
        for e in element.get("extension") or []
        if isinstance(e, Mapping) and isinstance(e.get("url"), str)
    }


def _positive(extensions: Mapping[str, Any], url: str, what: str) -> int | None:
    extension = extensions.get(url)
    if extension is None:
        return None
    value = extension.get("valueUnsignedInt", extension.get("valuePositiveInt"))
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidSubscription(
            f"the {what} must be a positive integer", "Subscription.channel.extension"
        )
    return value


def shown(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """A response body as it may leave the server: every Subscription in it, alone or in a
    Bundle's entries, `without_secrets`; anything else unchanged (and not copied)."""
    resource_type = body.get("resourceType")
    if resource_type == "Subscription":
        return without_secrets(body)
    if resource_type != "Bundle" or not any(
        isinstance(e, Mapping)
        and isinstance(e.get("resource"), Mapping)
        and e["resource"].get("resourceType") in {"Subscription", "Bundle"}
        for e in body.get("entry") or []
    ):
        return body
    entries = [
        {**e, "resource": shown(e["resource"])}
        if isinstance(e, Mapping) and isinstance(e.get("resource"), Mapping)
        else e
        for e in body.get("entry") or []
    ]
    return {**body, "entry": entries}


def with_owner(resource: dict[str, Any], owner: Mapping[str, Any]) -> None:
    """Record, in place, who writes this Subscription (their claims, as
    `Principal.to_json`), replacing whatever owner the client sent."""
    kept = [e for e in resource.get("extension") or [] if not _is_owner(e)]
    resource["extension"] = [*kept, {"url": OWNER, "valueString": orjson.dumps(owner).decode()}]


def owner_of(resource: Mapping[str, Any]) -> dict[str, Any] | None:
    """The claims `with_owner` recorded, or None (a subscription written before owners were)."""
    for extension in resource.get("extension") or []:
        if _is_owner(extension) and isinstance(extension.get("valueString"), str):
            owner = orjson.loads(extension["valueString"])
            return owner if isinstance(owner, dict) else None
    return None


def _is_owner(extension: Any) -> bool:
    return isinstance(extension, Mapping) and extension.get("url") == OWNER


def without_secrets(resource: Mapping[str, Any]) -> dict[str, Any]:
    """The Subscription as it is read back: each `channel.header` keeps its name, its value
    is replaced, so reads and history never disclose a receiver's credentials; the owner's
    claims are left out."""
    copy = dict(resource)
    if any(_is_owner(e) for e in copy.get("extension") or []):
        kept = [e for e in copy["extension"] if not _is_owner(e)]
        if kept:
            copy["extension"] = kept
        else:
            del copy["extension"]
    channel = copy.get("channel")
    if isinstance(channel, Mapping) and channel.get("header"):
        copy["channel"] = {
            **channel,
            "header": [
                f"{h.partition(':')[0]}: {REDACTED}" if isinstance(h, str) else h
                for h in channel["header"]
            ],
        }
    return copy


def check_written(
    resource: Mapping[str, Any],
    topics: Mapping[str, Topic],
    criteria: Criteria,
    allow_list: Iterable[str] = (),
) -> None:
    """The write-time rule for what clients write: a Subscription must be valid and may not
    claim a status only the server gives (`active`, `error`); a `Basic` claiming the
    SubscriptionTopic profile must define a topic. Raises FhirError (400, or 422 for a
    `security` or `not-supported` refusal: the resource is well formed, the server will not
    act on it) with the element at fault. Other resources pass."""
    resource_type = resource.get("resourceType")
    if resource_type == "Subscription":
        try:
            parse_subscription(resource, topics, criteria, allow_list)
        except InvalidSubscription as error:
            status = 400 if error.code == "invalid" else 422
            raise FhirError.of(status, error.code, error.diagnostics, error.expression) from None
    elif resource_type == "Basic" and SUBSCRIPTION_TOPIC_PROFILE in (
        (resource.get("meta") or {}).get("profile") or []
    ):
        try:
            topic = topic_from_basic(resource)
            for trigger in topic.triggers:
                if trigger.fhirpath is not None:
                    criteria.check_fhirpath(trigger.fhirpath)
                query = trigger.query
                for side in (query.previous, query.current) if query is not None else ():
                    if side is not None:
                        criteria.check(f"{trigger.resource}?{side.lstrip('?')}")
        except (InvalidTopic, InvalidCriteria) as error:
            raise FhirError.of(400, "invalid", f"SubscriptionTopic: {error}", "Basic") from None
