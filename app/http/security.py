"""The security layer in front of every FHIR route (docs/security.md): request id, query
limits, bearer-token authentication, per-client rate limit, and the audit line of each request.

Order per request: X-Request-Id (echoed when well-formed, else generated) -> query parameter
count and length -> authentication (FHIR routes but `metadata`) -> rate limit (per OAuth client,
else per peer address) -> the route -> one audit line (and AuditEvent, MICDR_AUDIT_EVENTS=1).
Refusals here raise FhirError; the app's exception handler renders them as OperationOutcome.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import unquote

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.fhir.clock import utc_now
from app.fhir.outcome import FhirError
from app.http.analytics import ANALYTICS_API
from app.interactions._write import execute
from app.logs import REQUEST_ID
from app.security.audit import AuditRecord, append_line, audit_event, new_request_id
from app.security.keys import KeyStore
from app.security.limits import LimitExceeded, RateLimiter, check_query
from app.security.scopes import INTERNAL, OPEN, Principal
from app.security.tokens import AuthError
from app.settings import Settings
from app.tx.entry import Entry

log = logging.getLogger("micdr.audit")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
REALM = "micdr"


def request_id_of(scope: Scope) -> str:
    """The request's id: kept in `scope["state"]` once chosen."""
    state = scope.setdefault("state", {})
    rid = state.get("request_id")
    if rid is None:
        inbound = _header(scope, b"x-request-id")
        rid = inbound if inbound and _REQUEST_ID.fullmatch(inbound) else new_request_id()
        state["request_id"] = rid
    return str(rid)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


async def add_request_id(message: Message, scope: Scope) -> None:
    """`before_send` hook: every response, errors and unrouted paths included, says its id."""
    if message["type"] == "http.response.start":
        headers = list(message.get("headers") or [])
        headers.append((b"x-request-id", request_id_of(scope).encode()))
        message["headers"] = headers


def www_authenticate(err: AuthError) -> str:
    value = f'Bearer realm="{REALM}"'
    if err.error:
        detail = err.detail.replace('"', "'").replace("\\", "/")
        value += f', error="{err.error}", error_description="{detail}"'
    return value


class SecurityLayer:
    """One per app: the key store, the rate limiter and the audit settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = KeyStore(settings) if settings.auth_configured else None
        self.limiter = (
            RateLimiter(settings.rate_limit, settings.rate_burst) if settings.rate_limit else None
        )
        base = settings.base_path
        self.public = {f"{base}/metadata", "/health", "/openapi.json"}
        self.base = base

    def protected(self, path: str) -> bool:
        if path.startswith(ANALYTICS_API + "/") or path == ANALYTICS_API:
            return True
        return path not in self.public and (path == self.base or path.startswith(self.base + "/"))

    def middleware(self, app: ASGIApp) -> ASGIApp:
        async def secured(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            token = REQUEST_ID.set(request_id_of(scope))
            try:
                await self._serve(app, scope, receive, send)
            finally:
                REQUEST_ID.reset(token)

        return secured

    async def _serve(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope["state"]
        protected = self.protected(scope["path"])
        status = {"code": 500}
        principal: Principal = OPEN
        try:
            principal = await self._admit(scope, protected)
        except FhirError as err:
            if protected:
                await self._audit(scope, err.status, principal, str(err))
            raise
        state["principal"] = principal

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await app(scope, receive, watch)
        finally:
            if protected:
                await self._audit(scope, status["code"], principal, state.get("audit_detail"))

    async def _admit(self, scope: Scope, protected: bool) -> Principal:
        settings = self.settings
        try:
            check_query(scope.get("query_string", b""), *self._query_limits())
        except LimitExceeded as err:
            raise FhirError.of(err.status, "too-costly", err.detail) from None
        principal = OPEN
        if self.keys is not None and protected:
            try:
                principal = await self.keys.principal(_header(scope, b"authorization"))
            except AuthError as err:
                raise FhirError.of(
                    401, "login", err.detail, **{"WWW-Authenticate": www_authenticate(err)}
                ) from None
        if self.limiter is not None and protected:
            client = scope.get("client")
            key = principal.submitter if not principal.open else str(client[0] if client else "")
            wait = self.limiter.take(key, time.monotonic())
            if wait > 0:
                raise FhirError.of(
                    429,
                    "throttled",
                    f"more than {settings.rate_limit} requests a second (MICDR_RATE_LIMIT); "
                    "slow down",
                    **{"Retry-After": str(max(1, math.ceil(wait)))},
                )
        return principal

    def _query_limits(self) -> tuple[int, int]:
        return self.settings.max_query_params, self.settings.max_param_length

    async def _audit(self, scope: Scope, status: int, principal: Principal, detail: Any) -> None:
        info = detail if isinstance(detail, dict) else {}
        record = AuditRecord(
            time=utc_now(),
            request_id=request_id_of(scope),
            interaction=str(info.get("interaction") or "unknown"),
            method=str(scope.get("method", "")),
            path=str(scope.get("path", "")),
            query=unquote(scope.get("query_string", b"").decode("latin-1"))[:2000],
            status=status,
            principal=principal,
            type=info.get("type"),
            id=info.get("id"),
            resources=tuple(info.get("resources") or ()),
            patients=tuple(info.get("patients") or ()),
            submission=info.get("submission"),
            detail=detail if isinstance(detail, str) else info.get("detail"),
        )
        try:
            append_line(self.settings.audit_path, record)
        except OSError as exc:
            log.error("audit line not written: %s", exc)
        if self.settings.audit_events:
            await self._store_event(scope, record)

    async def _store_event(self, scope: Scope, record: AuditRecord) -> None:
        services = getattr(scope["app"].state, "services", None)
        if services is None:
            return
        entry = Entry(
            index=-1,
            method="POST",
            type="AuditEvent",
            resource=audit_event(record),
            url="AuditEvent",
        )
        try:
            await execute(replace(services, principal=INTERNAL), [entry])
        except Exception as exc:  # never fail the audited request over its AuditEvent
            log.error("AuditEvent not stored: %s", exc)


def security_middleware(layer: SecurityLayer) -> Callable[[ASGIApp], ASGIApp]:
    return layer.middleware
