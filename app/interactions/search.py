"""search: `GET [base]/[type]?...`, `POST [base]/[type]/_search`, and system search `GET
[base]?_type=...` (search.html). Parse -> plan (pure) -> resolve chains -> index query ->
hydrate from the store in one round trip -> includes -> searchset Bundle.

The index answers ids; the resources always come from the store, so a result is never older
than the index's view of it. Paging links carry a signed token (app/fhir/page_token.py).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl

from app.fhir.bundles import bundle, link, page_url
from app.fhir.clock import utc_now
from app.fhir.outcome import FhirError
from app.fhir.page_token import decode_page, encode_page
from app.fhir.summary import apply_summary
from app.ig.search_rules import check_mi_search
from app.interactions._access import readable, scope_search
from app.interactions._chains import resolve_plan
from app.interactions._includes import included
from app.interactions.context import Services
from app.interactions.result import FhirRequest, FhirResponse
from app.records import StoredResource
from app.security.limits import LimitExceeded, check_chain_depth
from indexing.plan.errors import InvalidSearch
from indexing.plan.parse import parse_search
from indexing.plan.plan import SearchPlan

_NOT_CRITERIA = {"_page", "_format", "_pretty"}


def _handling(request: FhirRequest) -> bool:
    """True for `Prefer: handling=strict` (unknown parameters are errors); lenient by default."""
    prefer = request.header("Prefer") or ""
    return any(p.strip().replace(" ", "") == "handling=strict" for p in prefer.split(","))


def _query(request: FhirRequest) -> list[tuple[str, str]]:
    pairs = [(k, v) for k, v in request.query if k not in _NOT_CRITERIA]
    if isinstance(request.body, bytes | str) and request.body:  # POST _search form body
        text = request.body.decode() if isinstance(request.body, bytes) else request.body
        pairs += parse_qsl(text, keep_blank_values=True)
    return pairs


def plan_search(
    services: Services, type_: str | None, query: list[tuple[str, str]], strict: bool
) -> SearchPlan:
    settings = services.settings
    try:
        plan = parse_search(
            services.registry,
            type_,
            query,
            strict=strict,
            default_count=settings.default_page_size,
            max_count=settings.max_page_size,
        )
    except InvalidSearch as err:
        raise FhirError.of(err.status, err.code, err.diagnostics, *err.expression) from None
    try:
        check_chain_depth(plan, settings.max_chain_depth)
    except LimitExceeded as err:
        raise FhirError.of(400, "too-costly", err.detail) from None
    if settings.ig_mode:
        check_mi_search(plan)
    return plan


def _entry(stored: StoredResource, base: str, mode: str, plan: SearchPlan) -> dict[str, Any]:
    resource = stored.resource or {}
    if plan.summary or plan.elements:
        resource = apply_summary(resource, plan.summary, ",".join(plan.elements) or None)
    return {"fullUrl": f"{base}/{stored.ref}", "resource": resource, "search": {"mode": mode}}


async def search(services: Services, request: FhirRequest) -> FhirResponse:
    if services.index is None:
        raise FhirError.of(503, "transient", "the search index is not available")
    secret = services.settings.page_secret
    token = request.param("_page")
    cursor: Any = None
    query = _query(request)
    if token is not None:
        query, cursor = decode_page(secret, token)
    plan = plan_search(services, request.type, query, _handling(request))
    resolved = await resolve_plan(services, scope_search(services, plan))
    count_only = plan.summary == "count" or plan.count == 0
    want_total = count_only or plan.total in ("accurate", "estimate")
    # One hit more than the page shows tells whether a next page exists.
    page = await services.index.search(
        replace(resolved, count=plan.count + 1), after=cursor, with_total=want_total
    )
    hits = [] if count_only else page.hits[: plan.count]
    by_ref = {s.ref: s for s in await services.store.read_many([(h.type, h.id) for h in hits])}
    matches = [by_ref[f"{h.type}/{h.id}"] for h in hits if f"{h.type}/{h.id}" in by_ref]
    matches = [m for m in matches if not m.deleted]
    if not services.principal.open:
        # The index found them within scope; the store's current version must still be.
        matches = readable(services, matches)
    extra = await included(services, plan.includes, matches) if plan.includes else []
    if not services.principal.open:
        extra = readable(services, extra)
    path = f"{request.base}/{request.type}" if request.type else request.base
    links = [link("self", page_url(path, list(plan.self_params)))]
    if not count_only and len(page.hits) > plan.count and hits:
        next_token = encode_page(secret, query, hits[-1].cursor)
        links.append(link("next", page_url(path, [("_page", next_token)])))
    entries = [_entry(m, request.base, "match", plan) for m in matches]
    entries += [_entry(m, request.base, "include", plan) for m in extra]
    body = bundle("searchset", entries, utc_now(), links, total=page.total if want_total else None)
    return FhirResponse(200, body)
