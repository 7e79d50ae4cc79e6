"""GET and HEAD entries of a transaction or batch: the read-side interactions, by URL.

Processed after the writes (http.html#trules), so a transaction's reads see its own writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from app.fhir.outcome import FhirError
from app.interactions._entries import failed_entry, read_answer_entry
from app.interactions.context import Services
from app.interactions.history import history
from app.interactions.read import read
from app.interactions.result import FhirRequest, FhirResponse
from app.interactions.search import search
from app.interactions.subscription_events import subscription_events
from app.interactions.subscription_status import subscription_status
from app.interactions.table import match
from app.interactions.types import Run
from app.interactions.vread import vread

# The functions of the table's GET rows (app/interactions/table.py), by code.
READS: Mapping[str, Run] = {
    "history-system": history,
    "search-system": search,
    "search-type": search,
    "history-type": history,
    "read": read,
    "history-instance": history,
    "vread": vread,
    "subscription-status": subscription_status,
    "subscription-events": subscription_events,
}


async def _dispatch(services: Services, base: str, url: str) -> FhirResponse:
    parts = urlsplit(url)
    segments = tuple(s for s in parts.path.split("/") if s)
    query = tuple(parse_qsl(parts.query, keep_blank_values=True))
    found = match("GET", segments)
    # every path but the system-level ones starts with a resource type
    if (found is None or "type" in found[1]) and segments[0] not in services.resource_types:
        raise FhirError.of(404, "not-supported", f"{segments[0]!r} is not a FHIR R4 resource type")
    if found is None:
        raise FhirError.of(400, "not-supported", f"{url!r} is not a read this server answers")
    row, params = found
    request = FhirRequest(
        base,
        type=params.get("type"),
        id=params.get("id"),
        version=params.get("vid"),
        query=query,
    )
    return await READS[row.code](services, request)


async def read_entry(services: Services, base: str, url: str, head: bool) -> dict[str, Any]:
    """The response entry for one GET/HEAD entry; failures become its outcome."""
    try:
        answer = await _dispatch(services, base, url)
    except FhirError as err:
        return failed_entry(err)
    return read_answer_entry(answer, base, head)
