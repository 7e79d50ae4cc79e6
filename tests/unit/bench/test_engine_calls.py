"""`calls_between` and `per_unit` (bench/engine_calls.py): a phase's round trips from two
readings of the engines' counters."""

from __future__ import annotations

from bench.engine_calls import calls_between, per_unit


def test_a_phase_is_charged_the_difference_without_the_probes_own_calls() -> None:
    before = {"store": {"find": 10, "insert": 4, "serverStatus": 1}, "queue": {"info": 3}}
    after = {
        "store": {"find": 70, "insert": 4, "update": 30, "serverStatus": 2},
        "index": {"/_bulk": 20, "/_nodes/stats/{metric}": 2},
        "queue": {"info": 4, "zadd": 12},
    }
    assert calls_between(before, after) == {
        "store": {"find": 60, "update": 30},
        "index": {"/_bulk": 20},
        "queue": {"zadd": 12},
    }


def test_per_unit_divides_each_kind_and_the_total() -> None:
    calls = {"store": {"find": 60, "update": 30}, "index": {"/_bulk": 20}}
    assert per_unit(calls, 20) == {
        "store": {"total": 4.5, "by_kind": {"find": 3.0, "update": 1.5}},
        "index": {"total": 1.0, "by_kind": {"/_bulk": 1.0}},
    }
    assert per_unit(calls, 0) == {}
