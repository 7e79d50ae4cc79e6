"""`sync_search_parameters` against every store adapter: a registry learns the stored
SearchParameters, and reads them again only after a SearchParameter commit (the store's
`changes` count), since on FerretDB the read is a scan of every resource."""

from __future__ import annotations

from typing import Any

from app.records import StoredResource, Transaction, Write
from app.search_parameters import sync_search_parameters
from indexing.registry import SearchParamRegistry
from tests._search_parameters import MARITAL


class CountingScans:
    """The store, counting the `scan` calls that pass through."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.scans = 0

    async def scan(self, type: str, after_id: str | None, limit: int) -> list[StoredResource]:
        self.scans += 1
        result: list[StoredResource] = await self.store.scan(type, after_id, limit)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def write(version: int, **changes: Any) -> Transaction:
    resource = {**MARITAL, **changes, "meta": {"versionId": str(version)}}
    op = "create" if version == 1 else "update"
    return Transaction((Write("SearchParameter", "marital", version, op, resource),))


async def test_a_registry_reads_the_search_parameters_again_only_after_one_commits(
    store: Any,
) -> None:
    counting = CountingScans(store)
    registry = SearchParamRegistry.load()

    assert await sync_search_parameters(counting, registry) == set()
    assert counting.scans == 1  # a registry never synced reads, even an empty store
    await store.commit(write(1))
    assert await sync_search_parameters(counting, registry) == {"Patient"}
    assert registry.get("Patient", "marital") is not None
    assert counting.scans == 3  # one page with the parameter, one empty page

    await store.commit(Transaction((Write("Patient", "p1", 1, "create", {"id": "p1"}),)))
    assert await sync_search_parameters(counting, registry) == set()
    assert counting.scans == 3

    await store.commit(write(2, status="retired"))
    assert await sync_search_parameters(counting, registry) == {"Patient"}
    assert registry.get("Patient", "marital") is None
    assert counting.scans == 5
