"""subscription-events: `GET [base]/Subscription/[id]/$events` (Subscriptions R5 Backport IG
STU 1.1, OperationDefinition backport-subscription-events): the subscription's recorded events
as a notification Bundle of type `query-event`. `eventsSinceNumber` and `eventsUntilNumber`
bound the range (inclusive); `content` (`empty`, `id-only`, `full-resource`) overrides the
subscription's own. Each focus is the version the event's commit wrote, and is shown only if
the caller may read it now: otherwise the event keeps its number and time, nothing more."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

from app.fhir.clock import utc_now
from app.fhir.meta import new_id
from app.fhir.outcome import FhirError
from app.interactions._access import visible
from app.interactions.context import Services
from app.interactions.result import FhirRequest, FhirResponse
from app.interactions.subscription_status import answer_of, topic_subscription
from app.security.scopes import Access, Forbidden, Principal, access_for
from app.store.port import SubscriptionEvent
from app.subscriptions.notification import Content, Event, notification_bundle
from app.subscriptions.subscription import CONTENTS, PAYLOAD_CONTENT

MAX_EVENTS = 100  # per answer: a client pages with eventsSinceNumber


async def subscription_events(services: Services, request: FhirRequest) -> FhirResponse:
    subscription = await topic_subscription(services, request)
    subscription_id, resource = subscription
    since = _number(request, "eventsSinceNumber") or 1
    until = _number(request, "eventsUntilNumber")
    content = _content(request.param("content") or _own_content(resource))
    recorded = await services.store.subscription_events(subscription_id, since, until, MAX_EVENTS)
    events = await focus_events(services, services.principal, recorded)
    notification = await answer_of(services, request.base, subscription, "query-event", events)
    return FhirResponse(200, notification_bundle(notification, content, new_id(), utc_now()))


async def focus_events(
    services: Services,
    principal: Principal,
    recorded: Sequence[SubscriptionEvent],
    with_resources: bool = True,
) -> list[Event]:
    """The recorded events with their focus as committed, each shown only if `principal` may
    read it now (the caller of `$events`; a subscription's owner at delivery). Without
    `with_resources` a focus is read only when its visibility depends on its content."""
    reader = replace(services, principal=principal)
    accesses = {type_: _access(principal, type_) for type_ in {_type(e) for e in recorded}}
    needed = [
        (type_, id_, event.version)
        for event in recorded
        for type_, _, id_ in [event.focus.partition("/")]
        if (access := accesses[type_]) is not None and (with_resources or access.kind != "all")
    ]
    versions = {(s.type, s.id, s.version): s for s in await services.store.vread_many(needed)}
    events = []
    for event in recorded:
        type_, _, id_ = event.focus.partition("/")
        access = accesses[type_]
        stored = versions.get((type_, id_, event.version))
        if access is not None and access.kind == "all" and not with_resources:
            seen = True  # a recorded event's version exists; nothing to check it against
        else:
            seen = access is not None and stored is not None and visible(reader, access, stored)
        events.append(
            Event(
                number=event.number,
                timestamp=event.timestamp,
                focus_type=type_,
                focus_id=id_,
                interaction=_interaction(event.interaction),
                resource=stored.resource if seen and stored is not None else None,
                hidden=not seen,
            )
        )
    return events


def _type(event: SubscriptionEvent) -> str:
    return event.focus.partition("/")[0]


def _access(principal: Principal, type_: str) -> Access | None:
    try:
        return access_for(principal, type_, "r")
    except Forbidden:
        return None


def _number(request: FhirRequest, name: str) -> int | None:
    text = request.param(name)
    if text is None:
        return None
    if not text.isdigit() or int(text) < 1:
        raise FhirError.of(400, "invalid", f"{name} must be a positive event number", name)
    return int(text)


def _content(code: str) -> Content:
    content = next((c for c in CONTENTS if c == code), None)
    if content is None:
        raise FhirError.of(
            400, "invalid", f"content {code!r} is not one of {', '.join(CONTENTS)}", "content"
        )
    return content


def _own_content(resource: dict[str, Any]) -> str:
    channel = resource.get("channel")
    payload = channel.get("_payload") if isinstance(channel, dict) else None
    extensions = payload.get("extension") if isinstance(payload, dict) else None
    for extension in extensions if isinstance(extensions, list) else []:
        if isinstance(extension, dict) and extension.get("url") == PAYLOAD_CONTENT:
            return str(extension.get("valueCode"))
    return "id-only"


def _interaction(code: str) -> Literal["create", "update", "delete"]:
    if code == "create":
        return "create"
    return "delete" if code == "delete" else "update"
