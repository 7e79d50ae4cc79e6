"""The benchmark's table rows (bench/report.py) for the episode lag and the dashboard phase:
a row per figure, a cell per stack, "—" where a stack did not measure it."""

from __future__ import annotations

from typing import Any

from bench.report import judge, rows


def latency(p50: float, p95: float, n: int = 20) -> dict[str, float]:
    return {"n": n, "p50": p50, "p95": p95, "p99": p95, "mean": p50, "max": p95}


RESULTS: dict[str, Any] = {
    "stacks": {
        "embedded": {
            "sync_ingest": {
                "episodes": {
                    "expected": 40,
                    "in_index": 40,
                    "seconds_after_last_outcome": 0.312,
                }
            },
            "dashboard": {
                "episodes": 4309,
                "all": latency(4.0, 9.5, 120),
                "questions": {"volume": latency(5.0, 9.5), "alerts": latency(3.0, 4.0)},
            },
        },
        "full": {
            "sync_ingest": {
                "episodes": {
                    "expected": 40,
                    "in_index": 31,
                    "seconds_after_last_outcome": None,
                }
            },
            "dashboard": {
                "episodes": 654,
                "all": latency(30.0, 250.0, 120),
                "questions": {"volume": latency(40.0, 250.0), "repeats": latency(20.0, 60.0)},
            },
        },
    }
}


def test_episode_lag_rows() -> None:
    labelled = rows(RESULTS)
    start = [label for label, _ in labelled].index("sync ingest: episodes expected / in the index")
    assert labelled[start : start + 3] == [
        ("sync ingest: episodes expected / in the index", ["40", "40"]),
        ("", ["40", "31"]),
        ("sync ingest: episodes all in, after last outcome", ["0.31 s", "—"]),
    ]


def test_a_dashboard_row_pair_per_question_any_stack_asked() -> None:
    labelled = rows(RESULTS)
    start = [label for label, _ in labelled].index("dashboard: episodes in the index")
    assert labelled[start : start + 11] == [
        ("dashboard: episodes in the index", ["4,309", "654"]),
        ("dashboard: requests at 1 client", ["120", "120"]),
        ("dashboard all p50 / p95 (ms)", ["4.0", "30.0"]),
        ("", ["9.5", "250.0"]),
        ("dashboard volume p50 / p95 (ms)", ["5.0", "40.0"]),
        ("", ["9.5", "250.0"]),
        ("dashboard alerts p50 / p95 (ms)", ["3.0", "—"]),
        ("", ["4.0", "—"]),
        ("dashboard repeats p50 / p95 (ms)", ["—", "20.0"]),
        ("", ["—", "60.0"]),
        ("dashboard errors", ["—", "—"]),
    ]


def test_the_dashboard_target_is_the_p95_over_all_requests() -> None:
    verdicts = {
        t["stack"]: t["verdict"] for t in judge(RESULTS) if t["target"].startswith("dashboard")
    }
    assert verdicts == {
        "embedded": "met, 95% under",
        "full": "MISSED, 1.2x the limit (+50.0 ms)",
    }
