"""Asynchronous submissions: `Prefer: respond-async` on writes and Bundles, and the status
endpoint `[base]/$async-status/<id>` (FHIR's asynchronous request pattern, http.html#async and
async.html; IG R8-R10). API: docs/api/async.md; mechanism: docs/implementation/async.md.

`accept` checks the envelope cheaply, stores the request durably (the store's `submissions`) and
only then answers `202 Accepted` with `Content-Location` to the status URL. A worker later runs
it through the same interaction code as the synchronous path (replay.py `run_submission`).

Polling the status URL (`async_status`): `202` with `X-Progress` while queued or running; `200`
when finished, whatever the outcome, with the original answer as the body (the transaction- or
batch-response Bundle, the resource, or the OperationOutcome) and its status in
`X-Original-Status`; `404` for an unknown or cancelled submission; `410` once its result expired.
`DELETE` on it cancels a submission no worker has started (`async_cancel`).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from app.fhir.clock import utc_now
from app.fhir.meta import new_id
from app.fhir.outcome import FhirError, information, operation_outcome
from app.interactions._access import require
from app.interactions.context import Services
from app.interactions.result import FhirRequest, FhirResponse
from app.interactions.table import STATUS_PATH
from app.interactions.transaction import bundle_entries
from app.security.scopes import OPEN, Principal
from app.store.port import Submission
from app.subscriptions.subscription import shown

_OPS = {"create": "c", "update": "u", "patch": "u", "delete": "d"}

CONTRIBUTOR_HEADER = "x-micdr-contributor"
IDEMPOTENCY_HEADER = "x-idempotency-key"
ANONYMOUS = "anonymous"
# Set by the HTTP layer only: the request id, for the audit.
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
    REQUEST_ID_HEADER,
)
# The original answer's headers repeated on the status answer.
RESULT_HEADERS = ("Location", "ETag", "Last-Modified")

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


def contributor(request: FhirRequest, principal: Principal) -> str:
    """Who owns a submission: the verified caller when authenticated (a client's
    `X-Micdr-Contributor` is then ignored), else what the client says."""
    if not principal.open:
        return principal.submitter
    return request.header(CONTRIBUTOR_HEADER) or ANONYMOUS


def idempotency_key(request: FhirRequest, principal: Principal) -> str | None:
    """`X-Idempotency-Key`, else a submitted Bundle's `identifier` (`system|value`)."""
    # Authenticated: keys are the submitter's own (another client's key neither collides with
    # nor reveals theirs).
    owner = f"{principal.submitter}:" if not principal.open else ""
    header = request.header(IDEMPOTENCY_HEADER)
    if header:
        return f"{owner}key:{header.strip()}"
    body = request.body
    ident = body.get("identifier") if isinstance(body, dict) else None
    if isinstance(ident, dict) and body.get("resourceType") == "Bundle" and ident.get("value"):
        return f"{owner}bundle:{ident.get('system') or ''}|{ident['value']}"
    return None


def new_submission(
    code: str, request: FhirRequest, method: str, now: float, principal: Principal = OPEN
) -> Submission:
    """The submission of `request` by `principal`, who it then runs as (docs/security.md)."""
    headers = {k: v for k, v in request.headers.items() if k in KEPT_HEADERS}
    return Submission(
        id=new_id(),
        contributor=contributor(request, principal),
        principal=None if principal.open else principal.to_json(),
        idempotency_key=idempotency_key(request, principal),
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
    submission = new_submission(code, request, method, time.time(), services.principal)
    _check_size(services, submission)
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


def _check_size(services: Services, submission: Submission) -> None:
    limit = services.store.submission_request_limit
    if limit is None:
        return
    size = len(orjson.dumps(submission.request))
    if size > limit:
        raise FhirError.of(
            413,
            "too-costly",
            f"an asynchronous request may hold at most {limit} bytes of JSON on this server "
            f"(this one holds {size}); send it without Prefer: respond-async, or split it",
        )


async def accept_bulk(services: Services, request: FhirRequest, job: dict[str, Any]) -> Submission:
    """Store a bulk job (an export or an import: `job` holds its `interaction` and what it
    runs on) as the caller's submission, then ring the queue for it."""
    now = time.time()
    sub = Submission(
        id=new_id(),
        contributor=contributor(request, services.principal),
        principal=None if services.principal.open else services.principal.to_json(),
        request={
            "base": request.base,
            "type": None,
            "id": request.id,
            "headers": {REQUEST_ID_HEADER: request.header(REQUEST_ID_HEADER) or ""},
            "transactionTime": utc_now(),
            **job,
        },
        created=now,
        updated=now,
        not_before=now,
    )
    await services.store.submit(sub)
    await services.queue.bulk(sub.id)
    return sub


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
    """A submission is visible only to its submitter (any, when no authentication is on); a
    bulk job (export, import) has its own status URL (export_status.py)."""
    principal = services.principal
    return (
        sub is not None
        and sub.request.get("interaction") not in ("export", "import")
        and (principal.open or sub.contributor == principal.submitter)
    )


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
    stored = sub.result.get("body")
    if stored is None:
        body = information(
            f"{sub.request['method']} finished with status {status} and no response body"
        )
    else:  # the callback POST does not pass through render: hide header secrets here too
        body = dict(shown(stored))
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


def dead_result(error: str) -> dict[str, Any]:
    """The answer of a submission that could not be processed (the dead-letter state)."""
    issue = FhirError.of(500, "exception", f"the submission could not be processed: {error}")
    return {"status": 500, "headers": {}, "body": operation_outcome(issue.issues)}
