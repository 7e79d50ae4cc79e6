"""Every FHIR body the server answers, parsed strictly (issue 16): a response whose shape a strict
R4 client would reject fails the test that received it, whatever that test asserts.

Two independent parsers, because each misses what the other catches:

- the fhir.resources R4B models (pydantic, extra elements forbidden): a second implementation
  that shares no code with the server. R4B differs from R4 on a few types
  (docs/decisions/0001-r4b-models-for-r4.md): an R4 type the R4B models lack is checked by the
  R4 table alone, and R4B is lax where R4 is strict (`"true"` for a boolean, `3.0` for an
  integer, unknown codes, missing required elements);
- the project's R4 (4.0.1) element table (`app/fhir/validate.py`), which is exact R4 and checks
  those JSON rules, cardinalities and required codes, but is the server's own code.

XML bodies are read with the server's XML codec (`app/fhir/xml.py`), then parsed the same way.
Which bodies are FHIR is decided by path and content type, explicitly: `/health` and
`/openapi.json` answer plain JSON, and so do the analysts' answers under `/analytics/api`;
every other body must be `application/fhir+json` or `application/fhir+xml` (an empty body is
fine: 204, HEAD, `return=minimal`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import requests
from fhir.resources.R4B import get_fhir_model_class
from fhirclient.server import FHIRServer
from pydantic import ValidationError

from app.fhir.outcome import FhirError
from app.fhir.validate import validate_resource
from app.fhir.xml import parse_xml

NOT_FHIR_PATHS = frozenset({"/health", "/openapi.json"})
# plain JSON answers below these paths (their errors are still OperationOutcomes, checked)
JSON_API_PREFIXES = ("/analytics/api",)
FHIR_JSON = "application/fhir+json"
FHIR_XML = "application/fhir+xml"
# The Bulk Data IG's bodies that are not one FHIR resource: the completion manifest (JSON) on a
# status URL, and NDJSON files, each line a resource.
EXPORT_STATUS = "/$export-status/"
EXPORT_FILE = "/$export-file/"
IMPORT_STATUS = "/$import-status/"
IMPORT_FILE = "/$import-file/"
MANIFEST_JSON = "application/json"
FHIR_NDJSON = "application/fhir+ndjson"


class NotStrictFhir(AssertionError):
    """A response body a strict R4 parser rejects."""


def check_body(body: bytes, content_type: str | None, path: str) -> None:
    """Raise `NotStrictFhir` unless `body`, answered on `path`, is strict FHIR R4 (or exempt)."""
    if path in NOT_FHIR_PATHS or not body:
        return
    if path.startswith(JSON_API_PREFIXES) and (content_type or "").startswith("application/json"):
        return
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind == MANIFEST_JSON and (EXPORT_STATUS in path or IMPORT_STATUS in path):
        check_manifest(body, path, imported=IMPORT_STATUS in path)
        return
    if kind == FHIR_NDJSON and (EXPORT_FILE in path or IMPORT_FILE in path):
        check_ndjson(body, path)
        return
    if kind == FHIR_JSON:
        try:
            resource = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise NotStrictFhir(f"{path}: not JSON: {exc}") from None
    elif kind == FHIR_XML:
        try:
            resource = parse_xml(body)
        except FhirError as err:
            raise NotStrictFhir(f"{path}: not FHIR XML: {err}") from None
    else:
        raise NotStrictFhir(f"{path}: a FHIR endpoint answered Content-Type {content_type!r}")
    check_resource(resource, path)


def check_manifest(body: bytes, path: str, imported: bool = False) -> None:
    """A Bulk Data completion manifest (export.html#response---complete-status): exactly the
    IG's fields, each of its type; output and error entries with type, url and count. An
    import's entries name their input (`inputUrl`); its output entries count, without a url."""
    try:
        manifest = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise NotStrictFhir(f"{path}: the manifest is not JSON: {exc}") from None
    problems = []
    if not isinstance(manifest, dict):
        raise NotStrictFhir(f"{path}: the manifest is not a JSON object")
    allowed = {"transactionTime", "request", "requiresAccessToken", "output", "error", "extension"}
    problems += [f"unknown field {k!r}" for k in manifest if k not in allowed]
    if not isinstance(manifest.get("transactionTime"), str):
        problems.append("transactionTime must be an instant")
    if not isinstance(manifest.get("request"), str):
        problems.append("request must be the kick-off URL")
    if not isinstance(manifest.get("requiresAccessToken"), bool):
        problems.append("requiresAccessToken must be a boolean")
    for name in ("output", "error"):
        entries = manifest.get(name)
        if not isinstance(entries, list):
            problems.append(f"{name} must be an array")
            continue
        keys = {"type", "url", "count", "extension"} | ({"inputUrl"} if imported else set())
        for entry in entries:
            ok = (
                isinstance(entry, dict)
                and isinstance(entry.get("type"), str)
                and (isinstance(entry.get("url"), str) or (imported and name == "output"))
                and isinstance(entry.get("count", 0), int)
                and (not imported or isinstance(entry.get("inputUrl"), str))
                and set(entry) <= keys
            )
            if not ok:
                problems.append(f"{name} entry {entry!r} is not type/url/count")
    if problems:
        raise NotStrictFhir(f"{path}: not a Bulk Data manifest: " + "; ".join(problems))


def check_ndjson(body: bytes, path: str) -> None:
    """Every line of an NDJSON file is one strict R4 resource, each ended by a newline."""
    if not body.endswith(b"\n"):
        raise NotStrictFhir(f"{path}: the NDJSON file does not end with a newline")
    for number, line in enumerate(body.split(b"\n")[:-1], 1):
        try:
            resource = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise NotStrictFhir(f"{path} line {number}: not JSON: {exc}") from None
        check_resource(resource, f"{path} line {number}")


def check_resource(resource: Any, where: str = "body") -> None:
    """Raise `NotStrictFhir` unless `resource` (FHIR JSON) parses strictly as R4."""
    problems = _r4_table(resource) + _r4b_model(resource)
    if problems:
        listed = "\n  ".join(problems)
        raise NotStrictFhir(f"{where}: not strict FHIR R4:\n  {listed}")


def _r4_table(resource: Any) -> list[str]:
    try:
        validate_resource(resource)
    except FhirError as err:
        return [f"R4: {', '.join(i.expression)}: {i.diagnostics}" for i in err.issues]
    return []


def _r4b_model(resource: Any) -> list[str]:
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        return ["R4B: not a resource"]
    try:
        model = get_fhir_model_class(resource["resourceType"])
    except ValueError:
        return []  # an R4 type R4B does not have: the R4 table has checked it
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        return [f"R4B: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
    return []


async def strict_response(response: httpx.Response) -> None:
    """An httpx response hook: the body of every answer, checked (see the module docstring)."""
    await response.aread()
    check_body(response.content, response.headers.get("content-type"), response.url.path)


def strict_requests_response(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """The same check as a `requests` response hook (fhirclient's FHIRServer session)."""
    check_body(response.content, response.headers.get("content-type"), urlsplit(response.url).path)


def strict_fhir_server(base_uri: str) -> FHIRServer:
    """A fhirclient server whose every response body is checked (see the module docstring)."""
    server = FHIRServer(None, base_uri=base_uri)
    server.session.hooks["response"].append(strict_requests_response)
    return server
