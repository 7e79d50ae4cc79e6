"""Notifications: each live subscription's recorded events sent to its rest-hook endpoint in
event-number order, at least once (docs/implementation/subscriptions.md, "Delivery").

One worker at a time delivers a subscription (a lease in the store, `SubscriptionDelivery`);
its progress (the last event number the endpoint took, the failures, when to try again) is
saved after every attempt, so a worker killed mid-delivery leaves the next one to send again
from the first event not acknowledged: a receiver may see an event twice, with the same
number, and never misses one. The policy (what to do next, after a failure) is pure
(app/subscriptions/delivery.py); this module reads, sends and writes.

The server's own changes to a Subscription (`active` after the handshake, `error` with its
reason, `off` after its `end`) are new versions committed like any write, so they are in the
history, the index and the subscription cache like a client's."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from app.fhir.clock import utc_now
from app.fhir.meta import identifier_tokens, new_id, with_meta
from app.interactions.subscription_events import focus_events
from app.records import StoredResource, Transaction, Write
from app.security.scopes import Principal
from app.store.port import DeliveryState, VersionConflict
from app.subscriptions.delivery import (
    Attempt,
    Delivered,
    Failed,
    Retry,
    RetryPolicy,
    Step,
    after_attempt,
    after_handshake,
    next_step,
)
from app.subscriptions.events import LIVE
from app.subscriptions.notification import (
    Notification,
    NotificationType,
    RestHookRequest,
    notification_bundle,
    rest_hook_request,
)
from app.subscriptions.subscription import SubscriptionSettings, owner_of
from app.subscriptions.trigger import Criteria
from workers.context import JobContext
from workers.reach import Unreachable, call, reach
from workers.subscriptions import known_subscriptions, subscriber_of

log = logging.getLogger("micdr.subscriptions")

SUBSCRIPTION = "Subscription"
POLICY = RetryPolicy()
SEND_TIMEOUT_SECONDS = 10.0
# unless the subscription's max count says fewer: a receiver that fell behind catches up in
# few requests
EVENTS_PER_NOTIFICATION = 100
STEPS_PER_CLAIM = 50  # then the lease is given up and claimed again (a lease stays short)
DELIVERY_CONCURRENCY = 32  # subscriptions sent to at once by one round
NOBODY = Principal("unknown")  # a subscription without a recorded owner sees nothing


async def deliver_notifications(ctx: JobContext, only: Collection[str] | None = None) -> int:
    """Deliver what is due now for every subscription (or those in `only`), each on its own
    (a busy or slow endpoint holds no other back); answers how many notifications the
    endpoints took. Reads only, unless something is due. A failure (the store down) is
    raised once every subscription's turn has ended."""
    criteria = Criteria(ctx.registry)
    gate = asyncio.Semaphore(DELIVERY_CONCURRENCY)

    async def one(sid: str) -> int:
        async with gate:
            return await deliver_to(ctx, criteria, sid)

    due = await due_subscriptions(ctx, criteria, only)
    results = await asyncio.gather(*(one(sid) for sid in due), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return sum(r for r in results if isinstance(r, int))


async def due_subscriptions(
    ctx: JobContext, criteria: Criteria, only: Collection[str] | None = None
) -> list[str]:
    """The live subscriptions (of `only`, if given) that something is due for now."""
    known = await known_subscriptions(ctx, criteria)
    states = {s.subscription: s for s in await ctx.store.deliveries()}
    due = []
    for resource, subscriber in known:
        sid = subscriber.id
        if (only is not None and sid not in only) or resource.get("status") not in LIVE:
            continue
        state = states.get(sid) or DeliveryState(sid)
        count = await ctx.store.events_since_start(sid)
        if _step(resource, subscriber.settings, state, count) != "wait":
            due.append(sid)
    return due


def _step(
    resource: Mapping[str, Any], settings: SubscriptionSettings, state: DeliveryState, count: int
) -> Step:
    """What is due, `count` events having been recorded."""
    now = time.time()
    return next_step(
        str(resource.get("status")),
        settings.end,
        settings.channel.heartbeat_period,
        count > state.delivered,
        state.retry_at,
        state.last_sent,
        now,
        datetime.fromtimestamp(now, UTC).isoformat(),
    )


async def deliver_to(ctx: JobContext, criteria: Criteria, sid: str) -> int:
    """Hold the subscription's lease and take its steps until nothing is due; answers how
    many notifications the endpoint took. Checked again after giving the lease up: events
    recorded meanwhile were rung for while it was held."""
    sent = 0
    while True:
        # a holder per turn, not per process: jobs of one worker run side by side
        holder = f"{ctx.worker}/{new_id()[:8]}"
        lease = ctx.settings.async_lease_seconds
        now = time.time()
        state = await ctx.store.claim_delivery(sid, holder, now, now + lease)
        if state is None:
            return sent  # another worker delivers it
        run = _Run(ctx, criteria, state, holder)
        try:
            sent += await run.steps()
        finally:
            released = replace(run.state, owner=None, lease_until=0.0)
            await ctx.store.save_delivery(released, holder)
        if not run.more:
            return sent


class _Run:
    """One worker's turn at one subscription, under its lease."""

    def __init__(
        self, ctx: JobContext, criteria: Criteria, state: DeliveryState, holder: str
    ) -> None:
        self.ctx = ctx
        self.criteria = criteria
        self.state = state
        self.holder = holder
        self.more = False  # still due when the turn ended
        self.count = 0  # events recorded, as last read
        self._parsed: tuple[int, SubscriptionSettings | None] | None = None

    def settings_of(self, stored: StoredResource | None) -> SubscriptionSettings | None:
        """The stored version's settings, parsed once per version."""
        if stored is None or stored.resource is None:
            return None
        if self._parsed is None or self._parsed[0] != stored.version:
            subscriber = subscriber_of(self.ctx, self.criteria, stored.id, stored.resource)
            self._parsed = (stored.version, subscriber.settings if subscriber else None)
        return self._parsed[1]

    async def steps(self) -> int:
        sent = 0
        for _ in range(STEPS_PER_CLAIM):
            # read each step: a client's `off` or new endpoint applies from the next request
            stored = await self.ctx.store.read(SUBSCRIPTION, self.state.subscription)
            settings = self.settings_of(stored)
            if stored is None or settings is None:
                return sent
            self.count = await self.ctx.store.events_since_start(stored.id)
            step = _step(stored.resource or {}, settings, self.state, self.count)
            if step == "wait":
                return sent
            if step == "turn-off":
                await set_status(self.ctx, stored, "off")
                return sent
            if not await self.take(step, stored, settings):
                return sent
            sent += 1
        self.more = True
        return sent

    async def take(
        self, step: Step, stored: StoredResource, settings: SubscriptionSettings
    ) -> bool:
        """One attempt; answers whether the endpoint took it and delivery may go on."""
        ctx, state, now = self.ctx, self.state, time.time()
        if step == "handshake":
            attempt = await send(ctx, settings, await self.request(stored, settings, "handshake"))
            decision = after_handshake(attempt)
            if isinstance(decision, Failed):
                await set_status(ctx, stored, "error", decision.reason)
                return False
            await self.save(replace(state, failures=0, retry_at=0.0, last_sent=now))
            return await set_status(ctx, stored, "active")
        last = state.delivered
        if step == "events":
            events = await ctx.store.subscription_events(
                state.subscription, state.delivered + 1, None, _per_notification(settings)
            )
            if not events:
                return False  # a number drawn whose event is not written yet: next round
            last = events[-1].number
            request = await self.request(stored, settings, "event-notification", events)
        else:
            request = await self.request(stored, settings, "heartbeat")
        attempt = await send(ctx, settings, request)
        after = after_attempt(state.failures, attempt, POLICY)
        if isinstance(after, Delivered):
            return await self.save(
                replace(state, delivered=last, failures=0, retry_at=0.0, last_sent=now)
            )
        if isinstance(after, Retry):
            log.warning(
                "Subscription/%s: %s; retrying in %.0fs",
                state.subscription,
                attempt.describe(),
                after.delay,
            )
            await self.save(replace(state, failures=after.failures, retry_at=now + after.delay))
            return False
        await self.save(replace(state, failures=state.failures + 1))
        await set_status(ctx, stored, "error", after.reason)
        return False

    async def request(
        self,
        stored: StoredResource,
        settings: SubscriptionSettings,
        kind: NotificationType,
        events: Any = (),
    ) -> RestHookRequest:
        """What to send: a notification Bundle (topic style), or R4's rest-hook request."""
        ctx, resource = self.ctx, stored.resource
        assert resource is not None
        owner = owner_of(resource)
        principal = Principal.from_json(owner) if owner is not None else NOBODY
        wanted = settings.content == "full-resource" or (
            settings.style == "criteria" and bool(settings.channel.payload)
        )
        focus = await focus_events(ctx.services, principal, events, with_resources=wanted)
        channel = settings.channel
        if settings.style == "criteria":
            if not focus:  # handshake (R4 has none: an empty POST, as a notification)
                return RestHookRequest("POST", channel.endpoint, None)
            hook = rest_hook_request(channel.endpoint, channel.payload, focus[0])
            return hook
        notification = Notification(
            base=_base(ctx),
            subscription_id=stored.id,
            topic=settings.criteria,
            status="active" if kind != "handshake" else "requested",
            type=kind,
            events_since_start=self.count,
            events=tuple(focus),
        )
        body = notification_bundle(notification, settings.content, new_id(), utc_now())
        return RestHookRequest("POST", channel.endpoint, body)

    async def save(self, state: DeliveryState) -> bool:
        """Record progress; False once the lease was lost (another worker took over)."""
        lease_until = time.time() + self.ctx.settings.async_lease_seconds
        state = replace(state, lease_until=lease_until)
        if not await self.ctx.store.save_delivery(state, self.holder):
            log.warning("Subscription/%s: lease lost; another worker delivers", state.subscription)
            return False
        self.state = state
        return True


async def send(
    ctx: JobContext, settings: SubscriptionSettings, request: RestHookRequest
) -> Attempt:
    """Make the request, after checking every address the endpoint's host resolves to (a name
    may have been pointed into the network since the subscription was written)."""
    channel = settings.channel
    try:
        target = await reach(request.url, ctx.settings.subscription_allow_list, "channel.endpoint")
    except Unreachable as exc:
        return Attempt(None, str(exc), unsent=True)
    headers = {"Content-Type": channel.payload or "application/fhir+json"}
    for header in channel.headers:
        name, _, value = header.partition(":")
        headers[name.strip()] = value.strip()
    content = orjson.dumps(request.body) if request.body is not None else b""
    timeout = channel.timeout or SEND_TIMEOUT_SECONDS
    try:
        async with call(
            ctx.outbound, target, request.method, headers=headers, content=content, timeout=timeout
        ) as response:
            await response.aread()
    except httpx.HTTPError as exc:
        return Attempt(None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    return Attempt(response.status_code)


async def set_status(
    ctx: JobContext, stored: StoredResource, status: str, error: str | None = None
) -> bool:
    """Commit a new version of the Subscription with `status` (and `error`, R4's reason);
    False when a concurrent write changed it first: the next round reads that one."""
    assert stored.resource is not None
    body = {k: v for k, v in stored.resource.items() if k != "error"}
    body["status"] = status
    if error is not None:
        body["error"] = error
    version = stored.version + 1
    now = utc_now()
    resource = with_meta(body, stored.id, version, now)
    write = Write(SUBSCRIPTION, stored.id, version, "update", resource, identifier_tokens(resource))
    try:
        seq = await ctx.store.commit(Transaction((write,), last_updated=now))
    except VersionConflict:
        return False
    log.info("Subscription/%s is now %s%s", stored.id, status, f": {error}" if error else "")
    await ctx.services.queue.wake(seq)
    return status == "active"


def _per_notification(settings: SubscriptionSettings) -> int:
    if settings.style == "criteria":
        return 1  # R4's rest-hook carries one resource per request
    return min(settings.channel.max_count or EVENTS_PER_NOTIFICATION, EVENTS_PER_NOTIFICATION)


def _base(ctx: JobContext) -> str:
    configured = ctx.settings.public_base_url
    return (configured or f"http://localhost{ctx.settings.base_path}").rstrip("/")
