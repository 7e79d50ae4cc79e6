"""The longitudinal index (IG R30, R31): one server-maintained DocumentReference per stored
ServiceRequest, DiagnosticReport and ImagingStudy, written in the same transaction.

Pure. The index entry of `Type/id` has a deterministic id (`index_id`), so an update or delete of
the main resource finds it without a search: `index_refs` names it for the pre-plan read, and
`index_writes` turns the planned main writes into the index writes:

- create/update of a main resource -> a new version of its DocumentReference (current + 1, or 1);
- delete of a main resource -> a delete of its DocumentReference (if one is live);
- a no-op main write produces no `Write`, so nothing is indexed either.

The entry (`index_document`) carries: status `current`; `subject` = the main resource's subject;
`content[0].attachment.url` = the main resource's relative URL `Type/id`, which resolves against the
server base (R31); the main resource's identifiers (accession, study UID, placer...); `date` = the
transaction's time; `type` from the order/report code or the study's first procedure code;
`category` = the main resource's kind (`http://hl7.org/fhir/resource-types`) followed by its own
categories (ImagingStudy: its modalities); `context.period` from its clinical date and
`context.related` = the main resource. See docs/ig.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from app.fhir.meta import identifier_tokens, with_meta
from app.fhir.outcome import FhirError
from app.records import Operation, StoredResource, Write

MAIN_TYPES = frozenset({"ServiceRequest", "DiagnosticReport", "ImagingStudy"})
INDEX_TYPE = "DocumentReference"
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
FHIR_JSON = "application/fhir+json"
_ID_PREFIX = "mi-"


def index_id(main_ref: str) -> str:
    """The id of the DocumentReference indexing `main_ref` (`Type/id`): `mi-` + 40 hex digits of
    its SHA-256, a valid FHIR id (43 of at most 64 characters) for any main id."""
    return _ID_PREFIX + hashlib.sha256(main_ref.encode()).hexdigest()[:40]


def index_refs(refs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """(DocumentReference, id) of the index entry of every main resource among `refs`."""
    return {(INDEX_TYPE, index_id(f"{t}/{i}")) for t, i in refs if t in MAIN_TYPES}


def _period(value: object) -> dict[str, Any] | None:
    if isinstance(value, str):
        return {"start": value, "end": value}
    if isinstance(value, dict):
        period = {k: value[k] for k in ("start", "end") if isinstance(value.get(k), str)}
        return period or None
    return None


def clinical_period(main: Mapping[str, Any]) -> dict[str, Any] | None:
    """The main resource's clinical date as a Period: ServiceRequest occurrence[x] (dateTime or
    Period) else authoredOn; DiagnosticReport effective[x] else issued; ImagingStudy started."""
    type_ = main.get("resourceType")
    keys: tuple[str, ...]
    if type_ == "ServiceRequest":
        keys = ("occurrenceDateTime", "occurrencePeriod", "authoredOn")
    elif type_ == "DiagnosticReport":
        keys = ("effectiveDateTime", "effectivePeriod", "issued")
    else:
        keys = ("started",)
    for key in keys:
        period = _period(main.get(key))
        if period is not None:
            return period
    return None


def _type(main: Mapping[str, Any]) -> dict[str, Any] | None:
    if main.get("resourceType") == "ImagingStudy":
        codes = main.get("procedureCode") or []
        return codes[0] if codes and isinstance(codes[0], dict) else None
    code = main.get("code")
    return code if isinstance(code, dict) else None


def _categories(main: Mapping[str, Any]) -> list[dict[str, Any]]:
    kind = {"coding": [{"system": RESOURCE_TYPES, "code": main["resourceType"]}]}
    if main.get("resourceType") == "ImagingStudy":
        own = [{"coding": [m]} for m in main.get("modality") or [] if isinstance(m, dict)]
    else:
        own = [c for c in main.get("category") or [] if isinstance(c, dict)]
    return [kind, *own]


def index_document(main: Mapping[str, Any], now: str) -> dict[str, Any]:
    """The DocumentReference body (with `id`, without `meta`) indexing the stored `main`."""
    ref = f"{main['resourceType']}/{main['id']}"
    doc: dict[str, Any] = {"resourceType": INDEX_TYPE, "id": index_id(ref)}
    if main.get("identifier"):
        doc["identifier"] = list(main["identifier"])
    doc["status"] = "current"
    type_ = _type(main)
    if type_ is not None:
        doc["type"] = type_
    doc["category"] = _categories(main)
    if isinstance(main.get("subject"), dict):
        doc["subject"] = main["subject"]
    doc["date"] = now
    doc["content"] = [{"attachment": {"contentType": FHIR_JSON, "url": ref}}]
    context: dict[str, Any] = {}
    period = clinical_period(main)
    if period is not None:
        context["period"] = period
    context["related"] = [{"reference": ref}]
    doc["context"] = context
    return doc


def index_writes(
    writes: Iterable[Write], current: Mapping[str, StoredResource], now: str
) -> list[Write]:
    """The DocumentReference writes that keep the index in step with the planned `writes`."""
    planned = list(writes)
    taken = {w.ref for w in planned}
    out: list[Write] = []
    for w in planned:
        if w.type not in MAIN_TYPES:
            continue
        id_ = index_id(w.ref)
        ref = f"{INDEX_TYPE}/{id_}"
        if ref in taken:
            raise FhirError.of(
                422,
                "business-rule",
                f"IG R30: {ref} is the server-maintained index entry of {w.ref}; "
                "a client may not write it",
                INDEX_TYPE,
            )
        existing = current.get(ref)
        version = (existing.version if existing is not None else 0) + 1
        if w.op == "delete" or w.resource is None:
            if existing is not None and not existing.deleted:
                out.append(Write(INDEX_TYPE, id_, version, "delete", None))
            continue
        stored = with_meta(index_document(w.resource, now), id_, version, now)
        op: Operation = "create" if existing is None else "update"
        out.append(Write(INDEX_TYPE, id_, version, op, stored, identifier_tokens(stored)))
    return out


__all__ = [
    "INDEX_TYPE",
    "MAIN_TYPES",
    "clinical_period",
    "index_document",
    "index_id",
    "index_refs",
    "index_writes",
]
