"""Projection: current resources -> version-guarded index operations, as data (pure).

The worker reads the commit log's unindexed transactions, loads the current version of every
resource they touched and writes what this returns; the index's version guard makes a repeated
or stale projection harmless (docs/implementation/index-values.md, indexing/engines/port.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from indexing.document import IndexOp, index_document
from indexing.extract import extract_values
from indexing.registry import SearchParamRegistry


class CurrentResource(Protocol):
    @property
    def type(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def deleted(self) -> bool: ...
    @property
    def resource(self) -> Mapping[str, Any] | None: ...


def project(registry: SearchParamRegistry, current: Iterable[CurrentResource]) -> list[IndexOp]:
    ops: list[IndexOp] = []
    for item in current:
        if item.deleted or item.resource is None:
            ops.append(IndexOp(item.type, item.id, item.version, None))
            continue
        values = extract_values(registry, item.resource)
        ops.append(
            IndexOp(
                item.type, item.id, item.version, index_document(registry, item.resource, values)
            )
        )
    return ops
