"""The kick-off request of a Bulk Data export (Bulk Data Access IG v2.0.0, export.html#bulk-data-
kick-off-request), checked and turned into an `ExportRequest`: pure, no store.

Parameters come from the query (GET) or a `Parameters` body (POST). Strict by default: an
unknown or unsupported parameter, or a value that cannot be honoured, is a 400 naming it; with
`Prefer: handling=lenient` (as the IG allows) it is ignored instead, and said so in the 202's
OperationOutcome (`ExportRequest.ignored`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.fhir.clock import format_instant
from app.fhir.outcome import FhirError, Issue

LEVELS = ("system", "patient", "group")
OUTPUT_FORMATS = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})
# Accept values a kick-off may send (the IG: application/fhir+json).
ACCEPTS = frozenset({"application/fhir+json", "application/json", "*/*"})
# Parameters every FHIR request may carry; they do not shape the export.
GENERAL = frozenset({"_format", "_pretty"})
SUPPORTED = frozenset({"_outputFormat", "_since", "_type", "_elements", "patient", "_typeFilter"})
# Parameters of the IG this server does not honour (yet): named so the 400 says "not supported"
# rather than "unknown". (`_typeFilter`'s criteria are checked against the registry by the
# kick-off interaction.)
UNSUPPORTED = frozenset({"includeAssociatedData", "organizeOutputBy"})

_INSTANT = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})",
)
_ELEMENT = re.compile(r"([A-Z][A-Za-z]+\.)?[a-z][A-Za-z0-9]*")


@dataclass(frozen=True)
class ExportRequest:
    """What one export produces. `types` empty: every type the level reaches. `patients` None:
    no restriction to listed patients. `since` is a normalised instant (fixed width, sorts as
    `meta.lastUpdated` does)."""

    level: str
    group: str | None = None
    types: tuple[str, ...] = ()
    since: str | None = None
    elements: tuple[str, ...] = ()
    patients: tuple[str, ...] | None = None
    ignored: tuple[str, ...] = ()
    # `_typeFilter`: (type, search query) pairs; a resource of a type with filters is exported
    # when it matches one of them
    type_filters: tuple[tuple[str, str], ...] = ()

    def filters_of(self, type_: str) -> list[str]:
        return [query for t, query in self.type_filters if t == type_]

    def to_json(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "group": self.group,
            "types": list(self.types),
            "since": self.since,
            "elements": list(self.elements),
            "patients": None if self.patients is None else list(self.patients),
            "ignored": list(self.ignored),
            # objects, not pairs: FerretDB stores no nested arrays
            "type_filters": [{"type": t, "query": q} for t, q in self.type_filters],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExportRequest:
        patients = data.get("patients")
        return cls(
            level=str(data["level"]),
            group=data.get("group"),
            types=tuple(data.get("types") or ()),
            since=data.get("since"),
            elements=tuple(data.get("elements") or ()),
            patients=None if patients is None else tuple(patients),
            ignored=tuple(data.get("ignored") or ()),
            type_filters=tuple((f["type"], f["query"]) for f in data.get("type_filters") or ()),
        )


def bad(diagnostics: str, expression: str = "") -> FhirError:
    return FhirError.of(400, "invalid", diagnostics, *((expression,) if expression else ()))


def not_supported(diagnostics: str, expression: str = "") -> FhirError:
    return FhirError.of(400, "not-supported", diagnostics, *((expression,) if expression else ()))


def parameters_of(body: Any) -> list[tuple[str, Any]]:
    """The (name, value) pairs of a POSTed `Parameters` resource: a `valueX` as given (a
    `valueReference` keeps its `reference`)."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise bad("a POST kick-off takes a Parameters resource")
    pairs: list[tuple[str, Any]] = []
    for index, param in enumerate(body.get("parameter") or []):
        where = f"Parameters.parameter[{index}]"
        name = param.get("name") if isinstance(param, dict) else None
        if not isinstance(name, str):
            raise bad("every parameter needs a name", where)
        values = [v for k, v in param.items() if k.startswith("value")]
        if len(values) != 1:
            raise bad(f"parameter {name!r} needs exactly one value[x]", where)
        value = values[0]
        if isinstance(value, dict):
            value = value.get("reference")
        pairs.append((name, value))
    return pairs


def normalised_instant(text: str) -> str:
    """A FHIR instant with a time zone, in the server's fixed-width UTC form."""
    if not _INSTANT.fullmatch(text):
        raise ValueError(text)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return format_instant(moment.astimezone(UTC))


def _split(values: Iterable[Any]) -> list[str]:
    return [part.strip() for v in values for part in str(v).split(",") if part.strip()]


def parse_kickoff(
    level: str,
    pairs: Sequence[tuple[str, Any]],
    *,
    post: bool,
    lenient: bool,
    known_types: frozenset[str],
    compartment_types: Sequence[str],
    group: str | None = None,
) -> ExportRequest:
    """Check the kick-off parameters of an export at `level` (one of LEVELS); answers the
    export to run, or raises a 400 FhirError whose issue names the offending parameter."""
    assert level in LEVELS
    ignored: list[str] = []

    def refuse(err: FhirError) -> None:
        if not lenient:
            raise err
        ignored.append(str(err))

    by_name: dict[str, list[Any]] = {}
    for name, value in pairs:
        if name in GENERAL:
            continue
        if name in UNSUPPORTED:
            refuse(not_supported(f"{name} is not supported by this server", name))
        elif name not in SUPPORTED:
            refuse(bad(f"unknown kick-off parameter {name!r}", name))
        elif not isinstance(value, str) or not value:
            refuse(bad(f"{name} needs a value", name))
        else:
            by_name.setdefault(name, []).append(value)

    for fmt in by_name.get("_outputFormat", []):
        if fmt not in OUTPUT_FORMATS:
            refuse(
                not_supported(
                    f"_outputFormat {fmt!r} is not supported; use application/fhir+ndjson",
                    "_outputFormat",
                )
            )

    since = None
    if len(by_name.get("_since", [])) > 1:
        refuse(bad("_since may be given once", "_since"))
    elif by_name.get("_since"):
        try:
            since = normalised_instant(by_name["_since"][0])
        except ValueError:
            refuse(bad(f"_since must be a FHIR instant, not {by_name['_since'][0]!r}", "_since"))

    reachable = known_types if level == "system" else frozenset(compartment_types)
    types: list[str] = []
    for name in _split(by_name.get("_type", [])):
        if name not in known_types:
            refuse(bad(f"_type names {name!r}, which is not a FHIR R4 resource type", "_type"))
        elif name not in reachable:
            refuse(
                bad(
                    f"_type names {name!r}, which is never in a patient compartment",
                    "_type",
                )
            )
        elif name not in types:
            types.append(name)
    if by_name.get("_type") and not types:
        refuse(bad("_type names no type this export can produce", "_type"))

    elements: list[str] = []
    for element in _split(by_name.get("_elements", [])):
        if not _ELEMENT.fullmatch(element):
            refuse(bad(f"_elements names {element!r}, which is not an element name", "_elements"))
        elif element not in elements:
            elements.append(element)

    patients: tuple[str, ...] | None = None
    if by_name.get("patient"):
        if level == "system":
            refuse(bad("patient is a patient- or group-level parameter", "patient"))
        elif not post:
            refuse(bad("patient is given in a POST kick-off (a Parameters body)", "patient"))
        else:
            ids: list[str] = []
            for ref in by_name["patient"]:
                kind, _, id_ = ref.rpartition("/")
                if kind.rsplit("/", 1)[-1] != "Patient" or not id_:
                    refuse(bad(f"patient must reference a Patient, not {ref!r}", "patient"))
                elif id_ not in ids:
                    ids.append(id_)
            patients = tuple(ids)

    filters: list[tuple[str, str]] = []
    for value in by_name.get("_typeFilter", []):
        type_, mark, query = value.partition("?")
        if not mark or not query:
            refuse(bad(f"_typeFilter {value!r} is not Type?search-parameters", "_typeFilter"))
        elif type_ not in reachable:
            refuse(
                bad(f"_typeFilter names {type_!r}, which this export cannot produce", "_typeFilter")
            )
        elif types and type_ not in types:
            refuse(bad(f"_typeFilter names {type_!r}, which _type leaves out", "_typeFilter"))
        else:
            filters.append((type_, query))

    return ExportRequest(
        type_filters=tuple(filters),
        level=level,
        group=group,
        types=tuple(types),
        since=since,
        elements=tuple(elements),
        patients=patients,
        ignored=tuple(ignored),
    )


def check_headers(
    headers: Mapping[str, str], lenient: bool, operation: str = "export"
) -> list[Issue]:
    """`Prefer: respond-async` is required; `Accept`, when sent, must allow FHIR JSON (the
    OperationOutcome of an error). Answers the warnings of what lenient handling ignored."""
    prefer = headers.get("prefer") or ""
    tokens = {t.strip() for p in prefer.split(",") for t in p.split(";")}
    if "respond-async" not in tokens:
        raise bad(f"a bulk {operation} runs asynchronously: send Prefer: respond-async", "Prefer")
    accept = (headers.get("accept") or "").split(";")[0].strip().lower()
    if accept and accept not in ACCEPTS:
        err = not_supported(
            f"Accept {accept!r}: the kick-off answers application/fhir+json", "Accept"
        )
        if not lenient:
            raise err
        return [Issue("not-supported", str(err), severity="warning")]
    return []


def lenient(headers: Mapping[str, str]) -> bool:
    """`Prefer: handling=lenient`."""
    prefer = headers.get("prefer") or ""
    return any(
        t.strip().replace(" ", "") == "handling=lenient"
        for p in prefer.split(",")
        for t in p.split(";")
    )
