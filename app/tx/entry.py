"""One write request, whether it came alone (`PUT Patient/1`) or inside a Bundle entry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from app.fhir.meta import parse_etag
from app.fhir.outcome import FhirError
from app.tx.conditional import Criteria, parse_criteria

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
# FHIR R4 transaction processing order (http.html#trules): deletes, creates, updates, reads.
PHASE = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}


@dataclass(frozen=True)
class Entry:
    index: int
    method: str
    type: str
    id: str | None = None
    criteria: Criteria | None = None
    resource: dict[str, Any] | None = None
    full_url: str | None = None
    if_match: int | None = None
    if_none_exist: Criteria | None = None
    patch: Any = None
    url: str = ""

    def at(self, path: str) -> str:
        """FHIRPath location of `path` (e.g. `resource.id`, `request.url`) for
        OperationOutcome.expression: in its Bundle, or for a request alone, in its resource."""
        if self.index >= 0:
            return f"Bundle.entry[{self.index}].{path}"
        if path.startswith("resource"):
            return self.type + path[len("resource") :]
        return ""


def split_url(url: str) -> tuple[str, str | None, str | None]:
    """`Patient/1` -> (Patient, 1, None); `Patient?identifier=x` -> (Patient, None, query)."""
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    if not segments:
        return "", None, parts.query or None
    # Absolute URLs name the type and id in their last two segments.
    if (
        parts.scheme
        and len(segments) >= 2
        and segments[-1][:1].isalnum()
        and segments[-2][:1].isupper()
    ):
        segments = segments[-2:]
    type_ = segments[0]
    id_ = segments[1] if len(segments) > 1 else None
    return type_, id_, parts.query or None


def entry_from_bundle(index: int, raw: Any, known_types: frozenset[str]) -> Entry:
    """Parse `Bundle.entry[index]` of a transaction or batch."""
    where = f"Bundle.entry[{index}]"
    if not isinstance(raw, dict):
        raise FhirError.of(400, "structure", "a Bundle entry must be a JSON object", where)
    request = raw.get("request")
    if not isinstance(request, dict):
        raise FhirError.of(400, "required", "the entry has no request", f"{where}.request")
    method = request.get("method")
    url = request.get("url")
    if method not in METHODS:
        raise FhirError.of(
            400,
            "value",
            f"request.method must be one of {', '.join(METHODS)}, not {method!r}",
            f"{where}.request.method",
        )
    if not isinstance(url, str) or not url:
        raise FhirError.of(400, "required", "request.url is missing", f"{where}.request.url")
    type_, id_, query = split_url(url)
    if type_ not in known_types:
        raise FhirError.of(
            400,
            "not-supported",
            f"{type_!r} is not a FHIR R4 resource type",
            f"{where}.request.url",
        )
    resource = raw.get("resource")
    if resource is not None and not isinstance(resource, dict):
        raise FhirError.of(
            400, "structure", "entry.resource must be a JSON object", f"{where}.resource"
        )
    if_match = request.get("ifMatch")
    if_none_exist = request.get("ifNoneExist")
    entry = Entry(
        index=index,
        method=method,
        type=type_,
        id=id_,
        criteria=parse_criteria(type_, query)
        if query and method in ("PUT", "DELETE", "PATCH")
        else None,
        resource=resource if method in ("POST", "PUT") else None,
        full_url=raw.get("fullUrl") if isinstance(raw.get("fullUrl"), str) else None,
        if_match=parse_etag(if_match) if isinstance(if_match, str) else None,
        if_none_exist=parse_criteria(type_, if_none_exist.lstrip("?").split("?")[-1])
        if isinstance(if_none_exist, str) and if_none_exist
        else None,
        patch=resource if method == "PATCH" else None,
        url=url,
    )
    check_entry(entry)
    return entry


def check_entry(entry: Entry) -> None:
    """Shape rules that hold for a request alone or in a Bundle."""
    if entry.method in ("POST", "PUT") and entry.resource is None:
        raise FhirError.of(
            400, "required", f"{entry.method} needs a resource", entry.at("resource")
        )
    if entry.resource is not None and not isinstance(entry.resource, dict):
        raise FhirError.of(
            400, "structure", "the resource must be a JSON object", entry.at("resource")
        )
    if entry.method == "POST" and entry.id is not None:
        raise FhirError.of(
            400,
            "invalid",
            "POST goes to the type (e.g. Patient), not to an id",
            entry.at("request.url"),
        )
    if entry.method in ("PUT", "DELETE", "PATCH") and entry.id is None and entry.criteria is None:
        raise FhirError.of(
            400,
            "invalid",
            f"{entry.method} needs an id or conditional criteria in its url",
            entry.at("request.url"),
        )
    if entry.method == "PATCH" and entry.patch is None:
        raise FhirError.of(400, "required", "PATCH needs a patch document", entry.at("resource"))
    if entry.resource is not None and entry.resource.get("resourceType") != entry.type:
        raise FhirError.of(
            400,
            "invalid",
            f"resourceType {entry.resource.get('resourceType')!r} does not match {entry.type}",
            entry.at("resource.resourceType"),
        )
