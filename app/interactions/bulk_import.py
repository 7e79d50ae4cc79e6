"""import: the Bulk Data import kick-off, `POST [base]/$import` with `Prefer: respond-async` and
a `Parameters` body naming NDJSON inputs by URL (`file:` in the operator's import folders, or
https) — the shape of the $import operations in use (HAPI FHIR, Azure).

Check the parameters and each input's URL (app/bulk/imports.py), that the caller may write
the declared types, store the import as a submission and ring the queue; answer `202` with
`Content-Location` to `$import-status/<id>` (export_status.py serves both kinds of bulk job).
The workers read and commit the inputs (workers/bulk_import.py), as the caller: every line is
checked against the caller's scopes, validated and written as `micdr load` writes it.
API: docs/api/import.md.
"""

from __future__ import annotations

import orjson

from app.bulk.imports import ImportState, parse_import
from app.bulk.kickoff import check_headers
from app.fhir.outcome import Issue, operation_outcome
from app.interactions._access import require
from app.interactions.async_status import accept_bulk
from app.interactions.context import Services
from app.interactions.result import FhirRequest, FhirResponse
from app.interactions.table import IMPORT_STATUS_PATH

FHIR_JSON = "application/fhir+json; charset=utf-8"


async def import_system(services: Services, request: FhirRequest) -> FhirResponse:
    check_headers(request.headers, lenient=False, operation="import")
    settings = services.settings
    imported = parse_import(
        request.body, services.resource_types, settings.import_dirs, settings.import_allow_list
    )
    for type_ in dict.fromkeys(i.type for i in imported.inputs if i.type):
        require(services, type_, "c")
        require(services, type_, "u")
    job = {
        "interaction": ImportState.KIND,
        "method": "POST",
        "url": f"{request.base}/$import",
        "import": imported.to_json(),
    }
    sub = await accept_bulk(services, request, job)
    issues = [Issue("informational", f"import {sub.id} accepted", severity="information")]
    return FhirResponse(
        202,
        headers={"Content-Location": f"{request.base}/{IMPORT_STATUS_PATH}/{sub.id}"},
        raw=orjson.dumps(operation_outcome(issues)),
        media_type=FHIR_JSON,
    )
