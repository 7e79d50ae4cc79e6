"""GET and HEAD entries of a transaction or batch: the read-side interactions, by URL.

Processed after the writes (http.html#trules), so a transaction's reads see its own writes.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

from app.fhir.outcome import FhirError
from app.interactions._entries import failed_entry, read_answer_entry
from app.interactions.context import Services
from app.interactions.history import history
from app.interactions.read import read
from app.interactions.result import FhirRequest, FhirResponse
from app.interactions.search import search
from app.interactions.vread import vread


async def _dispatch(services: Services, base: str, url: str) -> FhirResponse:
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    query = tuple(parse_qsl(parts.query, keep_blank_values=True))
    if segments and segments[0] == "_history":
        return await history(services, FhirRequest(base, query=query))
    if not segments:
        return await search(services, FhirRequest(base, query=query))
    type_ = segments[0]
    if type_ not in services.resource_types:
        raise FhirError.of(404, "not-supported", f"{type_!r} is not a FHIR R4 resource type")
    request = FhirRequest(base, type=type_, query=query)
    if len(segments) == 1:
        return await search(services, request)
    if len(segments) == 2 and segments[1] == "_history":
        return await history(services, request)
    request = FhirRequest(base, type=type_, id=segments[1], query=query)
    if len(segments) == 2:
        return await read(services, request)
    if len(segments) == 3 and segments[2] == "_history":
        return await history(services, request)
    if len(segments) == 4 and segments[2] == "_history":
        version = FhirRequest(base, type=type_, id=segments[1], version=segments[3])
        return await vread(services, version)
    raise FhirError.of(400, "not-supported", f"{url!r} is not a read this server answers")


async def read_entry(services: Services, base: str, url: str, head: bool) -> dict[str, Any]:
    """The response entry for one GET/HEAD entry; failures become its outcome."""
    try:
        answer = await _dispatch(services, base, url)
    except FhirError as err:
        return failed_entry(err)
    return read_answer_entry(answer, base, head)
