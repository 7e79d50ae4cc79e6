"""Bundle shapes the server answers with (history, searchset, transaction/batch-response)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from app.fhir.meta import new_id

STATUS_TEXT = {
    200: "200 OK",
    201: "201 Created",
    204: "204 No Content",
    304: "304 Not Modified",
    400: "400 Bad Request",
    401: "401 Unauthorized",
    403: "403 Forbidden",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    409: "409 Conflict",
    410: "410 Gone",
    412: "412 Precondition Failed",
    422: "422 Unprocessable Entity",
}


def status_line(status: int) -> str:
    return STATUS_TEXT.get(status, str(status))


def bundle(
    type_: str,
    entries: list[dict[str, Any]],
    now: str,
    links: list[dict[str, str]] | None = None,
    total: int | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": new_id(),
        "meta": {"lastUpdated": now},
        "type": type_,
    }
    if total is not None:
        out["total"] = total
    if links:
        out["link"] = links
    if entries:  # R4 JSON allows no empty array: a Bundle without entries has no `entry`
        out["entry"] = entries
    return out


def link(relation: str, url: str) -> dict[str, str]:
    return {"relation": relation, "url": url}


def page_url(base_path: str, params: list[tuple[str, str]]) -> str:
    return f"{base_path}?{urlencode(params)}" if params else base_path
