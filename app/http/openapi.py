"""`GET /openapi.json`: an OpenAPI 3.1 description of the FHIR routes, generated from the same
interaction table as the routes and the CapabilityStatement (app/interactions/table.py), so it
cannot disagree with them. FHIR JSON is described loosely (an object with `resourceType`): the
CapabilityStatement and the FHIR specification are the real contract; this document is for
generic HTTP tooling (and the schemathesis fuzz run, tests/fuzz)."""

from __future__ import annotations

import re
from typing import Any

from litestar import Request, get

from app.interactions.table import ASYNC_STATUS, OPERATIONS, TABLE, Row

FHIR_JSON = "application/fhir+json"
_RESOURCE = {
    "type": "object",
    "properties": {"resourceType": {"type": "string"}, "id": {"type": "string"}},
    "required": ["resourceType"],
    "additionalProperties": True,
}
_ANSWER = {"type": "object", "additionalProperties": True}
_SEARCH_PARAMS = (
    "_id", "_lastUpdated", "_count", "_sort", "_total", "_summary", "_elements", "_include",
    "_revinclude", "_tag", "identifier", "patient", "subject", "date", "status", "code",
    "patient.identifier", "_has:ImagingStudy:patient:status",
)  # fmt: skip
_SEARCH = {"search-type", "search-system"}


def _path(row: Row, base: str) -> str:
    path = base + (row.path if row.path != "/" else "")
    return re.sub(r"\{(\w+):str\}", r"{\1}", path) or "/"


def _operation(row: Row, types: list[str], secured: bool) -> dict[str, Any]:
    params: list[dict[str, Any]] = []
    for name in re.findall(r"\{(\w+):str\}", row.path):
        schema: dict[str, Any] = {"type": "string", "minLength": 1}
        if name == "type":
            schema = {"type": "string", "enum": types}
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    if row.code in _SEARCH and not row.form:
        params += [
            {"name": p, "in": "query", "required": False, "schema": {"type": "string"}}
            for p in _SEARCH_PARAMS
        ]
    op: dict[str, Any] = {
        "operationId": f"{row.code}-{row.level}-{row.method.lower()}-{len(row.path)}",
        "summary": f"FHIR {row.code} ({row.level} level)",
        "parameters": params,
        "responses": {
            "default": {
                "description": "A FHIR resource, Bundle or OperationOutcome",
                "content": {FHIR_JSON: {"schema": _ANSWER}},
            }
        },
    }
    if row.body:
        op["requestBody"] = {"required": True, "content": {FHIR_JSON: {"schema": _RESOURCE}}}
    if row.form:
        op["requestBody"] = {
            "required": False,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {p: {"type": "string"} for p in _SEARCH_PARAMS[:10]},
                    }
                }
            },
        }
    if secured:
        op["security"] = [{"bearer": []}]
    return op


def openapi_document(base: str, types: list[str], secured: bool) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for row in (*TABLE, *ASYNC_STATUS, *OPERATIONS):
        paths.setdefault(_path(row, base), {})[row.method.lower()] = _operation(row, types, secured)
    paths[f"{base}/metadata"] = {
        "get": {
            "operationId": "capabilities",
            "summary": "The CapabilityStatement",
            "responses": {
                "200": {
                    "description": "CapabilityStatement",
                    "content": {FHIR_JSON: {"schema": _RESOURCE}},
                }
            },
        }
    }
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "miCDR FHIR R4 API", "version": "0.1.0"},
        "paths": paths,
    }
    if secured:
        doc["components"] = {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            }
        }
    return doc


@get("/openapi.json", name="openapi", media_type="application/json")
async def openapi(request: Request) -> dict[str, Any]:
    services = request.app.state.services
    settings = services.settings
    return openapi_document(
        settings.base_path, sorted(services.resource_types), settings.auth_configured
    )
