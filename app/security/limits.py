"""Hostile-input limits that are cheap to check before any work: query parameter count and
length, chain and `_has` depth of a plan, and a per-client token bucket. Pure."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from indexing.plan.plan import Chain, Clause, CompositeMatch, Has, Predicate, SearchPlan


class LimitExceeded(Exception):
    """A request beyond a configured limit; `status` is 400 (or 429 for the rate limit)."""

    def __init__(self, detail: str, status: int = 400, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.retry_after = retry_after


def check_query(query_string: bytes, max_params: int, max_length: int) -> None:
    """The raw (still encoded) query string: at most `max_params` parameters, each name=value
    at most `max_length` bytes."""
    if not query_string:
        return
    pairs = query_string.split(b"&")
    if len(pairs) > max_params:
        raise LimitExceeded(
            f"the request has {len(pairs)} query parameters; this server accepts at most "
            f"{max_params} (MICDR_MAX_QUERY_PARAMS)"
        )
    longest = max(len(p) for p in pairs)
    if longest > max_length:
        raise LimitExceeded(
            f"a query parameter is {longest} bytes long; this server accepts at most "
            f"{max_length} (MICDR_MAX_PARAM_LENGTH)"
        )


def chain_depth(plan: SearchPlan) -> int:
    """The deepest nesting of chains and `_has` in the plan (0: none)."""
    return max((_clause_depth(c) for c in plan.clauses), default=0)


def _clause_depth(clause: Clause) -> int:
    return max((_depth(p) for p in clause.any_of), default=0)


def _depth(predicate: Predicate) -> int:
    if isinstance(predicate, Chain | Has):
        return 1 + _clause_depth(predicate.inner)
    if isinstance(predicate, CompositeMatch):
        return max((_depth(p) for p in predicate.parts), default=0)
    return 0


def check_chain_depth(plan: SearchPlan, limit: int) -> None:
    depth = chain_depth(plan)
    if depth > limit:
        raise LimitExceeded(
            f"the search chains {depth} levels deep; this server follows at most {limit} "
            "(MICDR_MAX_CHAIN_DEPTH)"
        )


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """One token bucket per client key: `rate` tokens a second, at most `burst` saved up. The
    least recently seen keys are forgotten past `max_keys` (they start full again)."""

    def __init__(self, rate: float, burst: int, max_keys: int = 10_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self.buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, key: str, now: float) -> float:
        """0 when the request may go ahead, else the seconds until it could."""
        bucket = self.buckets.pop(key, None) or _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        self.buckets[key] = bucket
        if len(self.buckets) > self.max_keys:
            self.buckets.popitem(last=False)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate


# Arrays and objects within one another in a request body: far beyond any real resource or
# Bundle (the validator allows 128 objects deep), short of the recursion the write path's
# reference walk would hit.
MAX_JSON_DEPTH = 256


def json_depth_exceeds(value: object, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether parsed JSON nests deeper than `limit` (iterative: no recursion on hostile input)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: list[object] = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
