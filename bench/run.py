"""`micdr bench`: start the deployment(s), load generated IG episodes, measure, report.

Per stack (embedded: `micdr serve` on a fresh data dir; full: `micdr serve` + `micdr worker`
processes on fresh database/index/Redis names over the engines of scripts/services.sh):

1. sync ingest — half the episodes (every other patient) as transaction Bundles from 8
   concurrent clients; resources/s until all are searchable (`/health` shows no index lag);
2. async ingest — the other half with `Prefer: respond-async`, polling `$async-status`;
   resources/s until every submission is done and searchable;
3. longitudinal search — `DocumentReference?patient.identifier=…` and
   `DiagnosticReport?patient.identifier=…&issued=ge…&_include=DiagnosticReport:subject` on random
   patients: p50/p95/p99 at 1 client, searches/s at 8 clients;
4. read by id — p50/p95/p99 at 1 client (and reads/s at 8 clients);
5. bulk export — one system-level `$export` of everything loaded;
6. analytics dashboard — every question of `/analytics/api` and the alerts, 20 rounds at one
   client with the page's filters: p50/p95 per question and over all;
7. the engines' own limit — the same volume of documents (one per submitted entry) bulk-inserted
   straight into the store's engine and projected straight into the index, no API; ingest is
   reported as a share of it.

Each ingest phase also reports the episode lag: how long after its last outcome the analysts'
episode index holds one episode per Bundle loaded so far.

Writes `<out>/<stamp>.json`, `<out>/<stamp>.md` and `<out>/<stamp>.png` (matplotlib, the
`bench` extra). `--profile` also records py-spy profiles of the API (and a worker) during
each ingest phase (`<out>/<stamp>-<stack>-<sync|async>-*.txt`, collapsed stacks: speedscope
or flamegraph.pl read them) and summarises where the time goes.
"""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from bench import report
from bench.engine_calls import Calls, calls_between, engine_calls, per_unit
from bench.engine_cpu import cpu_ms_per_unit, engine_cpu_seconds, engine_processes
from bench.footprint import (
    embedded_bytes,
    embedded_pages,
    embedded_versions,
    full_stack_bytes,
    per_resource,
    per_version,
)
from bench.generate import Dataset, flatten, generate
from bench.notifications import Listener, settle, subscribe
from bench.stack import Stack, StackError, engine_urls, ensure_services, start
from bench.workloads import (
    dashboard,
    dashboard_questions,
    engine_limit,
    export,
    health,
    ingest,
    read,
    search,
)

console = Console(stderr=True)


@dataclass(frozen=True)
class Plan:
    patients: int
    seed: int = 20250101
    clients: int = 8
    workers: int = 2
    search_count: int = 400  # at 1 client, half of each search
    search_seconds: float = 10.0  # at 8 clients
    read_count: int = 500
    read_seconds: float = 5.0
    dashboard_rounds: int = 20  # every analytics question and the alerts, at 1 client
    ingest_budget: float = 600.0  # seconds of submitting per ingest phase, at most
    catch_up: float = 600.0  # seconds to wait for the index after it, at most
    export_settle: float = 600.0  # seconds to wait for an idle stack before the export, at most


# --quick: about 3 minutes on 2 cores whatever the stack's speed (ingest phases stop submitting
# after their budget); the default run loads everything it generates (about 110,000 entries).
QUICK = Plan(
    patients=1500,
    search_count=300,
    search_seconds=8.0,
    read_count=400,
    read_seconds=4.0,
    ingest_budget=25.0,
    catch_up=60.0,
    export_settle=300.0,
)
FULL = Plan(
    patients=6000, search_count=1000, search_seconds=20.0, read_count=2000, read_seconds=10.0
)


def _columns(what: str) -> tuple[Any, ...]:
    return (
        TextColumn(f"{what:<34}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"),
    )


@contextmanager
def _bar(what: str, total: int) -> Iterator[tuple[Callable[[int], None], Callable[[str], None]]]:
    with Progress(*_columns(what), console=console, transient=False) as progress:
        task = progress.add_task(what, total=total, note="")

        def advance(n: int) -> None:
            progress.update(task, advance=n)

        def note(text: str) -> None:
            progress.update(task, note=text)

        yield advance, note


def _py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


@contextmanager
def _profiling(pids: dict[str, int], prefix: Path, enabled: bool) -> Iterator[list[Path]]:
    """py-spy record (collapsed stacks, 100 Hz, idle frames excluded) of each pid meanwhile."""
    spy = _py_spy() if enabled else None
    if enabled and spy is None:
        console.print("[yellow]py-spy not found: no profile recorded")
    procs: list[subprocess.Popen[bytes]] = []
    paths: list[Path] = []
    for name, pid in pids.items():
        if spy is None:
            break
        path = prefix.with_name(f"{prefix.name}-{name}.txt")
        paths.append(path)
        procs.append(
            subprocess.Popen(
                [
                    spy,
                    "record",
                    "--pid",
                    str(pid),
                    "--format",
                    "raw",
                    "--rate",
                    "100",
                    "--nonblocking",
                    "-o",
                    str(path),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    try:
        yield paths
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def conditions() -> dict[str, Any]:
    """What the numbers depend on: machine, load, software, code version."""
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    try:
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        info["memory_gb"] = round(int(meminfo[0].split()[1]) / 1024 / 1024, 1)
    except (OSError, IndexError, ValueError):
        pass
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        info["git"] = rev + (f" (+{len(dirty)} modified files)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        info["git"] = "not a checkout"
    return info


def _halves(data: Dataset) -> tuple[Dataset, Dataset]:
    """Every other patient's episodes: one half for sync ingest, the other for async."""
    sync_keys = set(data.patients[0::2])
    first = [e for e in data.episodes if e.patient in sync_keys]
    second = [e for e in data.episodes if e.patient not in sync_keys]
    return replace(data, episodes=first), replace(data, episodes=second)


async def _one_stack(
    kind: str, plan: Plan, data: Dataset, run_id: str, prefix: Path, profile: bool
) -> dict[str, Any]:
    result: dict[str, Any] = {"load_average_before": [round(x, 2) for x in os.getloadavg()]}
    urls = engine_urls()
    if kind == "full":
        result["engines"] = ensure_services(urls)
    sync_half, async_half = _halves(data)
    console.rule(f"[bold]{kind}[/bold]")
    stack: Stack = await start(kind, run_id, plan.workers, urls)
    try:
        state = await _health(stack.base)
        result["versions"] = {
            "store": state["store"]["version"],
            "index": state["index"]["version"],
        }
        result["processes"] = {"api": 1, "workers": plan.workers if kind == "full" else 0}
        pids = {"api": stack.server_pid}
        if kind == "full":
            pids["worker"] = stack.pids[1]
        spied = prefix.with_name(f"{prefix.name}-{kind}-sync")
        # subscribed before ingest: the ingest phases carry the notification load too
        listener = Listener()
        await listener.start()
        subscriptions = await subscribe(stack.base, listener)
        meter = await _meter(stack, urls)
        if kind == "full":
            result["engine_processes"] = engine_processes()
        with (
            _profiling(pids, spied, profile) as paths,
            _bar("sync ingest (transaction Bundles)", len(sync_half.episodes)) as (a, n),
        ):
            result["sync_ingest"] = await ingest(
                stack.base,
                sync_half.episodes,
                plan.clients,
                False,
                a,
                lambda: n("submitted; waiting for the index"),
                plan.ingest_budget,
                plan.catch_up,
            )
        meter = await _charge(
            result["sync_ingest"], stack, urls, meter, result["sync_ingest"]["resources"]
        )
        result["profiles"] = [p.name for p in paths if p.exists()]
        spied = prefix.with_name(f"{prefix.name}-{kind}-async")
        with (
            _profiling(pids, spied, profile) as paths,
            _bar("async ingest (respond-async)", len(async_half.episodes)) as (a, n),
        ):
            result["async_ingest"] = await ingest(
                stack.base,
                async_half.episodes,
                plan.clients,
                True,
                a,
                lambda: n("accepted; polling status"),
                plan.ingest_budget,
                plan.catch_up,
                episodes_before=result["sync_ingest"]["episodes"]["expected"],
            )
        meter = await _charge(
            result["async_ingest"], stack, urls, meter, result["async_ingest"]["resources"]
        )
        result["profiles"] += [p.name for p in paths if p.exists()]
        result["notifications"] = await settle(stack.base, listener, subscriptions)
        await listener.stop()
        result["disk"] = per_resource(
            await _disk(stack),
            result["sync_ingest"]["resources"] + result["async_ingest"]["resources"],
        )
        if stack.kind == "embedded":
            data_dir = Path(stack.env["MICDR_DATA_DIR"])
            result["disk"].update(
                per_version(embedded_pages(data_dir), embedded_versions(data_dir))
            )
        refs = result["sync_ingest"].pop("refs") + result["async_ingest"].pop("refs")
        # What was loaded (within the budgets): searched, and the engines' limit's documents.
        loaded = replace(
            data,
            episodes=sync_half.episodes[: result["sync_ingest"]["bundles"]]
            + async_half.episodes[: result["async_ingest"]["bundles"]],
        )
        patients = list(dict.fromkeys(e.patient for e in loaded.episodes))
        with _bar("longitudinal search", plan.search_count) as (a, n):
            n(f"then {plan.clients} clients for {plan.search_seconds:.0f}s")
            result["search"] = await search(
                stack.base,
                patients,
                plan.seed,
                plan.search_count,
                plan.clients,
                plan.search_seconds,
                a,
            )
        meter = await _charge(result["search"], stack, urls, meter, _requests(result["search"]))
        with _bar("read by id", plan.read_count) as (a, n):
            n(f"then {plan.clients} clients for {plan.read_seconds:.0f}s")
            result["read"] = await read(
                stack.base, refs, plan.seed, plan.read_count, plan.clients, plan.read_seconds, a
            )
        await _charge(result["read"], stack, urls, meter, _requests(result["read"]))
        with _bar("bulk export (system level)", 1) as (a, n):
            n("waiting for an idle stack; kick-off, poll, download")
            # the export runs in the API process embedded, in the workers on the full stack
            producers = stack.pids[1:] if kind == "full" else [stack.server_pid]
            try:
                result["export"] = await export(stack.base, producers, plan.export_settle)
            except (RuntimeError, httpx.HTTPError) as exc:
                # reported as such; the phases before and after are still measured
                result["export"] = {"failed": str(exc)}
                console.print(f"[red]bulk export failed:[/] {exc}")
                console.print(stack.log_tail())
            a(1)
        questions = await dashboard_questions(stack.base)
        asked = plan.dashboard_rounds * (len(questions) + 1)  # + the alerts
        with _bar("analytics dashboard", asked) as (a, _):
            result["dashboard"] = await dashboard(stack.base, questions, plan.dashboard_rounds, a)
    except BaseException:
        console.print(stack.log_tail())
        stack.stop()
        await stack.clean()
        raise
    stack.stop()
    docs = flatten(loaded, unique=False)
    try:
        with _bar("engines' own limit (no API)", 2 * len(docs)) as (a, _):
            result["engine_limit"] = await engine_limit(kind, stack.env, stack.workdir, docs, a)
    finally:
        await stack.clean()
    limit = result["engine_limit"]["resources_per_second"]
    for phase in ("sync_ingest", "async_ingest"):
        rate = result[phase]["resources_per_second"]
        result[phase]["share_of_engine_limit"] = round(rate / limit, 3) if limit else None
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return result


@dataclass
class _Meter:
    """What the stack has used so far: its processes' CPU and (full stack) the engines' calls
    and CPU."""

    cpu: float
    calls: Calls
    engine_cpu: dict[str, float]


async def _meter(stack: Stack, urls: dict[str, str]) -> _Meter:
    if stack.kind != "full":
        return _Meter(stack.cpu_seconds(), {}, {})
    return _Meter(stack.cpu_seconds(), await engine_calls(urls), engine_cpu_seconds())


async def _charge(
    phase: dict[str, Any], stack: Stack, urls: dict[str, str], since: _Meter, units: int
) -> _Meter:
    """Record what the phase cost per unit (resource ingested, search, read) since `since`:
    our processes' CPU milliseconds and, on the full stack, the engines' round trips (and per
    episode for ingest). Answers the new reading for the next phase."""
    now = await _meter(stack, urls)
    phase["server_cpu_ms_per_unit"] = (
        round((now.cpu - since.cpu) * 1000 / units, 3) if units else None
    )
    if now.engine_cpu:
        phase["engine_cpu_ms_per_unit"] = cpu_ms_per_unit(since.engine_cpu, now.engine_cpu, units)
    if now.calls:
        calls = calls_between(since.calls, now.calls)
        phase["engine_calls_per_unit"] = per_unit(calls, units)
        if "bundles" in phase:
            phase["engine_calls_per_episode"] = per_unit(calls, phase["bundles"])
    return now


def _requests(phase: dict[str, Any]) -> int:
    """Requests a search or read phase made: the one-client sample and the loaded run."""
    sample = phase["one_client"]
    sample = sample.get("all", sample)
    return int(sample["n"]) + int(phase["loaded_latency_ms"]["n"])


async def _disk(stack: Stack) -> dict[str, int]:
    if stack.kind == "full":
        return await full_stack_bytes(stack.env)
    return embedded_bytes(Path(stack.env["MICDR_DATA_DIR"]))


async def _health(base: str) -> dict[str, Any]:
    import httpx

    async with httpx.AsyncClient(timeout=10) as client:
        return await health(client, base)


async def _run(stacks: list[str], plan: Plan, out: Path, profile: bool) -> Path:
    began = datetime.now(UTC)
    stamp = began.strftime("%Y-%m-%dT%H%M%SZ")
    run_id = began.strftime("%Y%m%d%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    prefix = out / stamp
    t0 = time.perf_counter()
    with console.status("generating data"):
        data = generate(plan.seed, plan.patients)
    console.print(
        f"{len(data.patients)} patients, {len(data.episodes)} episodes, "
        f"{data.resources} Bundle entries (seed {plan.seed}); {plan.clients} clients"
    )
    results: dict[str, Any] = {
        "date": began.isoformat(timespec="seconds"),
        "plan": asdict(plan),
        "data": {
            "patients": len(data.patients),
            "episodes": len(data.episodes),
            "resources": data.resources,
        },
        "conditions": conditions(),
        "stacks": {},
    }
    for kind in stacks:
        try:
            results["stacks"][kind] = await _one_stack(kind, plan, data, run_id, prefix, profile)
        except (StackError, Exception) as exc:  # one stack failing keeps the other's numbers
            console.print(f"[red]{kind}: {type(exc).__name__}: {exc}")
            results["stacks"][kind] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    results["seconds"] = round(time.perf_counter() - t0, 1)
    results["targets"] = report.judge(results)
    if profile:
        results["profile_summary"] = {
            name: report.profile_shares(out / name)
            for stack in results["stacks"].values()
            for name in stack.get("profiles", [])
        }
    json_path = prefix.with_suffix(".json")
    json_path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    prefix.with_suffix(".md").write_text(report.markdown(results, stamp))
    chart = report.chart(results, prefix.with_suffix(".png"))
    _print(results)
    console.print(
        f"results: {json_path}, {prefix.with_suffix('.md')}"
        + (
            f", {chart}"
            if chart
            else " (no chart: no stack ran, or no matplotlib: pip install 'micdr\\[bench]')"
        )
    )
    return json_path


def _print(results: dict[str, Any]) -> None:
    table = Table(title="miCDR benchmark")
    table.add_column("metric")
    for kind in results["stacks"]:
        table.add_column(kind, justify="right")
    for label, values in report.rows(results):
        table.add_row(label, *values)
    Console().print(table)
    verdicts = Table(title="targets (issue 9)")
    for column in ("target", "stack", "measured", "goal", "verdict"):
        verdicts.add_column(column)
    for t in results["targets"]:
        verdicts.add_row(t["target"], t["stack"], t["measured"], t["goal"], t["verdict"])
    Console().print(verdicts)


def main(
    quick: bool,
    stack: str,
    out: Path,
    profile: bool = False,
    patients: int | None = None,
    workers: int | None = None,
    seed: int | None = None,
) -> Path:
    plan = QUICK if quick else FULL
    if patients:
        plan = replace(plan, patients=patients)
    if workers:
        plan = replace(plan, workers=workers)
    if seed is not None:
        plan = replace(plan, seed=seed)
    stacks = ["embedded", "full"] if stack == "both" else [stack]

    def terminate(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)  # unwinds: the started processes are stopped, names dropped

    signal.signal(signal.SIGTERM, terminate)
    return asyncio.run(_run(stacks, plan, out, profile))
