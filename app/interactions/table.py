"""The interaction table: one row per FHIR interaction a URL reaches. The Litestar routes and
the OpenAPI document (app/http), the CapabilityStatement (capabilities.py), the GET entries of
a batch or transaction (_reads.py) and the replay of asynchronous submissions (replay.py) are
all derived from it, so they cannot disagree. Pure data: which function runs a row is said once,
by code, in handlers.py (the read side in _reads.py)."""

from __future__ import annotations

from dataclasses import dataclass

STATUS_PATH = "$async-status"
EXPORT_STATUS_PATH = "$export-status"
EXPORT_FILE_PATH = "$export-file"
IMPORT_STATUS_PATH = "$import-status"
IMPORT_FILE_PATH = "$import-file"


@dataclass(frozen=True)
class Row:
    """`code` is the CapabilityStatement interaction code; `level` is system, type or instance;
    `path` is relative to the FHIR base, with `{name:str}` path parameters."""

    code: str
    method: str
    path: str
    level: str
    body: bool = False
    form: bool = False  # an application/x-www-form-urlencoded body (POST _search)
    # `Prefer: respond-async` accepts it as a submission, replayed later by a worker
    asynchronous: bool = False
    handler: str = ""  # the function that runs it, when not the one named by `code`
    # an operation (`$name`): declared in the CapabilityStatement with this definition, not
    # as an interaction: under `rest.operation` at system level, else under the resource type
    # `on`. Its path keeps `{type:str}` (a literal type segment would shadow `POST /{type}` in
    # the router); the function answers 404 for another type.
    operation: str = ""
    on: str = ""

    @property
    def runs(self) -> str:
        return self.handler or self.code

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(s for s in self.path.split("/") if s)


TABLE: tuple[Row, ...] = (
    Row("transaction", "POST", "/", "system", body=True, asynchronous=True),
    Row("history-system", "GET", "/_history", "system"),
    Row("transaction", "POST", "/Bundle", "system", body=True, asynchronous=True),
    Row("search-system", "GET", "/", "system"),
    Row("search-type", "GET", "/{type:str}", "type"),
    Row("search-type", "POST", "/{type:str}/_search", "type", form=True),
    Row("create", "POST", "/{type:str}", "type", body=True, asynchronous=True),
    Row("update", "PUT", "/{type:str}", "type", body=True, asynchronous=True),
    Row("patch", "PATCH", "/{type:str}", "type", body=True, asynchronous=True),
    Row("delete", "DELETE", "/{type:str}", "type", asynchronous=True),
    Row("history-type", "GET", "/{type:str}/_history", "type"),
    Row("read", "GET", "/{type:str}/{id:str}", "instance"),
    Row("update", "PUT", "/{type:str}/{id:str}", "instance", body=True, asynchronous=True),
    Row("patch", "PATCH", "/{type:str}/{id:str}", "instance", body=True, asynchronous=True),
    Row("delete", "DELETE", "/{type:str}/{id:str}", "instance", asynchronous=True),
    Row("history-instance", "GET", "/{type:str}/{id:str}/_history", "instance"),
    Row("vread", "GET", "/{type:str}/{id:str}/_history/{vid:str}", "instance"),
    # Subscriptions Backport IG operation; declared on the Subscription resource entry
    Row(
        "subscription-status",
        "GET",
        "/{type:str}/{id:str}/$status",
        "instance",
        operation="http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/"
        "backport-subscription-status",
        on="Subscription",
    ),
    Row(
        "subscription-events",
        "GET",
        "/{type:str}/{id:str}/$events",
        "instance",
        operation="http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/"
        "backport-subscription-events",
        on="Subscription",
    ),
)

# FHIR's asynchronous request pattern: routed like the table, but no CapabilityStatement
# interaction (R4 has no code for it) and no Bundle entry.
ASYNC_STATUS: tuple[Row, ...] = (
    Row("async-status", "GET", f"/{STATUS_PATH}/{{id:str}}", "system"),
    Row("async-status", "DELETE", f"/{STATUS_PATH}/{{id:str}}", "system", handler="async-cancel"),
)


# FHIR operations (operations.html): routed like the table, declared in the
# CapabilityStatement with their definitions (`Row.operation`, `Row.on`), never Bundle
# entries. The Bulk Data IG's status and file URLs are routed with them.
_BULK = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/"
_EXPORT = _BULK + "export"
_PATIENT_EXPORT = _BULK + "patient-export"
_GROUP_EXPORT = _BULK + "group-export"
# No published definition: the kick-off of HAPI FHIR's and Azure's $import (docs/api/import.md).
_IMPORT = "http://micdr.org/fhir/OperationDefinition/import"
_EVERYTHING = "http://hl7.org/fhir/OperationDefinition/Patient-everything"

OPERATIONS: tuple[Row, ...] = (
    Row("export", "GET", "/$export", "system", handler="export-system", operation=_EXPORT),
    Row(
        "export",
        "POST",
        "/$export",
        "system",
        body=True,
        handler="export-system",
        operation=_EXPORT,
    ),
    # Patient only (and Group only, Patient only below): the handlers refuse other types. The
    # type stays a path parameter: a literal `Patient` segment would hide `/{type}/{id}`.
    Row(
        "export",
        "GET",
        "/{type:str}/$export",
        "type",
        handler="export-patient",
        operation=_PATIENT_EXPORT,
        on="Patient",
    ),
    Row(
        "export",
        "POST",
        "/{type:str}/$export",
        "type",
        body=True,
        handler="export-patient",
        operation=_PATIENT_EXPORT,
        on="Patient",
    ),
    Row(
        "export",
        "GET",
        "/{type:str}/{id:str}/$export",
        "instance",
        handler="export-group",
        operation=_GROUP_EXPORT,
        on="Group",
    ),
    Row(
        "export",
        "POST",
        "/{type:str}/{id:str}/$export",
        "instance",
        body=True,
        handler="export-group",
        operation=_GROUP_EXPORT,
        on="Group",
    ),
    Row(
        "everything",
        "GET",
        "/{type:str}/{id:str}/$everything",
        "instance",
        operation=_EVERYTHING,
        on="Patient",
    ),
    Row("export-status", "GET", f"/{EXPORT_STATUS_PATH}/{{id:str}}", "system"),
    Row(
        "export-status",
        "DELETE",
        f"/{EXPORT_STATUS_PATH}/{{id:str}}",
        "system",
        handler="export-cancel",
    ),
    Row("export-file", "GET", f"/{EXPORT_FILE_PATH}/{{id:str}}/{{file:str}}", "system"),
    Row(
        "import",
        "POST",
        "/$import",
        "system",
        body=True,
        handler="import-system",
        operation=_IMPORT,
    ),
    Row("import-status", "GET", f"/{IMPORT_STATUS_PATH}/{{id:str}}", "system"),
    Row(
        "import-status",
        "DELETE",
        f"/{IMPORT_STATUS_PATH}/{{id:str}}",
        "system",
        handler="import-cancel",
    ),
    Row("import-file", "GET", f"/{IMPORT_FILE_PATH}/{{id:str}}/{{file:str}}", "system"),
)


def capability_codes() -> list[str]:
    """The interaction codes the CapabilityStatement declares (operations aside)."""
    return list(dict.fromkeys(row.code for row in TABLE if not row.operation))


def operations(resource_type: str | None) -> list[tuple[str, str]]:
    """(name, definition) of the operations declared on `resource_type` (None: the system's),
    each once however many rows route it."""
    return list(
        dict.fromkeys(
            (row.segments[-1].lstrip("$"), row.operation)
            for row in (*TABLE, *OPERATIONS)
            if row.operation and (row.on == resource_type if resource_type else not row.on)
        )
    )


def asynchronous_codes() -> frozenset[str]:
    """The interactions a submission may replay."""
    return frozenset(row.code for row in TABLE if row.asynchronous)


def match(method: str, segments: tuple[str, ...]) -> tuple[Row, dict[str, str]] | None:
    """The row of TABLE that `method` on the path `segments` reaches, and its path parameters;
    a literal segment wins over a parameter (`_history` is not an id), as in the router."""
    best: tuple[int, Row, dict[str, str]] | None = None
    for row in TABLE:
        if row.method != method or len(row.segments) != len(segments):
            continue
        params: dict[str, str] = {}
        literal = 0
        for pattern, segment in zip(row.segments, segments, strict=True):
            if pattern.startswith("{"):
                params[pattern[1:].split(":", 1)[0].rstrip("}")] = segment
            elif pattern == segment:
                literal += 1
            else:
                break
        else:
            if best is None or literal > best[0]:
                best = (literal, row, params)
    return None if best is None else (best[1], best[2])
