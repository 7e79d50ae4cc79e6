"""The audit record of one request or asynchronous job (docs/security.md, "Audit"): built as
plain data from what the interaction answered, written as one JSON line, and optionally as a
FHIR AuditEvent (R4 auditevent.html) stored through the normal write path. Pure, except
`append_line` (a file append)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from app.security.scopes import Principal

MAX_REFS = 1000  # refs and patients listed per record (a larger page says how many were left)
DCM = "http://dicom.nema.org/resources/ontology/DCM"
RESTFUL = "http://terminology.hl7.org/CodeSystem/audit-event-type"
ACTIONS = {"create": "C", "read": "R", "vread": "R", "update": "U", "patch": "U", "delete": "D"}


@dataclass(frozen=True)
class AuditRecord:
    time: str
    request_id: str
    interaction: str
    method: str
    path: str
    status: int
    principal: Principal
    type: str | None = None
    id: str | None = None
    query: str = ""
    resources: tuple[str, ...] = ()
    patients: tuple[str, ...] = ()
    submission: str | None = None
    detail: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        return "success" if self.status < 400 else "failure"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "time": self.time,
            "request_id": self.request_id,
            "interaction": self.interaction,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "status": self.status,
            "outcome": self.outcome,
            "subject": self.principal.subject,
            "client_id": self.principal.client_id,
            "org": self.principal.org,
            "patient_context": self.principal.patient,
            "authenticated": not self.principal.open,
            "type": self.type,
            "id": self.id,
            "resources": list(self.resources[:MAX_REFS]),
            "patients": list(self.patients[:MAX_REFS]),
        }
        if len(self.resources) > MAX_REFS:
            out["resources_left_out"] = len(self.resources) - MAX_REFS
        if self.submission:
            out["submission"] = self.submission
        if self.detail:
            out["detail"] = self.detail
        out.update(self.extra)
        return out


def new_request_id() -> str:
    return uuid.uuid4().hex


def _ref_of(resource: dict[str, Any]) -> str | None:
    type_, id_ = resource.get("resourceType"), resource.get("id")
    return f"{type_}/{id_}" if isinstance(type_, str) and isinstance(id_, str) else None


def _patient_refs(resource: dict[str, Any]) -> Iterable[str]:
    if resource.get("resourceType") == "Patient" and isinstance(resource.get("id"), str):
        yield f"Patient/{resource['id']}"
        return
    for name in ("subject", "patient", "beneficiary"):
        ref = resource.get(name)
        text = ref.get("reference") if isinstance(ref, dict) else None
        if isinstance(text, str) and "Patient/" in text:
            yield "Patient/" + text.rsplit("Patient/", 1)[1].split("/")[0]


def _location_ref(entry: dict[str, Any]) -> str | None:
    response = entry.get("response")
    location = response.get("location") if isinstance(response, dict) else None
    if isinstance(location, str) and "/" in location:
        parts = location.split("/_history/")[0].split("/")
        return "/".join(parts[-2:])
    return None


def touched(resource: dict[str, Any] | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(resource refs, patient refs) an answer shows: a resource, or a Bundle's entries."""
    if not isinstance(resource, dict):
        return (), ()
    items: list[dict[str, Any]] = []
    refs: list[str] = []
    if resource.get("resourceType") == "Bundle":
        for entry in resource.get("entry") or []:
            if not isinstance(entry, dict):
                continue
            inner = entry.get("resource")
            if isinstance(inner, dict) and inner.get("resourceType") != "OperationOutcome":
                items.append(inner)
            elif (ref := _location_ref(entry)) is not None:
                refs.append(ref)
    elif resource.get("resourceType") != "OperationOutcome":
        items.append(resource)
    refs += [r for item in items if (r := _ref_of(item)) is not None]
    patients = [p for item in items for p in _patient_refs(item)]
    return tuple(dict.fromkeys(refs)), tuple(dict.fromkeys(patients))


def append_line(path: str, record: AuditRecord) -> None:
    """Append one JSON line (`-`: standard output). One write call per line, O_APPEND, so
    several processes can share the file."""
    line = orjson.dumps(record.to_json()) + b"\n"
    if path == "-":
        sys.stdout.buffer.write(line)
        sys.stdout.flush()
        return
    try:
        out = open(path, "ab", buffering=0)  # noqa: SIM115 - closed below
    except FileNotFoundError:  # e.g. the full stack has no data dir: make the log's folder
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        out = open(path, "ab", buffering=0)  # noqa: SIM115
    with out:
        out.write(line)


def _reference(ref: str) -> dict[str, str]:
    return {"reference": ref}


def audit_event(record: AuditRecord) -> dict[str, Any]:
    """The record as an R4 AuditEvent (a `rest` event; entity per resource and patient)."""
    who: dict[str, Any] = {"display": record.principal.subject}
    if record.principal.client_id:
        who = {
            "identifier": {
                "system": "urn:ietf:params:oauth:client-id",
                "value": record.principal.client_id,
            },
            "display": record.principal.subject,
        }
    entities = [
        {"what": _reference(p), "type": {"code": "1", "display": "Person"}}
        for p in record.patients[:MAX_REFS]
    ]
    entities += [
        {"what": _reference(r), "type": {"code": "2", "display": "System Object"}}
        for r in record.resources[:MAX_REFS]
    ]
    code = record.interaction if record.interaction in _REST_CODES else "transaction"
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": {"system": RESTFUL, "code": "rest", "display": "RESTful Operation"},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": code}],
        "recorded": record.time,
        "outcome": "0" if record.status < 400 else ("4" if record.status < 500 else "8"),
        "outcomeDesc": f"HTTP {record.status}" + (f": {record.detail}" if record.detail else ""),
        "agent": [{"who": who, "requestor": True}],
        "source": {"observer": {"display": "miCDR"}, "site": record.request_id},
    }
    action = ACTIONS.get(record.interaction)
    if action:
        event["action"] = action
    if entities:
        event["entity"] = entities
    return event


_REST_CODES = frozenset(
    {
        "read",
        "vread",
        "update",
        "patch",
        "delete",
        "history",
        "history-instance",
        "history-type",
        "history-system",
        "create",
        "search",
        "search-type",
        "search-system",
        "capabilities",
        "transaction",
        "batch",
        "operation",
    }
)
