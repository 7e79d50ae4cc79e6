"""CPU time the engines spent, from /proc: the processes of scripts/services.sh, found by their
pid files, and their children (PostgreSQL serves each connection from a child of its postmaster).

Like the engines' call counters (bench/engine_calls.py), the figures are this stack's only when
nothing else uses the engines meanwhile. Each pid file is looked for under MICDR_SERVICES_DIR,
then under the script's default folder, and the first that names a live process is used; an
engine without one is left out (e.g. a MongoDB not run by the script)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_SERVICES_DIR = "/var/tmp/micdr-services"
PID_FILES = {
    "store": ("run/ferretdb.pid", "postgresql/data/postmaster.pid"),
    "index": ("elasticsearch/run/elasticsearch.pid",),
    "queue": ("run/redis.pid",),
}


def _dirs() -> list[Path]:
    dirs = [os.environ.get("MICDR_SERVICES_DIR", DEFAULT_SERVICES_DIR), DEFAULT_SERVICES_DIR]
    return [Path(d) for d in dict.fromkeys(dirs)]


def _live_pid(relative: str) -> int | None:
    for folder in _dirs():
        try:
            first = (folder / relative).read_text().split("\n", 1)[0].strip()
        except OSError:
            continue
        if first.isdigit() and Path(f"/proc/{first}").exists():
            return int(first)
    return None


def _stat(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def _tree_cpu_seconds(root: int) -> float:
    """The root's CPU, its reaped children's (cutime, cstime) and its live descendants'."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        fields = _stat(pid)
        if fields:  # utime, stime, cutime, cstime: fields 14-17 of the line
            total += sum(int(f) for f in fields[11:15]) / tick
        todo += children.get(pid, [])
    return total


def engine_processes() -> dict[str, list[str]]:
    """`{engine: ["name (pid)", ...]}` of what is measured, for the record."""
    out: dict[str, list[str]] = {}
    for engine, files in PID_FILES.items():
        for relative in files:
            if (pid := _live_pid(relative)) is not None:
                name = Path(f"/proc/{pid}/comm").read_text().strip()
                out.setdefault(engine, []).append(f"{name} ({pid})")
    return out


def engine_cpu_seconds() -> dict[str, float]:
    """`{engine: CPU seconds so far}` of the engines whose processes were found."""
    out: dict[str, float] = {}
    for engine, files in PID_FILES.items():
        for relative in files:
            if (pid := _live_pid(relative)) is not None:
                out[engine] = out.get(engine, 0.0) + _tree_cpu_seconds(pid)
    return out


def cpu_ms_per_unit(
    before: dict[str, float], after: dict[str, float], units: int
) -> dict[str, float]:
    """CPU milliseconds per unit by engine between two readings (engines in both only)."""
    if not units:
        return {}
    return {
        engine: round((after[engine] - before[engine]) * 1000 / units, 3)
        for engine in after
        if engine in before
    }
