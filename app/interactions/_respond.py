"""Shared response shapes: version headers, and the answer to one planned write."""

from __future__ import annotations

from app.fhir.clock import http_date
from app.fhir.meta import etag
from app.fhir.outcome import FhirError
from app.interactions.result import FhirResponse
from app.records import StoredResource
from app.tx.plan import EntryResult


def version_headers(ref: str, version: int, last_updated: str, base: str) -> dict[str, str]:
    return {
        "ETag": etag(version),
        "Last-Modified": http_date(last_updated),
        "Location": f"{base}/{ref}/_history/{version}",
    }


def write_response(result: EntryResult, base: str) -> FhirResponse:
    if result.ref is None or result.version is None or result.last_updated is None:
        return FhirResponse(result.status)
    headers = version_headers(result.ref, result.version, result.last_updated, base)
    if result.status != 201:
        headers.pop("Location")
        headers["Content-Location"] = f"{base}/{result.ref}/_history/{result.version}"
    return FhirResponse(result.status, result.resource, headers, is_write=True)


def gone(stored: StoredResource, base: str) -> FhirError:
    """410 for a deleted resource, with the tombstone's version headers."""
    err = FhirError.of(410, "deleted", f"{stored.ref} was deleted (version {stored.version})")
    err.headers.update(etag_only(stored))
    return err


def etag_only(stored: StoredResource) -> dict[str, str]:
    return {"ETag": etag(stored.version), "Last-Modified": http_date(stored.last_updated)}


def not_found(type_: str, id_: str) -> FhirError:
    return FhirError.of(404, "not-found", f"{type_}/{id_} is not known")
