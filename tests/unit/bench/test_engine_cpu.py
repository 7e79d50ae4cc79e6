"""bench/engine_cpu.py: the engines' CPU found by the pid files of scripts/services.sh, children
included (PostgreSQL's connections are children of its postmaster)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.engine_cpu import cpu_ms_per_unit, engine_cpu_seconds, engine_processes

BUSY_CHILD = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"


def test_a_phase_is_charged_the_difference_per_unit() -> None:
    before = {"store": 10.0, "index": 4.0}
    after = {"store": 12.5, "index": 4.5, "queue": 1.0}  # queue: no earlier reading, left out
    assert cpu_ms_per_unit(before, after, 500) == {"store": 5.0, "index": 1.0}
    assert cpu_ms_per_unit(before, after, 0) == {}


def test_pid_files_are_found_and_children_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "ferretdb.pid").write_text(f"{os.getpid()}\n")
    # postmaster.pid: the pid is its first line of several
    (tmp_path / "postgresql" / "data").mkdir(parents=True)
    (tmp_path / "postgresql" / "data" / "postmaster.pid").write_text("999999999\n/x\n1\n")
    monkeypatch.setenv("MICDR_SERVICES_DIR", str(tmp_path))
    monkeypatch.setattr("bench.engine_cpu.DEFAULT_SERVICES_DIR", str(tmp_path))
    assert engine_processes() == {
        "store": [f"{Path('/proc/self/comm').read_text().strip()} ({os.getpid()})"]
    }
    before = engine_cpu_seconds()["store"]
    subprocess.run([sys.executable, "-c", BUSY_CHILD], check=True)  # a reaped child's 0.3 s
    assert engine_cpu_seconds()["store"] - before >= 0.25
