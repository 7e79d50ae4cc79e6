"""A search the index cannot answer now (Elasticsearch down, a shard not ready) is a 503 with
Retry-After and an OperationOutcome that says so, not a 500 (the indexing adapter turns such
failures into `IndexUnavailable`: tests/unit/indexing/engines/elasticsearch/)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from indexing.engines.port import IndexUnavailable
from tests.conformance._clients import client_with


class IndexDown:
    """The deployment's index, except that searches cannot be answered."""

    def __init__(self, index: Any) -> None:
        self._index = index

    def __getattr__(self, name: str) -> Any:
        return getattr(self._index, name)

    async def search(self, *args: Any, **kwargs: Any) -> Any:
        raise IndexUnavailable("Elasticsearch answered 503: search_phase_execution_exception")


async def test_a_search_the_index_cannot_answer_now_is_503_to_retry(tmp_path: Path) -> None:
    async with client_with({}, "embedded", tmp_path) as client:
        state = client.app.state
        state.services = replace(state.services, index=IndexDown(state.services.index))
        answer = await client.get("/fhir/Patient?family=Ito")
    assert (answer.status_code, answer.headers["retry-after"]) == (503, "5")
    assert answer.json()["issue"] == [
        {
            "severity": "error",
            "code": "transient",
            "diagnostics": "the search index is unavailable; retry later",
        }
    ]
