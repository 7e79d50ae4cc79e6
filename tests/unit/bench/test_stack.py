"""`process_cpu_seconds` (bench/stack.py): what the benchmark charges each phase."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from bench.stack import process_cpu_seconds

BUSY = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass\n"


def _measured_after(code: str) -> float:
    # the child stops itself once done, so its /proc entry is still there to be read
    child = subprocess.Popen(
        [sys.executable, "-c", f"{code}import os, signal\nos.kill(os.getpid(), signal.SIGSTOP)"]
    )
    try:
        deadline = time.monotonic() + 30
        while _state(child.pid) != "T":
            assert time.monotonic() < deadline, "the child did not finish its work"
            time.sleep(0.02)
        return process_cpu_seconds(child.pid)
    finally:
        child.kill()
        child.wait()


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


def test_a_busy_process_is_charged_its_cpu_time() -> None:
    assert 0.35 <= _measured_after(BUSY) <= 2.0


def test_a_sleeping_process_is_charged_almost_nothing() -> None:
    assert _measured_after("import time\ntime.sleep(0.4)\n") < 0.3


def test_a_process_that_is_gone_costs_nothing() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert process_cpu_seconds(child.pid) == 0.0
    assert process_cpu_seconds(os.getpid()) > 0
