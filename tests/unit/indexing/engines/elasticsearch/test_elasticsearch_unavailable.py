"""A search Elasticsearch cannot answer now (not reachable, a shard not ready, overloaded) is
`IndexUnavailable`, which the API answers 503 with Retry-After; any other refusal is a fault of
ours and stays one (a 500 with its traceback in the log)."""

from __future__ import annotations

from typing import Any

import pytest
from elastic_transport import ApiResponseMeta, ConnectionError, HttpHeaders, NodeConfig
from elasticsearch import ApiError

from indexing.engines.elasticsearch.adapter import ElasticsearchSearchIndex
from indexing.engines.port import IndexUnavailable
from indexing.plan.plan import SearchPlan
from indexing.registry import SearchParamRegistry


def refusal(status: int, error: str) -> ApiError:
    meta = ApiResponseMeta(status, "1.1", HttpHeaders(), 0.0, NodeConfig("http", "localhost", 9200))
    return ApiError(error, meta, {"error": {"type": error}, "status": status})


def index_failing_with(exc: Exception, registry: SearchParamRegistry) -> ElasticsearchSearchIndex:
    index = ElasticsearchSearchIndex(None, "micdr-test", registry)  # type: ignore[arg-type]

    async def search(*args: Any) -> Any:
        raise exc

    index._search = search  # type: ignore[method-assign]
    return index


@pytest.mark.parametrize("status", [429, 502, 503, 504])
async def test_a_search_elasticsearch_cannot_answer_now_is_unavailable(
    registry: SearchParamRegistry, status: int
) -> None:
    index = index_failing_with(refusal(status, "search_phase_execution_exception"), registry)
    with pytest.raises(IndexUnavailable, match=f"Elasticsearch answered {status}"):
        await index.search(SearchPlan(types=("Patient",)))


async def test_an_unreachable_elasticsearch_is_unavailable(registry: SearchParamRegistry) -> None:
    index = index_failing_with(ConnectionError("connection refused"), registry)
    with pytest.raises(IndexUnavailable, match="Elasticsearch did not answer"):
        await index.search(SearchPlan(types=("Patient",)))


async def test_a_query_elasticsearch_refuses_stays_a_fault(registry: SearchParamRegistry) -> None:
    index = index_failing_with(refusal(400, "query_shard_exception"), registry)
    with pytest.raises(ApiError):
        await index.search(SearchPlan(types=("Patient",)))
