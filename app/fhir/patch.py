"""PATCH documents (http.html#patch): JSON Patch (RFC 6902) and FHIRPath Patch (`Parameters`)."""

from __future__ import annotations

from typing import Any

import jsonpatch

from app.fhir.outcome import FhirError


def apply_patch(resource: dict[str, Any], patch: Any) -> dict[str, Any]:
    """The patched copy of `resource`; `patch` is a JSON Patch list or a FHIRPath Patch
    `Parameters` resource. A patch that cannot apply is a 422."""
    if isinstance(patch, list):
        return _json_patch(resource, patch)
    if isinstance(patch, dict) and patch.get("resourceType") == "Parameters":
        from app.fhir.fhirpath_patch import apply_fhirpath_patch

        return apply_fhirpath_patch(resource, patch)  # never modifies `resource`
    raise FhirError.of(
        400,
        "structure",
        "a patch must be a JSON Patch array (application/json-patch+json) or a FHIRPath Patch "
        "Parameters resource",
    )


def _json_patch(resource: dict[str, Any], operations: list[Any]) -> dict[str, Any]:
    try:
        patched = jsonpatch.JsonPatch(operations).apply(resource, in_place=False)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise FhirError.of(422, "processing", f"the JSON Patch does not apply: {exc}") from None
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise FhirError.of(400, "structure", f"malformed JSON Patch: {exc}") from None
    if not isinstance(patched, dict):
        raise FhirError.of(422, "processing", "the JSON Patch does not produce a resource")
    return patched
