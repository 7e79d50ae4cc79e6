"""Asynchronous submissions: `Prefer: respond-async` on writes and Bundles, and the status
endpoint `[base]/$async-status/<id>` (FHIR's asynchronous request pattern, http.html#async and
async.html; IG R8-R10). API: docs/api/async.md; mechanism: docs/implementation/async.md.

`accept` checks the envelope cheaply, stores the request durably (the store's `submissions`) and
only then answers `202 Accepted` with `Content-Location` to the status URL. A worker later runs
it through the same interaction code as the synchronous path (`run_submission`).

Polling the status URL (`async_status`): `202` with `X-Progress` while queued or running; `200`
when finished, whatever the outcome, with the original answer as the body (the transaction- or
batch-response Bundle, the resource, or the OperationOutcome) and its status in
`X-Original-Status`; `404` for an unknown or cancelled submission; `410` once its result expired.
`DELETE` on it cancels a submission no worker has started (`async_cancel`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

import orjson

from app.fhir.clock import utc_now
from app.fhir.meta import new_id
from app.fhir.outcome import FhirError, information, operation_outcome
from app.interactions._access import require
from app.interactions.bundle import submit_bundle
from app.interactions.context import Services
from app.interactions.create import create
from app.interactions.delete import delete
from app.interactions.patch import patch
from app.interactions.result import FhirRequest, FhirResponse
from app.interactions.transaction import bundle_entries, prefer_return
from app.interactions.update import update
from app.security.audit import AuditRecord, append_line, touched
from app.security.scopes import OPEN, Principal
from app.store.port import Submission

log = logging.getLogger("micdr.audit")
_OPS = {"create": "c", "update": "u", "patch": "u", "delete": "d"}

STATUS_PATH = "$async-status"
CONTRIBUTOR_HEADER = "x-micdr-contributor"
IDEMPOTENCY_HEADER = "x-idempotency-key"
ANONYMOUS = "anonymous"
# Set by the HTTP layer only (any client-sent value is dropped): the verified caller, as JSON, so
# the job runs with the submitter's scopes (docs/security.md); and the request id, for the audit.
PRINCIPAL_HEADER = "x-micdr-principal"
REQUEST_ID_HEADER = "x-request-id"
# The request headers a submission keeps (what the interactions read, and who sent it).
KEPT_HEADERS = (
    "prefer",
    "if-match",
    "if-none-exist",
    "if-none-match",
    "content-type",
    "accept",
    CONTRIBUTOR_HEADER,
    IDEMPOTENCY_HEADER,
    PRINCIPAL_HEADER,
    REQUEST_ID_HEADER,
)
# The original answer's headers repeated on the status answer.
RESULT_HEADERS = ("Location", "ETag", "Last-Modified")

Interaction = Callable[[Services, FhirRequest], Awaitable[FhirResponse]]
INTERACTIONS: Mapping[str, Interaction] = {
    "create": create,
    "update": update,
    "patch": patch,
    "delete": delete,
    "transaction": submit_bundle,
}
FINISHED = ("done", "failed", "dead")


def wants_async(request: FhirRequest) -> bool:
    """`Prefer: respond-async` (alone or with other preferences)."""
    prefer = request.header("Prefer") or ""
    return any(t.strip() == "respond-async" for p in prefer.split(";") for t in p.split(","))


def status_url(base: str, id_: str) -> str:
    return f"{base}/{STATUS_PATH}/{id_}"


def check_envelope(services: Services, code: str, request: FhirRequest) -> None:
    """The cheap checks made before answering 202: the body parsed (the router did that) and
    has the shape the interaction takes. Everything else is found by processing."""
    body = request.body
    if code == "transaction":
        bundle_entries(services, body, "Bundle")
        if body.get("type") not in ("transaction", "batch"):
            raise FhirError.of(
                400,
                "invalid",
                f"Bundle.type must be transaction or batch, not {body.get('type')!r}",
                "Bundle.type",
            )
    elif code in ("create", "update"):
        if not isinstance(body, dict) or body.get("resourceType") != request.type:
            raise FhirError.of(400, "invalid", f"the body must be a {request.type} resource")
    elif code == "patch" and not isinstance(body, list | dict):
        raise FhirError.of(400, "invalid", "a patch is a JSON Patch array or a Parameters")


def idempotency_key(request: FhirRequest) -> str | None:
    """`X-Idempotency-Key`, else a submitted Bundle's `identifier` (`system|value`)."""
    # Authenticated: keys are the submitter's own (another client's key neither collides with
    # nor reveals theirs).
    owner = f"{request.header(CONTRIBUTOR_HEADER)}:" if request.header(PRINCIPAL_HEADER) else ""
    header = request.header(IDEMPOTENCY_HEADER)
    if header:
        return f"{owner}key:{header.strip()}"
    body = request.body
    ident = body.get("identifier") if isinstance(body, dict) else None
    if isinstance(ident, dict) and body.get("resourceType") == "Bundle" and ident.get("value"):
        return f"{owner}bundle:{ident.get('system') or ''}|{ident['value']}"
    return None


def new_submission(code: str, request: FhirRequest, method: str, now: float) -> Submission:
    headers = {k: v for k, v in request.headers.items() if k in KEPT_HEADERS}
    return Submission(
        id=new_id(),
        contributor=request.header(CONTRIBUTOR_HEADER) or ANONYMOUS,
        idempotency_key=idempotency_key(request),
        request={
            "interaction": code,
            "method": method,
            "base": request.base,
            "type": request.type,
            "id": request.id,
            "query": [list(pair) for pair in request.query],
            "headers": headers,
            "body": request.body,
        },
        created=now,
        updated=now,
        not_before=now,
    )


async def accept(services: Services, code: str, method: str, request: FhirRequest) -> FhirResponse:
    """Store the request, then answer 202 (a resubmission answers its first submission)."""
    check_envelope(services, code, request)
    if code != "transaction" and request.type is not None:
        require(services, request.type, _OPS[code])  # a Bundle's entries are checked when run
    submission = new_submission(code, request, method, time.time())
    stored = await services.store.submit(submission)
    if stored.id == submission.id:
        await services.queue.submit(stored.id)
        text = f"accepted for asynchronous processing as {stored.id}"
    else:
        text = f"already submitted as {stored.id} (state {stored.state}); not submitted again"
    return FhirResponse(
        202,
        information(text),
        {"Content-Location": status_url(request.base, stored.id)},
    )


def _progress(sub: Submission) -> str:
    if sub.state == "queued":
        return "queued" if not sub.attempts else f"queued (retry {sub.attempts})"
    return sub.progress or "running"


def _callback_header(sub: Submission) -> dict[str, str]:
    cb = sub.callback
    if not cb:
        return {}
    value = f"{cb.get('state')}; attempts={cb.get('attempts', 0)}"
    if cb.get("last_error"):
        value += f'; error="{str(cb["last_error"])[:200]}"'
    return {"X-Callback-Delivery": value}


def _theirs(services: Services, sub: Submission | None) -> bool:
    """A submission is visible only to its submitter (any, when no authentication is on)."""
    principal = services.principal
    return sub is not None and (principal.open or sub.contributor == principal.submitter)


async def async_status(services: Services, request: FhirRequest) -> FhirResponse:
    assert request.id is not None
    sub = await services.store.submission(request.id)
    if sub is None or not _theirs(services, sub) or sub.state == "cancelled":
        raise FhirError.of(404, "not-found", f"no asynchronous submission {request.id}")
    if sub.expires is not None and sub.expires < time.time():
        raise FhirError.of(410, "deleted", f"the result of {sub.id} has expired")
    if sub.state not in FINISHED or sub.result is None:
        return FhirResponse(
            202,
            information(f"submission {sub.id} is {sub.state}"),
            {"X-Progress": _progress(sub), "Retry-After": "1"},
        )
    return FhirResponse(200, *status_answer(sub))


def status_answer(sub: Submission) -> tuple[dict[str, Any], dict[str, str]]:
    """The finished submission's answer: (body, headers) for the status URL and the callback."""
    assert sub.result is not None
    status = int(sub.result["status"])
    body = sub.result.get("body")
    if body is None:
        body = information(
            f"{sub.request['method']} finished with status {status} and no response body"
        )
    headers = {k: v for k, v in (sub.result.get("headers") or {}).items() if k in RESULT_HEADERS}
    headers["X-Original-Status"] = str(status)
    headers.update(_callback_header(sub))
    return body, headers


async def async_cancel(services: Services, request: FhirRequest) -> FhirResponse:
    assert request.id is not None
    now = time.time()
    if not _theirs(services, await services.store.submission(request.id)):
        raise FhirError.of(404, "not-found", f"no asynchronous submission {request.id}")
    cancelled = await services.store.update_submission(
        request.id,
        {"state": "queued"},
        {
            "state": "cancelled",
            "updated": now,
            "finished": now,
            "expires": now + services.settings.async_result_ttl,
        },
    )
    if cancelled is not None:
        return FhirResponse(202, information(f"submission {request.id} cancelled"))
    sub = await services.store.submission(request.id)
    if sub is None or sub.state == "cancelled":
        raise FhirError.of(404, "not-found", f"no asynchronous submission {request.id}")
    raise FhirError.of(
        409,
        "conflict",
        f"submission {request.id} is {sub.state}; only a queued one can be cancelled",
    )


def submitted_request(sub: Submission) -> FhirRequest:
    req = sub.request
    return FhirRequest(
        base=req["base"],
        type=req.get("type"),
        id=req.get("id"),
        query=tuple((k, v) for k, v in req.get("query") or ()),
        headers=dict(req.get("headers") or {}),
        body=req.get("body"),
    )


async def run_submission(services: Services, sub: Submission) -> dict[str, Any]:
    """Run a stored request through its interaction; answers the result to store (status,
    headers, body). A FhirError is an outcome too (the contributor's 4xx), not a failure."""
    request = submitted_request(sub)
    services = replace(services, principal=submitted_principal(request))
    try:
        answer = await INTERACTIONS[sub.request["interaction"]](services, request)
    except FhirError as err:
        audit_job(services, sub, err.status, None, str(err))
        return {
            "status": err.status,
            "headers": dict(err.headers),
            "body": operation_outcome(err.issues),
        }
    audit_job(services, sub, answer.status, answer.resource, None)
    body = answer.resource
    if answer.is_write:
        prefer = prefer_return(request, default="representation")
        if prefer == "minimal":
            body = None
        elif prefer == "OperationOutcome":
            body = information(f"{sub.request['method']} succeeded with status {answer.status}")
    return {"status": answer.status, "headers": dict(answer.headers), "body": body}


def submitted_principal(request: FhirRequest) -> Principal:
    raw = request.header(PRINCIPAL_HEADER)
    if not raw:
        return OPEN
    return Principal.from_json(orjson.loads(raw))


def audit_job(
    services: Services,
    sub: Submission,
    status: int,
    resource: dict[str, Any] | None,
    detail: Any,
) -> None:
    """The audit line of a finished asynchronous job (the 202 was audited when accepted)."""
    refs, patients = touched(resource)
    req = sub.request
    record = AuditRecord(
        time=utc_now(),
        request_id=str((req.get("headers") or {}).get(REQUEST_ID_HEADER) or ""),
        interaction=str(req.get("interaction")),
        method=str(req.get("method")),
        path=f"{STATUS_PATH}/{sub.id}",
        status=status,
        principal=services.principal,
        type=req.get("type"),
        id=req.get("id"),
        resources=refs,
        patients=patients,
        submission=sub.id,
        detail=str(detail) if detail else None,
        extra={"async": True},
    )
    try:
        append_line(services.settings.audit_path, record)
    except OSError as exc:
        log.error("audit line not written: %s", exc)


def dead_result(error: str) -> dict[str, Any]:
    """The answer of a submission that could not be processed (the dead-letter state)."""
    issue = FhirError.of(500, "exception", f"the submission could not be processed: {error}")
    return {"status": 500, "headers": {}, "body": operation_outcome(issue.issues)}
