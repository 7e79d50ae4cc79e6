"""The entries of a transaction-response or batch-response Bundle (http.html#transaction-response,
bundle.html `Bundle.entry.response`).

An entry that names a resource version says which one, whatever its status (a create, an
update, a no-op update, a conditional create or update that matched, a delete, a read):
`response.location` `Type/id/_history/n`, `response.etag` `W/"n"` and `response.lastModified`,
so a client that learns ids from `location` can tell what every entry touched. `Prefer:
return=minimal|representation|OperationOutcome` applies to each write entry as it does to a
write alone: no resource, the stored version as `resource`, or an informational
`response.outcome`.
"""

from __future__ import annotations

from typing import Any

from app.fhir.bundles import status_line
from app.fhir.meta import etag
from app.fhir.outcome import FhirError, information, operation_outcome
from app.interactions._respond import not_found
from app.interactions.result import FhirResponse
from app.tx.plan import EntryResult


def _version(ref: str, version: int, last_updated: str | None) -> dict[str, str]:
    named = {"location": f"{ref}/_history/{version}", "etag": etag(version)}
    if last_updated:
        named["lastModified"] = last_updated
    return named


def write_entry(result: EntryResult, base: str, prefer: str) -> dict[str, Any]:
    """The entry answering one planned write, under `Prefer: return=<prefer>`."""
    if result.status == 404:  # a delete of an unknown id: a failure, with no version to name
        assert result.ref is not None
        return failed_entry(not_found(*result.ref.split("/", 1)))
    response: dict[str, Any] = {"status": status_line(result.status)}
    if result.ref is not None and result.version is not None:
        response.update(_version(result.ref, result.version, result.last_updated))
    out: dict[str, Any] = {}
    if result.ref is not None:
        out["fullUrl"] = f"{base}/{result.ref}"
    if prefer == "representation" and result.resource is not None:
        out["resource"] = result.resource
    elif prefer == "OperationOutcome":
        response["outcome"] = information(
            f"{result.entry.method} {result.entry.url or result.entry.type} succeeded "
            f"with status {result.status}"
        )
    out["response"] = response
    return out


def read_answer_entry(answer: FhirResponse, base: str, head: bool) -> dict[str, Any]:
    """The entry answering one GET (or HEAD: the same without the resource) entry."""
    resource = answer.resource
    response: dict[str, Any] = {"status": status_line(answer.status)}
    out: dict[str, Any] = {}
    meta = (resource or {}).get("meta") or {}
    if resource is not None and resource.get("resourceType") != "Bundle" and "id" in resource:
        ref = f"{resource['resourceType']}/{resource['id']}"
        out["fullUrl"] = f"{base}/{ref}"
        if str(meta.get("versionId", "")).isdigit():
            response.update(_version(ref, int(meta["versionId"]), meta.get("lastUpdated")))
    if resource is not None and not head:
        out["resource"] = resource
    out["response"] = response
    return out


def failed_entry(err: FhirError) -> dict[str, Any]:
    """The entry of a batch entry, or a transaction's read, that failed: its OperationOutcome."""
    return {
        "response": {"status": status_line(err.status), "outcome": operation_outcome(err.issues)}
    }
