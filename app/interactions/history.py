"""history: instance, type and system level (http.html#history), newest first, with `_since`,
`_at`, `_count` and keyset paging (a `_page` token; pages never repeat or skip a version)."""

from __future__ import annotations

import base64
from typing import Any

import orjson

from app.fhir.bundles import bundle, link, page_url, status_line
from app.fhir.clock import http_date, utc_now
from app.fhir.meta import etag
from app.fhir.outcome import FhirError
from app.interactions._access import require, require_unrestricted, visible
from app.interactions.context import Services
from app.interactions.result import FhirRequest, FhirResponse
from app.records import StoredResource
from app.store.port import HistoryQuery
from indexing.normalize import date_interval


def _instant(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        low, _ = date_interval(value)
    except ValueError:
        raise FhirError.of(
            400, "invalid", f"{name} must be a FHIR instant, not {value!r}"
        ) from None
    return low


def _count(services: Services, request: FhirRequest) -> int:
    raw = request.param("_count")
    if raw is None:
        return services.settings.default_page_size
    if not raw.isdigit():
        raise FhirError.of(400, "invalid", f"_count must be a non-negative integer, not {raw!r}")
    return min(int(raw), services.settings.max_page_size)


def _page_token(last: StoredResource) -> str:
    raw = orjson.dumps([last.last_updated, last.type, last.id, last.version])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _before(token: str | None) -> tuple[str, str, str, int] | None:
    if token is None:
        return None
    try:
        lu, t, i, v = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return (str(lu), str(t), str(i), int(v))
    except (ValueError, TypeError):
        raise FhirError.of(400, "invalid", "_page is not a page token this server issued") from None


def _entry(stored: StoredResource, base: str) -> dict[str, Any]:
    method = "DELETE" if stored.deleted else ("POST" if stored.op == "create" else "PUT")
    entry: dict[str, Any] = {"fullUrl": f"{base}/{stored.ref}"}
    if stored.resource is not None:
        entry["resource"] = stored.resource
    entry["request"] = {"method": method, "url": stored.type if method == "POST" else stored.ref}
    entry["response"] = {
        "status": status_line(204 if stored.deleted else 201 if stored.op == "create" else 200),
        "etag": etag(stored.version),
        "lastModified": stored.last_updated,
    }
    return entry


async def history(services: Services, request: FhirRequest) -> FhirResponse:
    count = _count(services, request)
    query = HistoryQuery(
        type=request.type,
        id=request.id,
        since=_instant("_since", request.param("_since")),
        at=_instant("_at", request.param("_at")),
        count=count + 1,
        before=_before(request.param("_page")),
    )
    if request.id is not None:
        assert request.type is not None
        access = require(services, request.type, "r")
        current = await services.store.read(request.type, request.id)
        if current is None or (access.kind != "all" and not visible(services, access, current)):
            raise FhirError.of(404, "not-found", f"{request.type}/{request.id} is not known")
    else:
        require_unrestricted(services, request.type)
    found = await services.store.history(query)
    if request.id is not None and access.kind != "all":
        found = [s for s in found if visible(services, access, s)]
    page, more = found[:count], len(found) > count
    path = (
        f"{request.base}/{request.type}/{request.id}"
        if request.id
        else (f"{request.base}/{request.type}" if request.type else request.base)
    )
    path += "/_history"
    kept = [(k, v) for k, v in request.query if k in ("_since", "_at", "_count")]
    links = [
        link("self", page_url(path, [*kept, *[(k, v) for k, v in request.query if k == "_page"]]))
    ]
    if more and page:
        links.append(link("next", page_url(path, [*kept, ("_page", _page_token(page[-1]))])))
    body = bundle("history", [_entry(s, request.base) for s in page], utc_now(), links)
    headers = {"Last-Modified": http_date(page[0].last_updated)} if page else {}
    return FhirResponse(200, body, headers)
