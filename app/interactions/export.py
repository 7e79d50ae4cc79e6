"""export: the Bulk Data kick-off (Bulk Data Access IG v2.0.0, export.html#bulk-data-kick-off-
request) at system (`[base]/$export`), patient (`[base]/Patient/$export`) and group level
(`[base]/Group/[id]/$export`), by GET (query) or POST (`Parameters`).

Parse and check the parameters (app/bulk/kickoff.py), check the caller's scopes, fix the
snapshot (the store's commit sequence, then `transactionTime`), resolve a Group's members,
store the export as a submission and ring the queue; answer `202` with `Content-Location` to
the status URL (export_status.py). The workers produce the files (workers/export.py).
API: docs/api/export.md.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson

from app.bulk.kickoff import (
    ExportRequest,
    bad,
    check_headers,
    lenient,
    parameters_of,
    parse_kickoff,
)
from app.bulk.output import ExportState
from app.fhir.outcome import FhirError, Issue, operation_outcome
from app.interactions._access import require, visible
from app.interactions.async_status import accept_bulk
from app.interactions.context import Services
from app.interactions.result import FhirRequest, FhirResponse
from app.interactions.table import EXPORT_STATUS_PATH
from indexing.compartment import Compartment
from indexing.plan.errors import InvalidSearch
from indexing.plan.parse import parse_search

FHIR_JSON = "application/fhir+json; charset=utf-8"


@cache
def patient_compartment() -> Compartment:
    return Compartment.load()


def _request_url(request: FhirRequest, path: str) -> str:
    query = [(k, v) for k, v in request.query]
    return f"{request.base}/{path}" + (f"?{urlencode(query)}" if query else "")


async def _members(services: Services, group_id: str) -> tuple[str, ...]:
    """The Patient ids among the Group's active members (the current version of the Group)."""
    access = require(services, "Group", "r")
    stored = await services.store.read("Group", group_id)
    if stored is None or stored.deleted or not visible(services, access, stored):
        raise FhirError.of(404, "not-found", f"Group/{group_id} is not known")
    ids: list[str] = []
    for member in (stored.resource or {}).get("member") or []:
        if member.get("inactive") is True:
            continue
        ref = str((member.get("entity") or {}).get("reference") or "")
        kind, _, id_ = ref.rpartition("/")
        if kind.rsplit("/", 1)[-1] == "Patient" and id_ and id_ not in ids:
            ids.append(id_)
    return tuple(ids)


# Search result parameters that mean nothing in a filter.
_NOT_CRITERIA = frozenset(
    {"_include", "_revinclude", "_sort", "_count", "_summary", "_elements", "_total", "_contained"}
)


def check_type_filters(services: Services, export: ExportRequest) -> None:
    """Each `_typeFilter` is a search of our grammar, criteria only (400 naming it if not)."""
    for type_, query in export.type_filters:
        pairs = parse_qsl(query, keep_blank_values=True)
        extra = sorted({name for name, _ in pairs} & _NOT_CRITERIA)
        if extra:
            raise bad(
                f"_typeFilter {type_}?{query}: {', '.join(extra)} is no criterion", "_typeFilter"
            )
        try:
            parse_search(services.registry, type_, pairs, strict=True)
        except InvalidSearch as err:
            raise bad(f"_typeFilter {type_}?{query}: {err.diagnostics}", "_typeFilter") from None


async def _kickoff(services: Services, request: FhirRequest, level: str, path: str) -> FhirResponse:
    warnings = check_headers(request.headers, lenient(request.headers))
    post = request.body is not None
    pairs: list[tuple[str, Any]] = parameters_of(request.body) if post else list(request.query)
    compartment = patient_compartment()
    export = parse_kickoff(
        level,
        pairs,
        post=post,
        lenient=lenient(request.headers),
        known_types=services.resource_types,
        compartment_types=compartment.types,
        group=request.id if level == "group" else None,
    )
    check_type_filters(services, export)
    for type_ in export.types:
        require(services, type_, "r")
    if level == "group":
        assert request.id is not None
        members = await _members(services, request.id)
        listed = export.patients
        chosen = members if listed is None else tuple(p for p in members if p in listed)
        export = replace(export, patients=chosen)
    job = {
        "interaction": ExportState.KIND,
        "method": "POST" if post else "GET",
        "url": _request_url(request, path),
        "export": export.to_json(),
        "seq": await services.store.sequence(),
    }
    sub = await accept_bulk(services, request, job)
    issues = [
        Issue("informational", f"export {sub.id} accepted", severity="information"),
        *warnings,
        *(Issue("not-supported", text, severity="warning") for text in export.ignored),
    ]
    # As bytes: the kick-off's own `_elements` must not shape its OperationOutcome.
    return FhirResponse(
        202,
        headers={"Content-Location": f"{request.base}/{EXPORT_STATUS_PATH}/{sub.id}"},
        raw=orjson.dumps(operation_outcome(issues)),
        media_type=FHIR_JSON,
    )


async def export_system(services: Services, request: FhirRequest) -> FhirResponse:
    return await _kickoff(services, request, "system", "$export")


def only_on(request: FhirRequest, type_: str, operation: str) -> None:
    if request.type != type_:
        raise FhirError.of(
            404, "not-supported", f"{operation} is defined on {type_}, not on {request.type}"
        )


async def export_patient(services: Services, request: FhirRequest) -> FhirResponse:
    only_on(request, "Patient", "$export at type level")
    return await _kickoff(services, request, "patient", "Patient/$export")


async def export_group(services: Services, request: FhirRequest) -> FhirResponse:
    only_on(request, "Group", "$export at instance level")
    return await _kickoff(services, request, "group", f"Group/{request.id}/$export")
