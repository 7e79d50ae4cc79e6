"""everything: `GET [base]/Patient/[id]/$everything` (R4 patient-operation-everything.html),
the patient's compartment as a searchset Bundle, paged.

The compartment is the R4 Patient CompartmentDefinition (indexing/compartment.py): the Patient
first, then for each member type, in name order, every resource one of the type's compartment
parameters points at the Patient with, found through the search index (near real time, as
search is) and read from the store. Parameters: `_since` (changed at or after that instant),
`_type` (comma-separated types), `_count` (page size), and `start` / `end` (care dates, not
record dates: a resource of a type with a clinical date is kept when that date overlaps the
range, searched as the type's first search parameter of CLINICAL_DATES with `ge` / `le`, so
with the search's own date semantics; the Patient and types without a clinical date, such as
Group, are kept whatever the range). A compartment larger than MAX_EVERYTHING resources is
refused as too costly: export it (`Patient/$export`) instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from app.bulk.kickoff import normalised_instant
from app.fhir.bundles import bundle, link, page_url
from app.fhir.clock import utc_now
from app.fhir.outcome import FhirError
from app.fhir.page_token import decode_page, encode_page
from app.interactions._access import readable, require, visible
from app.interactions.context import Services
from app.interactions.export import only_on, patient_compartment
from app.interactions.result import FhirRequest, FhirResponse
from indexing.engines.port import SearchIndex
from indexing.plan.errors import InvalidSearch
from indexing.plan.parse import parse_search

_DATE = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?")
MAX_EVERYTHING = 10_000
_BATCH = 1000
_KNOWN = frozenset({"_since", "_type", "_count", "_page", "_format", "_pretty", "start", "end"})
# The search parameters that carry a type's care date, in order of preference: R4 names it
# `date` on most clinical types; ImagingStudy `started`, ServiceRequest `authored`.
CLINICAL_DATES = ("date", "started", "authored", "issued")


def _bad(diagnostics: str, where: str) -> FhirError:
    return FhirError.of(400, "invalid", diagnostics, where)


@dataclass(frozen=True)
class _Options:
    since: str | None = None
    types: list[str] | None = None
    count: int = 20
    care: tuple[tuple[str, str], ...] = ()  # (prefix, date): ("ge", start), ("le", end)


def _options(services: Services, query: list[tuple[str, str]]) -> _Options:
    since: str | None = None
    types: list[str] | None = None
    count = services.settings.default_page_size
    care: list[tuple[str, str]] = []
    for name, value in query:
        if name not in _KNOWN:
            raise _bad(f"unknown $everything parameter {name!r}", name)
        if name == "_since":
            try:
                since = normalised_instant(value)
            except ValueError:
                raise _bad(f"_since must be a FHIR instant, not {value!r}", name) from None
        elif name == "_type":
            types = [t.strip() for t in value.split(",") if t.strip()]
            unknown = [t for t in types if t not in services.resource_types]
            if unknown:
                raise _bad(f"_type names unknown types: {', '.join(unknown)}", name)
        elif name == "_count":
            if not value.isdigit() or not 1 <= int(value) <= services.settings.max_page_size:
                raise _bad(f"_count must be 1 to {services.settings.max_page_size}", name)
            count = int(value)
        elif name in ("start", "end"):
            if not _DATE.fullmatch(value):
                raise _bad(f"{name} must be a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD)", name)
            care.append(("ge" if name == "start" else "le", value))
    return _Options(since, types, count, tuple(care))


def _care_date(services: Services, type_: str) -> str | None:
    """The search parameter of `type_`'s care date, if it has one."""
    return next((c for c in CLINICAL_DATES if services.registry.get(type_, c)), None)


async def _members(
    services: Services, index: SearchIndex, patient: str, options: _Options, types: list[str]
) -> list[tuple[str, str]]:
    """(type, id) of every resource of `types` in the patient's compartment, by the index."""
    compartment = patient_compartment()
    found: set[tuple[str, str]] = set()
    for type_ in types:
        care = _care_date(services, type_) if options.care else None
        for code in compartment.params.get(type_, ()):
            query = [(code, f"Patient/{patient}")]
            if options.since is not None:
                query.append(("_lastUpdated", f"ge{options.since}"))
            query += [(care, prefix + day) for prefix, day in options.care if care is not None]
            try:
                # strict: a parameter this server does not know must not fall away (leaving
                # a search of every resource of the type)
                plan = parse_search(services.registry, type_, query, strict=True, max_count=_BATCH)
            except InvalidSearch:
                continue  # a parameter this server does not index
            plan = replace(plan, count=_BATCH)
            cursor: Any = None
            while True:
                page = await index.search(plan, after=cursor)
                found.update((h.type, h.id) for h in page.hits)
                if len(found) > MAX_EVERYTHING:
                    raise FhirError.of(
                        400,
                        "too-costly",
                        f"more than {MAX_EVERYTHING} resources: use Patient/{patient}/$export",
                    )
                if len(page.hits) < _BATCH:
                    break
                cursor = page.hits[-1].cursor
    return sorted(found)


async def everything(services: Services, request: FhirRequest) -> FhirResponse:
    assert request.id is not None
    only_on(request, "Patient", "$everything")
    index = services.index
    if index is None:
        raise FhirError.of(503, "transient", "the search index is not available")
    query = [(k, v) for k, v in request.query if k != "_page"]
    offset = 0
    token = request.param("_page")
    if token is not None:
        query, offset = decode_page(services.settings.page_secret, token)
    options = _options(services, query)
    since, types, count = options.since, options.types, options.count
    access = require(services, "Patient", "r")
    patient = await services.store.read("Patient", request.id)
    if patient is None or patient.deleted or not visible(services, access, patient):
        raise FhirError.of(404, "not-found", f"Patient/{request.id} is not known")
    compartment = patient_compartment()
    wanted = [t for t in compartment.types if types is None or t in types]
    refs: list[tuple[str, str]] = []
    if "Patient" in wanted and (since is None or patient.last_updated >= since):
        refs.append(("Patient", request.id))
    members = await _members(services, index, request.id, options, wanted)
    refs += [r for r in members if r != ("Patient", request.id)]
    page = refs[offset : offset + count]
    stored = {s.ref: s for s in await services.store.read_many(page)}
    matches = [stored[f"{t}/{i}"] for t, i in page if f"{t}/{i}" in stored]
    matches = readable(services, [m for m in matches if not m.deleted])
    path = f"{request.base}/Patient/{request.id}/$everything"
    links = [link("self", page_url(path, query))]
    if offset + count < len(refs):
        next_token = encode_page(services.settings.page_secret, query, offset + count)
        links.append(link("next", page_url(path, [("_page", next_token)])))
    entries = [
        {"fullUrl": f"{request.base}/{m.ref}", "resource": m.resource, "search": {"mode": "match"}}
        for m in matches
    ]
    return FhirResponse(200, bundle("searchset", entries, utc_now(), links, total=len(refs)))
