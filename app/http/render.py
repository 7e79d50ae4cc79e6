"""Put an interaction's `FhirResponse` (or a `FhirError`) on the wire."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar.response import Stream

from app.fhir.outcome import FhirError, information, operation_outcome
from app.fhir.summary import apply_summary
from app.http.negotiation import OutputFormat, output_format, serialize
from app.interactions.result import FhirResponse
from app.interactions.transaction import prefer_return
from app.subscriptions.subscription import shown


def request_format(request: Request) -> OutputFormat:
    try:
        return output_format(
            request.query_params.get("_format"),
            request.headers.get("accept"),
            request.query_params.get("_pretty"),
        )
    except FhirError:
        return output_format(None, None, None)


def _content_type(fmt: OutputFormat) -> str:
    return f"{fmt.media_type}; charset=utf-8"


def render(request: Request, answer: FhirResponse) -> Response[Any]:
    as_is: dict[str, Any] = {
        "status_code": answer.status,
        "headers": answer.headers,
        "media_type": answer.media_type,
    }
    if answer.stream is not None:  # not a FHIR resource: sent as is
        return Stream(answer.stream, **as_is)
    if answer.raw is not None:
        return Response(answer.raw, **as_is)
    fmt = output_format(
        request.query_params.get("_format"),
        request.headers.get("accept"),
        request.query_params.get("_pretty"),
    )
    resource = answer.resource
    if answer.is_write:
        prefer = prefer_return_header(request)
        if prefer == "minimal":
            resource = None
        elif prefer == "OperationOutcome":
            resource = information(f"{request.method} succeeded with status {answer.status}")
    elif resource is not None and resource.get("resourceType") != "Bundle":
        resource = apply_summary(
            resource, request.query_params.get("_summary"), request.query_params.get("_elements")
        )
    headers = dict(answer.headers)
    if resource is None:
        return Response(b"", status_code=answer.status, headers=headers)
    resource = dict(shown(resource))  # a Subscription's header values never leave the server
    return Response(
        serialize(resource, fmt),
        status_code=answer.status,
        headers=headers,
        media_type=_content_type(fmt),
    )


def prefer_return_header(request: Request) -> str:
    from app.interactions.result import FhirRequest

    headers = {"prefer": request.headers.get("prefer", "")}
    return prefer_return(FhirRequest(base="", headers=headers), default="representation")


def render_error(request: Request, err: FhirError) -> Response[bytes]:
    fmt = request_format(request)
    return Response(
        serialize(operation_outcome(err.issues), fmt),
        status_code=err.status,
        headers=dict(err.headers),
        media_type=_content_type(fmt),
    )
