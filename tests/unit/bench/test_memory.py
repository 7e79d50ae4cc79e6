"""`memory_mib` and `restart_peak_memory` (bench/workloads.py), on the test's own process: the
export phase reports the producing process's peak during the export, not over its life."""

from __future__ import annotations

import os

from bench.workloads import memory_mib, restart_peak_memory


def test_a_restarted_peak_forgets_what_was_freed_before() -> None:
    pid = os.getpid()
    block = b"x" * (128 * 1024 * 1024)  # written, so resident until freed
    del block
    resident = memory_mib(pid, "VmRSS")
    peak = memory_mib(pid, "VmHWM")
    assert resident is not None and peak is not None
    assert peak >= resident + 100
    assert restart_peak_memory(pid)
    restarted = memory_mib(pid, "VmHWM")
    assert restarted is not None and restarted < resident + 100


def test_an_unknown_process_has_no_figures() -> None:
    assert memory_mib(2**22 + 1, "VmRSS") is None  # above Linux's largest pid_max
    assert not restart_peak_memory(2**22 + 1)
