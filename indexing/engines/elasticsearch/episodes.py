"""`EpisodeIndex` on Elasticsearch (port: indexing/engines/port.py).

One index behind the alias `<prefix>-analytics-episodes` (indexing/engines/names.py), created
with its mapping on first open: the documents of indexing/episodes.py as they are, a field per
FIELDS entry typed by it, plus `terms` (what `related` searches). The revision of a document is
its `[_seq_no, _primary_term]`: `apply` writes with `if_seq_no`/`if_primary_term` (or `create`
for a new key) and `refresh=wait_for`, so a conflict is a 409 and a completed write is visible.
`answer` compiles a question into one composite aggregation (`compile_answer`, pure). A
rebuild's start is kept in the mapping's `_meta` (`rebuilding_since`) of the index it writes,
so every process sees it and it goes with that index.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch, NotFoundError, TransportError

from indexing.alerts import AlertRule, alert_row, threshold
from indexing.analytics import (
    FIELDS,
    GROUPS,
    LIST_FIELDS,
    OPEN_STATUSES,
    REPORTED_STATUSES,
    TURNAROUNDS,
    AnalyticsQuery,
    episode_terms,
)
from indexing.engines.names import episode_alias, episode_index, validate_prefix
from indexing.engines.port import EpisodeStatus, EpisodeWrite, StoredEpisode

__all__ = ["ElasticsearchEpisodeIndex", "compile_answer", "episode_mappings"]

GENERATION = 1
PAGE = 1000
MAX_RELATED = 10_000


def episode_mappings() -> dict[str, Any]:
    properties: dict[str, Any] = {
        name: {"type": kind, **({"format": "strict_date_time_no_millis"} if kind == "date" else {})}
        for name, kind in FIELDS.items()
    }
    properties.update({name: {"type": "keyword"} for name in (*LIST_FIELDS, "terms")})
    return {"dynamic": "strict", "properties": properties}


def compile_answer(query: AnalyticsQuery) -> dict[str, Any]:
    """The search body answering `query`: its filters and one composite aggregation `rows`
    with a source per group field (missing values first, as `reference_answer` sorts)."""
    filters: list[dict[str, Any]] = []
    dates: dict[str, str] = {}
    if query.start:
        dates["gte"] = query.start
    if query.end:
        dates["lt"] = query.end
    if query.question == "unreported":
        dates["lt"] = min(dates.get("lt", query.cutoff), query.cutoff)
        filters.append({"terms": {"status": list(OPEN_STATUSES)}})
    if dates:
        filters.append(
            {"range": {"episode_date": {**dates, "format": "strict_date_optional_time"}}}
        )
    for field, value in (("modality", query.modality), ("performing_org_upi", query.site)):
        if value:
            filters.append({"term": {field: value}})
    measures: dict[str, Any] = {}
    if query.question == "turnaround":
        measures = {f"{t[:-8]}_avg": {"avg": {"field": t}} for t in TURNAROUNDS}
    elif query.question == "repeats":
        measures = {"repeats": {"filter": {"term": {"repeat": True}}}}
    elif query.question == "amendments":
        measures = {
            "reported": {"filter": {"terms": {"status": list(REPORTED_STATUSES)}}},
            "amended": {"filter": {"term": {"status": "amended"}}},
        }
    sources = [
        {g: {"terms": {"field": g, "missing_bucket": True, "order": "asc"}}}
        for g in GROUPS[query.question]
    ]
    composite: dict[str, Any] = {"rows": {"composite": {"size": PAGE, "sources": sources}}}
    if measures:
        composite["rows"]["aggs"] = measures
    return {"size": 0, "query": {"bool": {"filter": filters}}, "aggs": composite}


def _row(query: AnalyticsQuery, bucket: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = dict(bucket["key"])
    if query.question == "turnaround":
        row["episodes"] = bucket["doc_count"]
        row.update({f"{t[:-8]}_avg": bucket[f"{t[:-8]}_avg"]["value"] for t in TURNAROUNDS})
    elif query.question == "repeats":
        row.update(episodes=bucket["doc_count"], repeats=bucket["repeats"]["doc_count"])
    elif query.question == "amendments":
        row.update(reported=bucket["reported"]["doc_count"], amended=bucket["amended"]["doc_count"])
    else:
        row["episodes"] = bucket["doc_count"]
    return row


def _lost_race(result: dict[str, Any]) -> bool:
    """A bulk item refused because another worker wrote or deleted the episode first: a
    compare-and-set conflict, or a delete of what is already gone (no error, `not_found`)."""
    if result.get("status") == 409:
        return True
    return result.get("status") == 404 and "error" not in result


class ElasticsearchEpisodeIndex:
    """The full stack's episode index."""

    def __init__(
        self, client: AsyncElasticsearch, prefix: str, refresh_interval: str = "1s"
    ) -> None:
        self._client = client
        self._refresh_interval = refresh_interval
        self._alias = episode_alias(validate_prefix(prefix))
        self._index = episode_index(prefix, GENERATION)

    @classmethod
    async def open(
        cls, url: str, prefix: str, refresh_interval: str = "1s"
    ) -> ElasticsearchEpisodeIndex:
        """Connect and create the index unless it exists; `refresh_interval` bounds how long a
        write waits to become visible (MICDR_INDEX_REFRESH_INTERVAL)."""
        client = AsyncElasticsearch(url, request_timeout=30.0, max_retries=2, retry_on_timeout=True)
        index = cls(client, prefix, refresh_interval)
        try:
            await index.ensure()
        except BaseException:
            await client.close()
            raise
        return index

    async def ensure(self) -> None:
        """Create the index and its alias unless they exist (another process may race us)."""
        if await self._client.indices.exists_alias(name=self._alias):
            return
        try:
            await self._create(self._index, aliased=True)
        except ApiError as error:
            if "resource_already_exists" not in str(error):
                raise

    async def _create(self, index: str, aliased: bool, meta: dict[str, str] | None = None) -> None:
        await self._client.indices.create(
            index=index,
            mappings={**episode_mappings(), **({"_meta": meta} if meta else {})},
            settings={
                "number_of_shards": 1,
                "number_of_replicas": 0,
                "refresh_interval": self._refresh_interval,
            },
            aliases={self._alias: {}} if aliased else None,
        )

    async def _behind_alias(self) -> list[str]:
        try:
            return list(await self._client.indices.get_alias(name=self._alias))
        except NotFoundError:
            return []

    async def related(self, terms: Sequence[str]) -> list[StoredEpisode]:
        if not terms:
            return []
        response = await self._client.search(
            index=self._alias,
            query={"terms": {"terms": sorted(set(terms))}},
            size=MAX_RELATED,
            seq_no_primary_term=True,
            sort=[{"key": "asc"}],
        )
        out = []
        for hit in response["hits"]["hits"]:
            doc = dict(hit["_source"])
            doc.pop("terms", None)
            out.append(StoredEpisode(hit["_id"], doc, [hit["_seq_no"], hit["_primary_term"]]))
        return out

    async def apply(self, writes: Sequence[EpisodeWrite]) -> bool:
        if not writes:
            return True
        operations: list[dict[str, Any]] = []
        for write in writes:
            guard: dict[str, Any] = {"_index": self._alias, "_id": write.key}
            if write.expect is not None:
                guard.update(if_seq_no=write.expect[0], if_primary_term=write.expect[1])
            if write.doc is None:
                operations.append({"delete": guard})
                continue
            operations.append({"index" if write.expect is not None else "create": guard})
            operations.append({**write.doc, "terms": episode_terms(write.doc)})
        # require_alias: a write while the alias is missing fails (and the job retries) rather
        # than create a concrete index under the alias's name, which no alias could take again
        response = await self._client.bulk(
            operations=operations, refresh="wait_for", require_alias=True
        )
        if not response["errors"]:
            return True
        results = [next(iter(item.values())) for item in response["items"]]
        failed = [r for r in results if r.get("status", 0) >= 300]
        if all(_lost_race(r) for r in failed):
            return False  # another worker wrote (or deleted) one of them first
        raise RuntimeError(f"episode bulk write failed: {response['items'][:3]}")

    async def answer(self, query: AnalyticsQuery) -> list[dict[str, Any]]:
        body = compile_answer(query)
        rows: list[dict[str, Any]] = []
        while True:
            response = await self._client.search(index=self._alias, **body)
            agg = response["aggregations"]["rows"]
            rows.extend(_row(query, b) for b in agg["buckets"])
            if len(agg["buckets"]) < PAGE or "after_key" not in agg:
                return rows
            body["aggs"]["rows"]["composite"]["after"] = agg["after_key"]

    async def alerts(self, rules: Sequence[AlertRule], now: datetime) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for rule in rules:
            bound = "lt" if rule.is_age else "gt"
            response = await self._client.search(
                index=self._alias,
                query={
                    "bool": {
                        "filter": [
                            {"terms": {"status": list(rule.statuses)}},
                            {"range": {rule.field: {bound: threshold(rule, now)}}},
                        ]
                    }
                },
                size=MAX_RELATED,
                sort=[{"key": "asc"}],
            )
            out.extend(alert_row(rule, hit["_source"]) for hit in response["hits"]["hits"])
        return out

    async def begin_rebuild(self, since: str) -> None:
        """Point the alias at a new empty index, marked `rebuilding_since`, in one step, then
        delete the old one (delete-by-query needs a module some distributions leave out). The
        alias never goes missing, so the writes of other workers meanwhile land in one index or
        the other, never in a concrete index created under the alias's name. One rebuild at a
        time (a rebuild is one job per deployment): two at once can leave the alias naming both
        new indexes."""
        await self.ensure()
        old = await self._behind_alias()
        fresh = f"{self._index}-{uuid.uuid4().hex[:8]}"
        await self._create(fresh, aliased=False, meta={"rebuilding_since": since})
        # every index the alias names, so it keeps exactly one
        await self._client.indices.update_aliases(
            actions=[
                {"remove": {"index": f"{self._alias}-*", "alias": self._alias}},
                {"add": {"index": fresh, "alias": self._alias}},
            ]
        )
        for name in old:
            with contextlib.suppress(NotFoundError):  # a concurrent rebuild deleted it first
                await self._client.indices.delete(index=name)

    async def _marks(self, client: AsyncElasticsearch) -> dict[str, str]:
        """index behind the alias -> the start of its unfinished rebuild."""
        mappings = await client.indices.get_mapping(index=self._alias)
        metas = {name: m["mappings"].get("_meta", {}) for name, m in mappings.items()}
        return {
            name: meta["rebuilding_since"]
            for name, meta in metas.items()
            if meta.get("rebuilding_since")
        }

    async def finish_rebuild(self, since: str) -> None:
        # only the index that rebuild created: a later rebuild's index keeps its own mark
        for name, mark in (await self._marks(self._client)).items():
            if mark == since:
                await self._client.indices.put_mapping(index=name, meta={})

    async def status(self) -> EpisodeStatus:
        try:
            # /health must answer soon while Elasticsearch is down
            marks = await self._marks(self._client.options(request_timeout=5.0))
        except NotFoundError:
            return EpisodeStatus(up=False, detail=f"no index behind the alias {self._alias}")
        except (TransportError, ApiError) as error:
            return EpisodeStatus(up=False, detail=str(error))
        return EpisodeStatus(up=True, rebuilding_since=min(marks.values(), default=None))

    async def refresh(self) -> None:
        await self._client.indices.refresh(index=self._alias)

    async def drop(self) -> None:
        """Delete the index (tests)."""
        names = {self._index, *await self._behind_alias()}
        await self._client.indices.delete(index=",".join(sorted(names)), ignore_unavailable=True)

    async def close(self) -> None:
        await self._client.close()
