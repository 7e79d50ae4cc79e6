"""`ElasticsearchSearchIndex`: the SearchIndex port on Elasticsearch 9 (indexing/engines/port.py).

- One index per resource type behind an alias (`indexing.engines.names`), created with the
  type's mapping (`mapping.py`) on the type's first write.
- Writes are bulk requests with external versioning: Elasticsearch itself refuses an op whose
  version is not newer than the indexed one (409, ignored here), so a stale or repeated
  projection never overwrites a newer one, across any number of worker processes.
- A delete is a tombstone document (`deleted: true`) carrying the deleting version, never an
  Elasticsearch delete: a delete's version is forgotten after `index.gc_deletes` (60 s), after
  which a late, older op would resurrect the resource. Every search filters tombstones out.
- Paging is `search_after` on the plan's sort plus (resourceType, id), which is unique. When a
  page is full, a point in time is opened so later pages read the same snapshot; its id travels
  in the cursor, it is closed on the last page and otherwise expires after `pit_keep_alive`. An
  expired point in time falls back to a live `search_after` from the same sort values.
- `reindex` fills a new generation `v<N+1>` from documents the caller projects from the store,
  swaps the alias atomically, then copies over what writers changed in the old generation
  meanwhile (by sequence number, version-guarded), so a reindex under load loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch, NotFoundError, TransportError

from indexing.document import IndexOp
from indexing.engines.elasticsearch.compile import compile_query
from indexing.engines.elasticsearch.mapping import (
    IndexSettings,
    from_source,
    index_body,
    index_mappings,
    to_source,
    tombstone_source,
)
from indexing.engines.names import (
    alias_name,
    index_generation,
    index_name,
    is_alias_of,
    validate_prefix,
)
from indexing.engines.port import Hit, HitPage, IndexStatus, IndexUnavailable
from indexing.plan.plan import SearchPlan
from indexing.registry import SearchParamRegistry

__all__ = [
    "ElasticsearchSearchIndex",
    "ElasticsearchUnavailable",
    "IndexWriteError",
    "ReindexResult",
]

_log = logging.getLogger(__name__)

BULK_CHUNK = 1000  # ops per bulk request
SCROLL_PAGE = 1000
_MAX_SHARD_DOC = 2**63 - 1
_UNAVAILABLE_STATUSES = frozenset({429, 502, 503, 504})


class ElasticsearchUnavailable(RuntimeError):
    """Elasticsearch did not answer (wrong URL, not started, network)."""


class IndexWriteError(RuntimeError):
    """Elasticsearch refused some index writes for a reason other than a stale version."""

    def __init__(self, errors: list[dict[str, Any]]):
        self.errors = errors
        first = errors[0] if errors else {}
        super().__init__(f"{len(errors)} index write(s) failed; first: {first}")


@dataclass(frozen=True)
class ReindexResult:
    index: str  # the new physical index, now behind the alias
    previous: tuple[str, ...]  # the indexes the alias pointed at before
    written: int  # ops the caller supplied that were indexed (stale ones excluded)
    caught_up: int  # documents copied from the previous index after the swap


class ElasticsearchSearchIndex:
    def __init__(
        self,
        client: AsyncElasticsearch,
        prefix: str,
        registry: SearchParamRegistry,
        *,
        settings: IndexSettings | None = None,
        use_pit: bool = True,
        pit_keep_alive: str = "2m",
    ) -> None:
        self._client = client
        self._prefix = validate_prefix(prefix)
        self._registry = registry
        self._settings = settings or IndexSettings()
        self._use_pit = use_pit
        self._pit_keep_alive = pit_keep_alive
        self._ready: set[str] = set()  # types whose alias is known to exist

    @classmethod
    async def open(
        cls,
        url: str,
        prefix: str,
        registry: SearchParamRegistry,
        *,
        settings: IndexSettings | None = None,
        use_pit: bool = True,
        request_timeout: float = 30.0,
    ) -> ElasticsearchSearchIndex:
        """Connect and check that the cluster answers; raises ElasticsearchUnavailable (after a
        few seconds at most) when it does not, ValueError for a prefix no index name allows."""
        validate_prefix(prefix)
        client = AsyncElasticsearch(
            url, request_timeout=request_timeout, max_retries=2, retry_on_timeout=True
        )
        try:
            await client.options(request_timeout=5.0, max_retries=0).cluster.health()
        except (TransportError, ApiError) as error:
            await client.close()
            raise ElasticsearchUnavailable(
                f"Elasticsearch at {url} is not reachable: {error}"
            ) from error
        return cls(client, prefix, registry, settings=settings, use_pit=use_pit)

    # -- write ---------------------------------------------------------------------------------

    async def write(self, ops: Sequence[IndexOp]) -> None:
        """Version-guarded bulk index; stale ops (409) are ignored, any other refusal raises
        IndexWriteError after the whole batch has been tried. Returns once the next scheduled
        refresh has made the documents searchable (`wait_for`, which forces no extra refresh):
        the caller marks the commits indexed only then, so "indexed" means "found by search"."""
        for resource_type in sorted({op.type for op in ops}):
            await self._ensure_index(resource_type)
        errors: list[dict[str, Any]] = []
        stale: set[str] = set()
        for start in range(0, len(ops), BULK_CHUNK):
            chunk = ops[start : start + BULK_CHUNK]
            retry = await self._bulk(
                chunk, lambda op: alias_name(self._prefix, op.type), errors, stale, wait_for=True
            )
            if retry:  # an alias vanished since we cached it (tests drop indexes): once more
                for resource_type in {op.type for op in retry}:
                    self._ready.discard(resource_type)
                    await self._ensure_index(resource_type)
                still = await self._bulk(
                    retry,
                    lambda op: alias_name(self._prefix, op.type),
                    errors,
                    stale,
                    wait_for=True,
                )
                # never report success for a write that reached no index
                errors.extend(
                    {"type": op.type, "id": op.id, "version": op.version, "error": "no alias"}
                    for op in still
                )
        if errors:
            raise IndexWriteError(errors)
        if stale:
            # A concurrent projector wrote these versions first, and `wait_for` does not wait
            # for its refresh: make them searchable before the caller reports them indexed.
            await self._client.indices.refresh(
                index=",".join(alias_name(self._prefix, t) for t in sorted(stale)),
                ignore_unavailable=True,
            )

    async def _bulk(
        self,
        ops: Sequence[IndexOp],
        target: Any,
        errors: list[dict[str, Any]],
        stale: set[str],
        *,
        wait_for: bool,
    ) -> list[IndexOp]:
        """One bulk request; appends refusals to `errors` and the type of each op an equal or
        newer version refused to `stale`, returns ops whose alias is missing. `wait_for`: return
        once the next refresh made the writes searchable (never into a reindex's new generation:
        its refresh is off until it is complete, so that wait would not end)."""
        if not ops:
            return []
        operations: list[dict[str, Any]] = []
        for op in ops:
            operations.append(
                {
                    "index": {
                        "_index": target(op),
                        "_id": op.id,
                        "version": op.version,
                        "version_type": "external",
                        "require_alias": target(op) == alias_name(self._prefix, op.type),
                    }
                }
            )
            operations.append(
                tombstone_source(op.type, op.id, op.version)
                if op.document is None
                else to_source(self._registry, op.document)
            )
        response = await self._client.bulk(
            operations=operations, refresh="wait_for" if wait_for else None
        )
        missing: list[IndexOp] = []
        if not response.get("errors"):
            return missing
        for op, item in zip(ops, response["items"], strict=True):
            result = item.get("index", {})
            status = result.get("status", 200)
            if status == 409:  # an equal or newer version is indexed
                stale.add(op.type)
                continue
            if status < 300:
                continue
            error_type = (result.get("error") or {}).get("type", "")
            if error_type in ("index_not_found_exception", "illegal_argument_exception") and (
                "alias" in str(result.get("error")) or error_type == "index_not_found_exception"
            ):
                missing.append(op)
            else:
                errors.append({"type": op.type, "id": op.id, "version": op.version, **result})
        return missing

    async def _ensure_index(self, resource_type: str) -> None:
        if resource_type in self._ready:
            return
        alias = alias_name(self._prefix, resource_type)
        if not await self._client.indices.exists_alias(name=alias):
            first = index_name(self._prefix, resource_type, 1)
            await self._create_index(first, resource_type, alias=alias)
            if not await self._client.indices.exists_alias(name=alias):
                # The index outlived its alias (a crash between the two, or an alias removed by
                # hand): point the alias at it again, or every write would miss it.
                await self._client.indices.put_alias(index=first, name=alias)
        self._ready.add(resource_type)

    async def _create_index(
        self,
        index: str,
        resource_type: str,
        *,
        alias: str | None = None,
        refresh_interval: str | None = None,
    ) -> None:
        body = index_body(self._registry, resource_type, self._settings)
        if refresh_interval is not None:
            body["settings"]["refresh_interval"] = refresh_interval
        try:
            await self._client.indices.create(
                index=index,
                settings=body["settings"],
                mappings=body["mappings"],
                aliases={alias: {}} if alias else None,
            )
        except ApiError as error:
            if error.error != "resource_already_exists_exception":
                raise

    # -- search --------------------------------------------------------------------------------

    async def search(
        self, plan: SearchPlan, after: Any = None, with_total: bool = False
    ) -> HitPage:
        try:
            return await self._search(plan, after, with_total)
        except TransportError as error:
            raise IndexUnavailable(f"Elasticsearch did not answer: {error}") from error
        except ApiError as error:
            # a shard not ready (an index just created, a node restarting) or the node
            # overloaded: the search may succeed later; anything else is a fault of ours
            if error.meta.status not in _UNAVAILABLE_STATUSES:
                raise
            raise IndexUnavailable(
                f"Elasticsearch answered {error.meta.status}: {error}"
            ) from error

    async def _search(self, plan: SearchPlan, after: Any, with_total: bool) -> HitPage:
        pit = after.get("pit") if isinstance(after, dict) else None
        values = after.get("after") if isinstance(after, dict) else after
        size = max(plan.count, 0)
        body = compile_query(
            plan,
            self._registry,
            after=values,
            with_total=with_total,
            size=size + 1 if size else 0,
        )
        sort_length = len(body["sort"])
        response = None
        if pit is not None:
            body["pit"] = {"id": pit, "keep_alive": self._pit_keep_alive}
            try:
                response = await self._client.search(body=body)
            except NotFoundError:  # the point in time expired: continue on the live index
                pit = None
                del body["pit"]
            except ApiError as error:
                if error.error not in ("search_context_missing_exception",):
                    raise
                pit = None
                del body["pit"]
            if pit is None and values is not None:
                body["search_after"] = list(values)[:sort_length]
        if response is None:
            aliases = await self._aliases(plan.types)
            if not aliases:
                return HitPage([], 0 if with_total else None)
            response = await self._client.search(
                index=",".join(aliases), body=body, ignore_unavailable=True
            )
        hits = response["hits"]["hits"]
        more = size > 0 and len(hits) > size
        hits = hits[:size]
        if pit is not None:
            pit = response.get("pit_id", pit)
            if not more:
                await self._close_pit(pit)
                pit = None
        elif more and self._use_pit:
            pit = await self._open_pit(plan.types)
        page = [self._hit(hit, pit, sort_length) for hit in hits]
        total = response["hits"]["total"]["value"] if with_total else None
        return HitPage(page, total)

    def _hit(self, hit: dict[str, Any], pit: str | None, sort_length: int) -> Hit:
        source = hit["_source"]
        sort = list(hit["sort"])
        if pit is None:
            cursor: Any = {"after": sort[:sort_length]}
        else:
            # With a point in time Elasticsearch adds `_shard_doc` as a last sort value; a hit
            # from a page read before the point in time was opened gets the highest one, which
            # is right because (resourceType, id) is already unique.
            after = sort if len(sort) > sort_length else [*sort, _MAX_SHARD_DOC]
            cursor = {"after": after, "pit": pit}
        return Hit(source["resourceType"], source["id"], int(source["versionId"]), cursor)

    async def _open_pit(self, types: Sequence[str]) -> str | None:
        aliases = await self._aliases(types)
        if not aliases:
            return None
        response = await self._client.open_point_in_time(
            index=",".join(aliases), keep_alive=self._pit_keep_alive, ignore_unavailable=True
        )
        return str(response["id"])

    async def _close_pit(self, pit: str) -> None:
        try:
            await self._client.close_point_in_time(id=pit)
        except (NotFoundError, ApiError) as error:
            _log.debug("closing point in time failed: %s", error)

    async def _aliases(self, types: Sequence[str]) -> list[str]:
        if types:
            return [alias_name(self._prefix, t) for t in types]
        response = await self._client.indices.get_alias(
            name=f"{self._prefix}-*", ignore_unavailable=True, allow_no_indices=True
        )
        names = {alias for entry in response.values() for alias in entry.get("aliases", {})}
        return sorted(name for name in names if is_alias_of(self._prefix, name))

    # -- maintenance ---------------------------------------------------------------------------

    async def refresh(self) -> None:
        await self._client.indices.refresh(
            index=f"{self._prefix}-*", ignore_unavailable=True, allow_no_indices=True
        )

    async def status(self) -> IndexStatus:
        try:
            health = await self._client.options(request_timeout=5.0).cluster.health()
            nodes = await self._client.nodes.info(node_id="_local", filter_path="nodes.*.version")
        except (TransportError, ApiError) as error:
            return IndexStatus(up=False, detail=str(error))
        versions = sorted({n.get("version", "") for n in nodes.get("nodes", {}).values()})
        return IndexStatus(
            up=health["status"] in ("green", "yellow"),
            version=",".join(versions),
            detail=f"cluster {health['cluster_name']} {health['status']}",
        )

    async def close(self) -> None:
        await self._client.close()

    async def empty(self) -> bool:
        indexes = await self._indexes()
        if not indexes:
            return True
        counted = await self._client.count(index=",".join(indexes), ignore_unavailable=True)
        return int(counted["count"]) == 0

    async def _indexes(self) -> list[str]:
        """Every physical index of this prefix (the pattern also matches longer prefixes)."""
        response = await self._client.indices.get(
            index=f"{self._prefix}-*", ignore_unavailable=True, allow_no_indices=True
        )
        return [name for name in response if _belongs(self._prefix, name)]

    async def drop(self) -> None:
        """Delete every index of this prefix (tests; a rebuild from scratch)."""
        indexes = await self._indexes()
        if indexes:
            await self._client.indices.delete(index=",".join(indexes), ignore_unavailable=True)
        self._ready.clear()

    async def reindex(
        self,
        resource_type: str,
        ops: AsyncIterable[IndexOp] | Iterable[IndexOp],
        *,
        grace_seconds: float = 1.0,
        delete_previous: bool = True,
    ) -> ReindexResult:
        """Build `<alias>-v<N+1>` with the current mapping from `ops` (the caller projects them
        from the store), then swap the alias to it atomically (`begin_rebuild`,
        `rebuild_write`, `finish_rebuild` in one call).

        Writes continue during the rebuild (they go to the old index through the alias); after
        the swap, and `grace_seconds` for in-flight bulks to land, every document the old index
        changed since the rebuild started is copied over with its version, so nothing written
        meanwhile is lost and nothing newer is overwritten. The old index is then deleted
        (unless `delete_previous` is False)."""
        state = await self.begin_rebuild(resource_type)
        written = 0
        batch: list[IndexOp] = []
        if isinstance(ops, AsyncIterable):
            async for op in ops:
                batch.append(op)
                if len(batch) >= BULK_CHUNK:
                    written += await self._fill(state, batch)
                    batch = []
        else:
            for op in ops:
                batch.append(op)
                if len(batch) >= BULK_CHUNK:
                    written += await self._fill(state, batch)
                    batch = []
        written += await self._fill(state, batch)
        previous = tuple(state["previous"])
        caught_up = await self.finish_rebuild(
            state, grace_seconds=grace_seconds, delete_previous=delete_previous
        )
        return ReindexResult(state["index"], previous, written, caught_up)

    async def _fill(self, state: Mapping[str, Any], ops: Sequence[IndexOp]) -> int:
        await self.rebuild_write(state, ops)
        return len(ops)

    async def begin_rebuild(
        self, resource_type: str, resume: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Create the type's next generation (refresh off) and answer the rebuild's state, a
        JSON object: the new index, the indexes behind the alias and their highest sequence
        numbers now (what `finish_rebuild` catches up from). `resume`, a state saved earlier,
        is continued when its index still exists and the alias has not moved since.

        The current index also gets the current mapping's new fields (`put_mapping`), so that
        writes landing there during the rebuild already carry a newly registered parameter."""
        alias = alias_name(self._prefix, resource_type)
        previous = await self._alias_indexes(alias)
        if (
            resume is not None
            and resume.get("type") == resource_type
            and list(resume.get("previous", [])) == previous
            and await self._client.indices.exists(index=str(resume.get("index", "-")))
        ):
            return dict(resume)
        await self._extend_mapping(resource_type, previous)
        generations = await self._generations(resource_type)
        new_index = index_name(self._prefix, resource_type, max(generations, default=0) + 1)
        marks = {index: await self._max_seq_nos(index) for index in previous}
        await self._create_index(new_index, resource_type, refresh_interval="-1")
        return {"type": resource_type, "index": new_index, "previous": previous, "marks": marks}

    async def _extend_mapping(self, resource_type: str, indexes: list[str]) -> None:
        if not indexes:
            return
        mappings = index_mappings(self._registry, resource_type)
        try:
            await self._client.indices.put_mapping(
                index=",".join(indexes), properties=mappings["properties"]
            )
        except ApiError as error:  # e.g. a parameter changed type: only the new index has it
            _log.warning("mapping of %s not extended in place: %s", resource_type, error)

    async def rebuild_write(self, state: Mapping[str, Any], ops: Sequence[IndexOp]) -> None:
        """Write `ops` (the store's current versions, projected) into the rebuild's new index,
        version-guarded; raises IndexWriteError for refusals other than a stale version."""
        if not ops:
            return
        resource_type = state["type"]
        if any(op.type != resource_type for op in ops):
            raise ValueError(f"reindex of {resource_type} given another type's op")
        errors: list[dict[str, Any]] = []
        new_index = state["index"]
        for start in range(0, len(ops), BULK_CHUNK):
            chunk = ops[start : start + BULK_CHUNK]
            await self._bulk(chunk, lambda op: new_index, errors, set(), wait_for=False)
        if errors:
            raise IndexWriteError(errors)

    async def finish_rebuild(
        self,
        state: Mapping[str, Any],
        *,
        grace_seconds: float = 1.0,
        delete_previous: bool = True,
    ) -> int:
        """Swap the alias to the new index, then copy over what writers changed in the old
        indexes since `begin_rebuild` (an index the alias gained meanwhile, e.g. created by the
        type's first write, is copied whole). Answers the documents copied."""
        resource_type = state["type"]
        new_index = state["index"]
        alias = alias_name(self._prefix, resource_type)
        marks: dict[str, int] = dict(state.get("marks", {}))
        await self._client.indices.put_settings(
            index=new_index, settings={"refresh_interval": self._settings.refresh_interval}
        )
        await self._client.indices.refresh(index=new_index)
        previous = [index for index in await self._alias_indexes(alias) if index != new_index]
        actions: list[dict[str, Any]] = [
            {"remove": {"index": index, "alias": alias}} for index in previous
        ]
        actions.append({"add": {"index": new_index, "alias": alias}})
        await self._client.indices.update_aliases(actions=actions)
        self._ready.add(resource_type)

        caught_up = 0
        if previous:
            errors: list[dict[str, Any]] = []
            await asyncio.sleep(grace_seconds)
            for index in previous:
                caught_up += await self._catch_up(index, marks.get(index, -1), new_index, errors)
            if errors:
                raise IndexWriteError(errors)
            await self._client.indices.refresh(index=new_index)
            if delete_previous:
                await self._client.indices.delete(index=",".join(previous))
        return caught_up

    async def _alias_indexes(self, alias: str) -> list[str]:
        try:
            response = await self._client.indices.get_alias(name=alias)
        except NotFoundError:
            return []
        return sorted(response)

    async def _generations(self, resource_type: str) -> list[int]:
        alias = alias_name(self._prefix, resource_type)
        response = await self._client.indices.get(
            index=f"{alias}-v*", ignore_unavailable=True, allow_no_indices=True
        )
        found = (index_generation(self._prefix, resource_type, name) for name in response)
        return [n for n in found if n is not None]

    async def _max_seq_nos(self, index: str) -> int:
        """The lowest, over primary shards, of each shard's highest sequence number: every
        later change on any shard has a greater sequence number than this."""
        await self._client.indices.refresh(index=index)
        stats = await self._client.indices.stats(index=index, level="shards")
        shards = stats["indices"][index]["shards"]
        highest = [
            copy["seq_no"]["max_seq_no"]
            for copies in shards.values()
            for copy in copies
            if copy["routing"]["primary"]
        ]
        return min(highest, default=-1)

    async def _catch_up(
        self, index: str, mark: int, new_index: str, errors: list[dict[str, Any]]
    ) -> int:
        await self._client.indices.refresh(index=index)
        copied = 0
        response = await self._client.search(
            index=index,
            query={"range": {"_seq_no": {"gt": mark}}},
            sort=["_doc"],
            size=SCROLL_PAGE,
            scroll="2m",
            version=True,
        )
        scroll_id = response.get("_scroll_id")
        try:
            while hits := response["hits"]["hits"]:
                ops = []
                for hit in hits:
                    document = from_source(hit["_source"])
                    source = hit["_source"]
                    ops.append(
                        IndexOp(source["resourceType"], hit["_id"], int(hit["_version"]), document)
                    )
                await self._bulk(ops, lambda op: new_index, errors, set(), wait_for=False)
                copied += len(ops)
                response = await self._client.scroll(scroll_id=scroll_id, scroll="2m")
                scroll_id = response.get("_scroll_id", scroll_id)
        finally:
            if scroll_id:
                await self._client.clear_scroll(scroll_id=scroll_id)
        return copied


def _belongs(prefix: str, index: str) -> bool:
    """Whether `index` is a physical index of this prefix (`<prefix>-<letters>-v<N>`)."""
    rest = index[len(prefix) + 1 :] if index.startswith(prefix + "-") else ""
    head, _, generation = rest.rpartition("-v")
    return head.isalpha() and head.islower() and generation.isdigit()
