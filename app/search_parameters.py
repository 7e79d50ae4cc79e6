"""SearchParameter resources as custom search parameters (R4 search.html §3.1.1.5, issue 5).

An `active` SearchParameter written through the API registers with the process's
`SearchParamRegistry`; a retired, draft or deleted one is unregistered again. The store is the
record: every process (API, worker, CLI) brings its registry in line with the store's
SearchParameters at start-up (`sync_search_parameters`), the workers again before each projection
run, and full-stack API processes periodically — so a parameter posted to one API process
reaches the others and the workers without any message between them.

A newly registered parameter has no values in the index for resources written before it: the
write path asks for a background reindex of the types it applies to (`affected_types`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from app.fhir.outcome import FhirError
from app.records import StoredResource, Write
from app.store.port import ResourceScan
from indexing.registry import SearchParam, SearchParamRegistry
from workers.port import JobQueue

__all__ = [
    "SEARCH_PARAMETER",
    "affected_types",
    "apply_search_parameter",
    "check_search_parameter",
    "register_written",
    "sync_search_parameters",
]

log = logging.getLogger("micdr.search_parameters")

SEARCH_PARAMETER = "SearchParameter"
ALL_TYPES = "*"  # in affected_types: every resource type (a Resource/DomainResource base)
_SCAN_PAGE = 200


def source_of(resource_id: str) -> str:
    return f"{SEARCH_PARAMETER}/{resource_id}"


def is_active(resource: Mapping[str, Any] | None) -> bool:
    return resource is not None and resource.get("status") == "active"


def check_search_parameter(registry: SearchParamRegistry, resource: Mapping[str, Any]) -> None:
    """Refuse (400) an active SearchParameter the registry could not use; the message is the
    registry's ValueError. Other resources and inactive definitions pass."""
    if resource.get("resourceType") != SEARCH_PARAMETER or not is_active(resource):
        return
    try:
        registry.check(resource)
    except ValueError as error:
        raise FhirError.of(400, "invalid", f"SearchParameter cannot be used: {error}") from None


def affected_types(params: Iterable[SearchParam]) -> set[str]:
    """The resource types whose documents change with `params` (`*`: every type)."""
    types: set[str] = set()
    for param in params:
        for base in param.base:
            types.add(ALL_TYPES if base in ("Resource", "DomainResource") else base)
    return types


def apply_search_parameter(
    registry: SearchParamRegistry, stored: StoredResource
) -> SearchParam | None:
    """Bring the registry in line with one stored SearchParameter's current version; answers
    the parameter registered or removed (None: nothing changed). A stored definition the
    registry refuses (written before it could check) is logged and left out."""
    source = source_of(stored.id)
    if stored.deleted or not is_active(stored.resource):
        return registry.unregister(source)
    if registry.source_version(source) == stored.version:
        return None
    assert stored.resource is not None
    try:
        return registry.register(stored.resource, source=source, version=stored.version)
    except ValueError as error:
        log.warning("stored %s is not usable: %s", source, error)
        return registry.unregister(source)


async def sync_search_parameters(store: ResourceScan, registry: SearchParamRegistry) -> set[str]:
    """Apply every stored SearchParameter (`apply_search_parameter`); answers the types whose
    parameters changed (see `affected_types`). Skipped when no SearchParameter was committed
    since the registry's last sync: on some engines the scan reads every resource."""
    changes = await store.changes(SEARCH_PARAMETER)
    if changes == registry.synced_changes:
        return set()
    changed: list[SearchParam] = []
    after: str | None = None
    while page := await store.scan(SEARCH_PARAMETER, after, _SCAN_PAGE):
        for stored in page:
            param = apply_search_parameter(registry, stored)
            if param is not None:
                changed.append(param)
        after = page[-1].id
    # counted before the scan: a commit the scan missed has raised the count since
    registry.synced_changes = changes
    return affected_types(changed)


async def register_written(
    registry: SearchParamRegistry, queue: JobQueue, seq: int, writes: Iterable[Write]
) -> None:
    """After commit `seq`: register (or unregister) the SearchParameters it wrote, and queue
    the reindex of the types a changed parameter applies to."""
    changed = [
        param
        for w in writes
        if w.type == SEARCH_PARAMETER
        and (param := apply_search_parameter(registry, _as_stored(w))) is not None
    ]
    types = affected_types(changed)
    if types:
        await queue.request_reindex(seq, sorted(types))


def _as_stored(write: Write) -> StoredResource:
    last_updated = str((write.resource or {}).get("meta", {}).get("lastUpdated", ""))
    return StoredResource(
        write.type,
        write.id,
        write.version,
        last_updated,
        write.op == "delete",
        write.resource,
        write.op,
    )
