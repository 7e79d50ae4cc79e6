"""`EpisodeIndex` on Elasticsearch (port: indexing/engines/port.py).

One index behind the alias `<prefix>-analytics-episodes` (indexing/engines/names.py), created
with its mapping on first open: the documents of indexing/episodes.py as they are, a field per
FIELDS entry typed by it, plus `terms` (what `related` searches). The revision of a document is
its `[_seq_no, _primary_term]`: `apply` writes with `if_seq_no`/`if_primary_term` (or `create`
for a new key) and `refresh=wait_for`, so a conflict is a 409 and a completed write is visible.
`answer` compiles a question into one composite aggregation (`compile_answer`, pure).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch

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
from indexing.engines.port import EpisodeWrite, StoredEpisode

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
            await self._client.indices.create(
                index=self._index,
                mappings=episode_mappings(),
                settings={
                    "number_of_shards": 1,
                    "number_of_replicas": 0,
                    "refresh_interval": self._refresh_interval,
                },
                aliases={self._alias: {}},
            )
        except ApiError as error:
            if "resource_already_exists" not in str(error):
                raise

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
        response = await self._client.bulk(operations=operations, refresh="wait_for")
        if not response["errors"]:
            return True
        statuses = [next(iter(item.values())).get("status", 0) for item in response["items"]]
        failed = [s for s in statuses if s >= 300]
        if all(s in (404, 409) for s in failed):
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

    async def clear(self) -> None:
        """Delete the index and create it empty (delete-by-query needs a module some
        distributions leave out)."""
        await self._client.indices.delete(index=self._index, ignore_unavailable=True)
        await self.ensure()

    async def refresh(self) -> None:
        await self._client.indices.refresh(index=self._alias)

    async def drop(self) -> None:
        """Delete the index (tests)."""
        await self._client.indices.delete(index=self._index, ignore_unavailable=True)

    async def close(self) -> None:
        await self._client.close()
