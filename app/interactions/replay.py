"""Replaying an asynchronous submission (docs/implementation/async.md): the stored request run
through the interaction the table (table.py) marks asynchronous, as the submitter, with its
audit line. The one module of the interactions that the workers call, with the answers of
async_status.py they repeat (`status_answer`, `status_url`, `dead_result`)."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from app.fhir.clock import utc_now
from app.fhir.outcome import FhirError, information, operation_outcome
from app.interactions.async_status import (
    REQUEST_ID_HEADER,
    dead_result,
    status_answer,
    status_url,
)
from app.interactions.context import Services
from app.interactions.handlers import REPLAYS
from app.interactions.result import FhirRequest
from app.interactions.table import STATUS_PATH
from app.interactions.transaction import prefer_return
from app.security.audit import AuditRecord, append_line, touched
from app.security.scopes import OPEN, Principal
from app.store.port import Submission

__all__ = ["dead_result", "run_submission", "status_answer", "status_url"]

log = logging.getLogger("micdr.audit")


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
    services = replace(services, principal=submitted_principal(sub))
    try:
        if sub.principal is None and services.settings.auth_configured:
            # accepted before submissions stored their submitter: fail closed
            raise FhirError.of(401, "login", "the submission does not say who submitted it")
        answer = await REPLAYS[sub.request["interaction"]](services, request)
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


def submitted_principal(sub: Submission) -> Principal:
    return OPEN if sub.principal is None else Principal.from_json(dict(sub.principal))


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
