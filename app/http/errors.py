"""Every exception becomes an OperationOutcome with the right status; never a traceback."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException

from app.fhir.outcome import FhirError
from app.http.render import render_error
from app.security.timeouts import EngineTimeout
from app.store.port import StoreError
from indexing.engines.port import IndexUnavailable

log = logging.getLogger("micdr.http")

_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    413: "too-costly",
    415: "not-supported",
    429: "throttled",
}


def on_fhir_error(request: Request, exc: FhirError) -> Response[bytes]:
    return render_error(request, exc)


def on_http_exception(request: Request, exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    if status == 404:
        detail = f"{request.method} {request.url.path} is not a FHIR endpoint of this server"
    elif status == 405:
        detail = f"{request.method} is not supported on {request.url.path}"
    elif status == 413:
        detail = "the request body is larger than this server accepts (MICDR_MAX_BODY_BYTES)"
    else:
        detail = str(exc.detail)
    err = FhirError.of(status, _CODES.get(status, "processing"), detail)
    if exc.headers:
        err.headers.update(exc.headers)
    return render_error(request, err)


def on_store_error(request: Request, exc: Exception) -> Response[bytes]:
    log.error("store error: %s", exc)
    return render_error(
        request, FhirError.of(503, "transient", "the resource store is unavailable; retry later")
    )


def on_index_unavailable(request: Request, exc: IndexUnavailable) -> Response[bytes]:
    log.error("search index unavailable: %s", exc)
    detail = "the search index is unavailable; retry later"
    return render_error(request, FhirError.of(503, "transient", detail, **{"Retry-After": "5"}))


def on_engine_timeout(request: Request, exc: EngineTimeout) -> Response[bytes]:
    log.error("engine timeout: %s", exc)
    detail = f"the server's engines did not answer within {exc.seconds:g}s; retry later"
    if exc.write:
        detail += " (the write may have been applied: read before resubmitting)"
    return render_error(request, FhirError.of(503, "timeout", detail, **{"Retry-After": "5"}))


def on_unexpected(request: Request, exc: Exception) -> Response[bytes]:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return render_error(
        request,
        FhirError.of(500, "exception", "internal server error; the server log has the details"),
    )


def handlers(unavailable: tuple[type[Exception], ...] = ()) -> dict[type[Exception], Any]:
    """Exception -> handler; `unavailable` are an engine client's "cannot reach the server"
    errors (app/main.py passes them from the adapters), answered 503 like a StoreError."""
    table: dict[type[Exception], Any] = {
        FhirError: on_fhir_error,
        HTTPException: on_http_exception,
        StoreError: on_store_error,
        EngineTimeout: on_engine_timeout,
        IndexUnavailable: on_index_unavailable,
    }
    table.update({kind: on_store_error for kind in unavailable})
    table[Exception] = on_unexpected
    return table
