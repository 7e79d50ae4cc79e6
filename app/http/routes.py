"""The Litestar routes, one per row of the interaction table (app/interactions/table.py), from
which the CapabilityStatement, the Bundle entry dispatch and the asynchronous replays are
derived too (so they cannot disagree)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from litestar import Request, Response, route
from litestar.enums import HttpMethod
from litestar.handlers import HTTPRouteHandler

from app.fhir.outcome import FhirError
from app.http.negotiation import media_type, parse_body
from app.http.render import render
from app.interactions.async_status import (
    REQUEST_ID_HEADER,
    accept,
    wants_async,
)
from app.interactions.capabilities import capabilities
from app.interactions.context import Services
from app.interactions.handlers import HANDLERS
from app.interactions.result import FhirRequest, FhirResponse
from app.interactions.table import ASYNC_STATUS, OPERATIONS, STATUS_PATH, TABLE, Row
from app.security.audit import touched
from app.security.scopes import AUDIT_TYPE, OPEN
from app.security.timeouts import timed

__all__ = ["ASYNC_STATUS", "TABLE", "Row", "fhir_routes"]


def base_url(request: Request, services: Services) -> str:
    configured = services.settings.public_base_url
    if configured:
        return configured.rstrip("/")
    return f"{request.base_url}".rstrip("/") + services.settings.base_path


async def _body(request: Request, row: Row) -> Any:
    raw = await request.body()
    if row.form:
        kind = media_type(request.headers.get("content-type"))
        if raw and kind != "application/x-www-form-urlencoded":
            raise FhirError.of(
                415, "not-supported", "POST _search takes application/x-www-form-urlencoded"
            )
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FhirError.of(400, "structure", "the form body is not UTF-8") from None
    return parse_body(raw, request.headers.get("content-type"))


def _headers(request: Request) -> dict[str, str]:
    """The request headers the interactions see, and the request id (for the audit)."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    headers[REQUEST_ID_HEADER] = str(request.scope["state"].get("request_id", ""))
    return headers


async def fhir_request(request: Request, services: Services, row: Row) -> FhirRequest:
    params = request.path_params
    type_ = params.get("type")
    if type_ is not None and type_ not in services.resource_types:
        raise FhirError.of(404, "not-supported", f"{type_!r} is not a FHIR R4 resource type")
    if type_ == AUDIT_TYPE and row.method in ("POST", "PUT", "PATCH", "DELETE"):
        raise FhirError.of(
            405, "not-supported", "the audit trail is written by the server only", Allow="GET"
        )
    return FhirRequest(
        base=base_url(request, services),
        type=type_,
        id=params.get("id"),
        version=params.get("vid"),
        file=params.get("file"),
        query=tuple(request.query_params.items()) if request.query_params else (),
        headers=_headers(request),
        body=await _body(request, row) if row.body or row.form else None,
    )


def request_services(request: Request) -> Services:
    """The app's services for this request: the caller (from the security layer) and a
    deadline on every engine call (MICDR_ENGINE_TIMEOUT)."""
    services: Services = request.app.state.services
    principal = request.scope["state"].get("principal")
    if principal is None:
        if services.settings.auth_configured:  # the security layer did not run: fail closed
            raise FhirError.of(401, "login", "this server needs an OAuth 2 bearer token")
        principal = OPEN
    seconds = services.settings.engine_timeout
    scoped = replace(
        services,
        principal=principal,
        store=timed(services.store, seconds),
        index=timed(services.index, seconds),
    )
    return scoped


def _audit_detail(request: Request, row: Row, fhir: FhirRequest | None) -> dict[str, Any]:
    detail: dict[str, Any] = {"interaction": row.code}
    if fhir is not None:
        detail.update(type=fhir.type, id=fhir.id)
    request.scope["state"]["audit_detail"] = detail
    return detail


def _note_answer(detail: dict[str, Any], answer: FhirResponse) -> None:
    refs, patients = touched(answer.resource)
    detail["resources"], detail["patients"] = refs, patients
    location = answer.headers.get("Content-Location", "")
    if answer.status == 202 and f"/{STATUS_PATH}/" in location:
        detail["submission"] = location.rsplit("/", 1)[1]


def _handler(row: Row, base_path: str) -> HTTPRouteHandler:
    run = HANDLERS[row.runs]

    async def handle(request: Request) -> Response[Any]:
        detail = _audit_detail(request, row, None)
        services = request_services(request)
        fhir = await fhir_request(request, services, row)
        detail = _audit_detail(request, row, fhir)
        if row.body and fhir.body is None:
            raise FhirError.of(400, "required", f"{row.method} needs a request body")
        try:
            if row.asynchronous and wants_async(fhir):
                answer = await accept(services, row.code, row.method, fhir)
            else:
                answer = await run(services, fhir)
        except FhirError as err:
            detail["detail"] = str(err)[:500]
            raise
        _note_answer(detail, answer)
        return render(request, answer)

    path = base_path + (row.path if row.path != "/" else "")
    handle.__name__ = f"{row.code}_{row.level}_{row.method.lower()}"
    return route(
        path or "/",
        http_method=[HttpMethod(row.method)],
        name=handle.__name__ + path,
        status_code=200,
    )(handle)


def fhir_routes(base_path: str) -> list[Any]:
    @route(f"{base_path}/metadata", http_method=["GET"], name="capabilities")
    async def metadata(request: Request) -> Response[bytes]:
        services: Services = request.app.state.services
        fhir = FhirRequest(base=base_url(request, services))
        return render(request, await capabilities(services, fhir))

    rows = (*TABLE, *ASYNC_STATUS, *OPERATIONS)
    return [metadata, *(_handler(row, base_path) for row in rows)]
