"""app/security/limits.py: query limits, chain depth, JSON depth, the token bucket."""

from __future__ import annotations

import pytest

from app.security.limits import (
    LimitExceeded,
    RateLimiter,
    chain_depth,
    check_query,
    json_depth_exceeds,
)
from indexing.plan.plan import Chain, Clause, Has, SearchPlan, StringMatch


def test_query_limits() -> None:
    check_query(b"a=1&b=2", 2, 3)
    with pytest.raises(LimitExceeded):
        check_query(b"a=1&b=2&c=3", 2, 10)
    with pytest.raises(LimitExceeded):
        check_query(b"a=1234", 5, 5)


def test_chain_depth_counts_chains_and_has() -> None:
    leaf = Clause((StringMatch("name", "x"),))
    one = Chain("subject", ("Patient",), leaf)
    two = Has("Observation", "subject", Clause((one,)))
    assert chain_depth(SearchPlan(("Patient",))) == 0
    assert chain_depth(SearchPlan(("Observation",), (Clause((one,)),))) == 1
    assert chain_depth(SearchPlan(("Patient",), (leaf, Clause((two,))))) == 2


def test_json_depth() -> None:
    deep: object = 1
    for _ in range(300):
        deep = [deep]
    assert json_depth_exceeds(deep)
    assert not json_depth_exceeds({"a": [{"b": 1}]})


def test_token_bucket_refills_at_its_rate() -> None:
    limiter = RateLimiter(rate=2, burst=2)
    assert limiter.take("a", 0.0) == 0 and limiter.take("a", 0.0) == 0
    assert limiter.take("a", 0.0) == pytest.approx(0.5)
    assert limiter.take("b", 0.0) == 0  # its own bucket
    assert limiter.take("a", 0.5) == 0  # one token back after half a second


def test_the_bucket_map_is_bounded() -> None:
    limiter = RateLimiter(rate=1, burst=1, max_keys=3)
    for key in "abcde":
        limiter.take(key, 0.0)
    assert list(limiter.buckets) == ["c", "d", "e"]
