"""`_summary` and `_elements` (search.html#summary, #elements) applied to one resource.

Top-level elements only: `_summary=true` keeps the elements the R4 definitions mark as summary
(read from the fhir.resources models once per type), `_summary=text` the narrative and the
mandatory (min 1) elements, `_summary=data` everything but the narrative, `_elements` the listed
ones; all keep `resourceType`, `id` and `meta`, and tag the result SUBSETTED as the specification
asks.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from app.fhir.outcome import FhirError

_ALWAYS = ("resourceType", "id", "meta")
_SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
}
SUMMARY_MODES = ("true", "false", "text", "data", "count")


@cache
def summary_elements(resource_type: str) -> frozenset[str]:
    from fhir.resources.R4B import get_fhir_model_class

    try:
        model = get_fhir_model_class(resource_type)
    except KeyError:
        return frozenset()
    names: set[str] = set()
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and extra.get("summary_element_property"):
            base = (info.alias or name).removesuffix("__ext")
            names.add(base)
    return frozenset(names)


@cache
def mandatory_elements(resource_type: str) -> frozenset[str]:
    """Top-level elements with min 1 (a required choice `x[x]` by each of its names)."""
    from fhir.resources.R4B import get_fhir_model_class

    try:
        model = get_fhir_model_class(resource_type)
    except KeyError:
        return frozenset()
    names: set[str] = set()
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if info.is_required() or extra.get("element_required") or extra.get("one_of_many_required"):
            names.add((info.alias or name).removesuffix("__ext"))
    return frozenset(names - {"resourceType"})


def _subsetted(resource: dict[str, Any], keep: set[str]) -> dict[str, Any]:
    out = {k: v for k, v in resource.items() if k in keep or k.lstrip("_") in keep}
    meta = dict(out.get("meta") or {})
    meta["tag"] = [*meta.get("tag", []), _SUBSETTED]
    out["meta"] = meta
    return out


def apply_summary(
    resource: dict[str, Any], summary: str | None, elements: str | None
) -> dict[str, Any]:
    if summary and summary not in SUMMARY_MODES:
        raise FhirError.of(400, "invalid", f"_summary must be one of {', '.join(SUMMARY_MODES)}")
    if summary in (None, "false", "count") and not elements:
        return resource
    if summary == "data":
        return _subsetted(resource, set(resource) - {"text"})
    if summary == "text":
        mandatory = mandatory_elements(resource.get("resourceType", ""))
        return _subsetted(resource, {*_ALWAYS, "text", *mandatory})
    if summary == "true":
        return _subsetted(resource, {*_ALWAYS, *summary_elements(resource.get("resourceType", ""))})
    wanted = {e.strip().split(".")[-1] for e in (elements or "").split(",") if e.strip()}
    return _subsetted(resource, {*_ALWAYS, *wanted})
