"""The interaction table: one row per FHIR interaction, from which both the Litestar routes and
the CapabilityStatement are generated (so they cannot disagree)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from litestar import Request, Response, route
from litestar.enums import HttpMethod
from litestar.handlers import HTTPRouteHandler

from app.fhir.outcome import FhirError
from app.http.negotiation import media_type, parse_body
from app.http.render import render
from app.interactions.async_status import (
    INTERACTIONS,
    STATUS_PATH,
    accept,
    async_cancel,
    async_status,
    wants_async,
)
from app.interactions.bundle import submit_bundle
from app.interactions.capabilities import capabilities
from app.interactions.context import Services
from app.interactions.create import create
from app.interactions.delete import delete
from app.interactions.history import history
from app.interactions.patch import patch
from app.interactions.read import read
from app.interactions.result import FhirRequest, FhirResponse
from app.interactions.search import search
from app.interactions.update import update
from app.interactions.vread import vread

Interaction = Callable[[Services, FhirRequest], Awaitable[FhirResponse]]


@dataclass(frozen=True)
class Row:
    """`code` is the CapabilityStatement interaction code; `level` is system, type or instance."""

    code: str
    method: str
    path: str
    level: str
    run: Interaction
    body: bool = False
    form: bool = False  # an application/x-www-form-urlencoded body (POST _search)


TABLE: tuple[Row, ...] = (
    Row("transaction", "POST", "/", "system", submit_bundle, body=True),
    Row("history-system", "GET", "/_history", "system", history),
    Row("transaction", "POST", "/Bundle", "system", submit_bundle, body=True),
    Row("search-system", "GET", "/", "system", search),
    Row("search-type", "GET", "/{type:str}", "type", search),
    Row("search-type", "POST", "/{type:str}/_search", "type", search, form=True),
    Row("create", "POST", "/{type:str}", "type", create, body=True),
    Row("update", "PUT", "/{type:str}", "type", update, body=True),
    Row("patch", "PATCH", "/{type:str}", "type", patch, body=True),
    Row("delete", "DELETE", "/{type:str}", "type", delete),
    Row("history-type", "GET", "/{type:str}/_history", "type", history),
    Row("read", "GET", "/{type:str}/{id:str}", "instance", read),
    Row("update", "PUT", "/{type:str}/{id:str}", "instance", update, body=True),
    Row("patch", "PATCH", "/{type:str}/{id:str}", "instance", patch, body=True),
    Row("delete", "DELETE", "/{type:str}/{id:str}", "instance", delete),
    Row("history-instance", "GET", "/{type:str}/{id:str}/_history", "instance", history),
    Row("vread", "GET", "/{type:str}/{id:str}/_history/{vid:str}", "instance", vread),
)

# FHIR's asynchronous request pattern: routed like the table, but no CapabilityStatement
# interaction (R4 has no code for it).
ASYNC_STATUS: tuple[Row, ...] = (
    Row("async-status", "GET", f"/{STATUS_PATH}/{{id:str}}", "system", async_status),
    Row("async-status", "DELETE", f"/{STATUS_PATH}/{{id:str}}", "system", async_cancel),
)


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


async def fhir_request(request: Request, services: Services, row: Row) -> FhirRequest:
    params = request.path_params
    type_ = params.get("type")
    if type_ is not None and type_ not in services.resource_types:
        raise FhirError.of(404, "not-supported", f"{type_!r} is not a FHIR R4 resource type")
    return FhirRequest(
        base=base_url(request, services),
        type=type_,
        id=params.get("id"),
        version=params.get("vid"),
        query=tuple(request.query_params.items()) if request.query_params else (),
        headers={k.lower(): v for k, v in request.headers.items()},
        body=await _body(request, row) if row.body or row.form else None,
    )


def _handler(row: Row, base_path: str) -> HTTPRouteHandler:
    async def handle(request: Request) -> Response[bytes]:
        services: Services = request.app.state.services
        fhir = await fhir_request(request, services, row)
        if row.body and fhir.body is None:
            raise FhirError.of(400, "required", f"{row.method} needs a request body")
        if row.code in INTERACTIONS and wants_async(fhir):
            return render(request, await accept(services, row.code, row.method, fhir))
        return render(request, await row.run(services, fhir))

    path = base_path + (row.path if row.path != "/" else "")
    handle.__name__ = f"{row.code}_{row.level}_{row.method.lower()}"
    return route(
        path or "/",
        http_method=[HttpMethod(row.method)],
        name=handle.__name__ + path,
        status_code=200,
    )(handle)


def fhir_routes(base_path: str) -> list[Any]:
    codes = [row.code for row in TABLE]

    @route(f"{base_path}/metadata", http_method=["GET"], name="capabilities")
    async def metadata(request: Request) -> Response[bytes]:
        services: Services = request.app.state.services
        fhir = FhirRequest(base=base_url(request, services))
        return render(request, await capabilities(services, fhir, codes))

    return [metadata, *(_handler(row, base_path) for row in (*TABLE, *ASYNC_STATUS))]
