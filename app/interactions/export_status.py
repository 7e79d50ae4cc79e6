"""The Bulk Data status and file URLs (Bulk Data Access IG v2.0.0, export.html#bulk-data-
status-request, #bulk-data-delete-request, #file-request), for exports and, the same way, for
imports (`$import-status`, `$import-file`: the files of refused lines):

- `GET [base]/$export-status/<id>`: `202` with `X-Progress` and `Retry-After` while the export
  is queued or running; `200` with the completion manifest (`application/json`) once done; the
  OperationOutcome and its 4xx/5xx if it failed; `404` for an unknown, cancelled or expired
  export (after MICDR_EXPORT_RETENTION seconds).
- `DELETE` on it: cancels a queued or running export, or forgets a finished one, and removes its
  files; `202`. (A cancelled import stops after the unit of lines it is committing: what it
  committed stays.)
- `GET [base]/$export-file/<id>/<file>`: the file as `application/fhir+ndjson`, streamed chunk
  by chunk.

A bulk job is visible to its submitter only (anyone, without authentication), as asynchronous
submissions are. API: docs/api/export.md, docs/api/import.md.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import orjson

from app.bulk.imports import ImportState
from app.bulk.output import NDJSON, ExportState, OutputFile
from app.bulk.port import ExportFiles
from app.fhir.clock import format_instant, http_date
from app.fhir.outcome import FhirError, information
from app.interactions.async_status import FINISHED
from app.interactions.context import Services
from app.interactions.result import FhirRequest, FhirResponse
from app.store.port import Submission

RETRY_AFTER_SECONDS = "2"
# Accept values a file request may send.
FILE_ACCEPTS = frozenset({NDJSON, "application/ndjson", "application/x-ndjson", "*/*", ""})
MANIFEST_TYPE = "application/json"
# the checkpoint each kind of bulk job keeps in its journal
_CHECKPOINTS: dict[str, type[ExportState] | type[ImportState]] = {
    ExportState.KIND: ExportState,
    ImportState.KIND: ImportState,
}


def _files(services: Services) -> ExportFiles:
    assert services.files is not None, "app/deploy hands every process its export files"
    return services.files


def _output_file(sub: Submission, name: str) -> OutputFile | None:
    """The file `name` the bulk job's checkpoint lists (an export's output or errors, an
    import's refused lines)."""
    checkpoint = _CHECKPOINTS.get(sub.request.get("interaction") or "")
    saved = sub.journal.get(checkpoint.KIND) if checkpoint is not None else None
    if checkpoint is None or not saved:
        return None
    return checkpoint.from_json(saved).file(name)


async def _job(services: Services, id_: str | None, kind: str) -> Submission:
    """The caller's live bulk job `id_` of this kind, else 404 (expired ones too: the IG says
    so)."""
    sub = await services.store.submission(id_ or "")
    principal = services.principal
    if (
        sub is None
        or sub.request.get("interaction") != kind
        or sub.state == "cancelled"
        or not (principal.open or sub.contributor == principal.submitter)
    ):
        raise FhirError.of(404, "not-found", f"no {kind} {id_}")
    if sub.expires is not None and sub.expires < time.time():
        raise FhirError.of(404, "not-found", f"{kind} {id_} has expired and its files are gone")
    return sub


async def export_status(services: Services, request: FhirRequest) -> FhirResponse:
    return await _status(services, request, ExportState.KIND)


async def import_status(services: Services, request: FhirRequest) -> FhirResponse:
    return await _status(services, request, ImportState.KIND)


async def _status(services: Services, request: FhirRequest, kind: str) -> FhirResponse:
    sub = await _job(services, request.id, kind)
    if sub.state not in FINISHED or sub.result is None:
        progress = sub.progress if sub.state == "running" and sub.progress else sub.state
        return FhirResponse(
            202,
            information(f"{kind} {sub.id} is {sub.state}"),
            {"X-Progress": progress[:100], "Retry-After": RETRY_AFTER_SECONDS},
        )
    status = int(sub.result["status"])
    body = sub.result.get("body")
    if status != 200 or not isinstance(body, dict):
        return FhirResponse(status, body if isinstance(body, dict) else None)
    headers = {}
    if sub.expires is not None:
        headers["Expires"] = http_date(format_instant(datetime.fromtimestamp(sub.expires, UTC)))
    return FhirResponse(200, headers=headers, raw=orjson.dumps(body), media_type=MANIFEST_TYPE)


async def export_cancel(services: Services, request: FhirRequest) -> FhirResponse:
    return await _cancel(services, request, ExportState.KIND)


async def import_cancel(services: Services, request: FhirRequest) -> FhirResponse:
    return await _cancel(services, request, ImportState.KIND)


async def _cancel(services: Services, request: FhirRequest, kind: str) -> FhirResponse:
    for _ in range(5):
        sub = await _job(services, request.id, kind)
        now = time.time()
        cancelled = await services.store.update_submission(
            sub.id,
            {"state": sub.state},
            {
                "state": "cancelled",
                "owner": None,
                "updated": now,
                "finished": now,
                "expires": now + services.settings.async_result_ttl,
            },
        )
        if cancelled is not None:
            await _files(services).remove(sub.id)
            return FhirResponse(202, information(f"{kind} {sub.id} cancelled; its files removed"))
    raise FhirError.of(409, "conflict", f"{kind} {request.id} kept changing; try again")


async def export_file(services: Services, request: FhirRequest) -> FhirResponse:
    return await _file(services, request, ExportState.KIND)


async def import_file(services: Services, request: FhirRequest) -> FhirResponse:
    return await _file(services, request, ImportState.KIND)


async def _file(services: Services, request: FhirRequest, kind: str) -> FhirResponse:
    sub = await _job(services, request.id, kind)
    found = _output_file(sub, request.file or "")
    if sub.state != "done" or found is None or not found.count:
        raise FhirError.of(404, "not-found", f"{kind} {sub.id} has no file {request.file!r}")
    accept = (request.header("Accept") or "").split(";")[0].strip().lower()
    if accept not in FILE_ACCEPTS:
        raise FhirError.of(406, "not-supported", f"{kind} files are {NDJSON}, not {accept!r}")
    return FhirResponse(
        200,
        stream=_files(services).read(sub.id, found.name, found.chunks),
        media_type=NDJSON,
    )
