"""`micdr bench` runs the benchmark's own command line (bench/__main__.py) in its place: the
server's CLI does not import the benchmark, yet the options README documents keep working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def micdr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_micdr_bench_help_is_the_benchmarks_own() -> None:
    done = micdr("bench", "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: micdr bench ")
    for option in ("--quick", "--stack {embedded,full,both}", "--out", "--profile", "--seed"):
        assert option in done.stdout


def test_a_bad_bench_option_is_refused_by_the_benchmarks_parser() -> None:
    done = micdr("bench", "--quick", "--stack", "nowhere")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines()[-1] == (
        "micdr bench: error: argument --stack: invalid choice: 'nowhere'"
        " (choose from 'embedded', 'full', 'both')"
    )


def test_options_after_another_command_are_still_refused() -> None:
    done = micdr("reindex", "--quick")
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == "micdr: error: unrecognized arguments: --quick"
