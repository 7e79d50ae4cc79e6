"""The benchmark's verdicts, table rows, Markdown summary, chart and profile summary (pure but
for the files they write)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# (target, how to read it from a stack's results, goal, at least (True) or at most, unit)
TARGETS: tuple[tuple[str, tuple[str, ...], float, bool, str], ...] = (
    ("sync ingest", ("sync_ingest", "resources_per_second"), 1000, True, "resources/s"),
    ("async ingest", ("async_ingest", "resources_per_second"), 1000, True, "resources/s"),
    ("search p95, 1 client", ("search", "one_client", "all", "p95"), 50, False, "ms"),
    ("search throughput, 8 clients", ("search", "searches_per_second"), 200, True, "/s"),
    ("read p95", ("read", "one_client", "p95"), 5, False, "ms"),
    ("bulk export", ("export", "resources_per_second"), 5000, True, "resources/s"),
    ("dashboard p95 (issue 20)", ("dashboard", "all", "p95"), 200, False, "ms"),
    (
        "notification latency p95 (issue 17)",
        ("notifications", "latency_ms", "p95"),
        1000,
        False,
        "ms",
    ),
    ("sync ingest / engines' limit", ("sync_ingest", "share_of_engine_limit"), 0.4, True, ""),
    ("async ingest / engines' limit", ("async_ingest", "share_of_engine_limit"), 0.4, True, ""),
)


def _get(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _fmt(value: float, unit: str) -> str:
    if unit == "":
        return f"{value:.0%}"
    return f"{value:,.1f} {unit}" if value < 100 else f"{value:,.0f} {unit}"


def judge(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target on each stack: met or missed, and by how much."""
    out = []
    for kind, stack in results["stacks"].items():
        for name, path, goal, at_least, unit in TARGETS:
            value = _get(stack, path)
            if value is None:
                out.append(
                    {
                        "target": name,
                        "stack": kind,
                        "measured": "—",
                        "goal": "",
                        "met": False,
                        "verdict": "not measured",
                    }
                )
                continue
            met = value >= goal if at_least else value <= goal
            if at_least:
                how = f"{value / goal:.2f}x the goal" if met else f"{1 - value / goal:.0%} short"
            else:
                how = (
                    f"{1 - value / goal:.0%} under"
                    if met
                    else f"{value / goal:.1f}x the limit ({value - goal:+.1f} {unit})"
                )
            out.append(
                {
                    "target": name,
                    "stack": kind,
                    "measured": _fmt(value, unit),
                    "goal": ("≥ " if at_least else "≤ ") + _fmt(goal, unit),
                    "met": met,
                    "verdict": ("met, " if met else "MISSED, ") + how,
                }
            )
    return out


def rows(results: dict[str, Any]) -> list[tuple[str, list[str]]]:
    stacks = list(results["stacks"].values())

    def row(
        label: str, path: tuple[str, ...], unit: str = "", digits: int = 1
    ) -> tuple[str, list[str]]:
        cells = []
        for stack in stacks:
            value = _get(stack, path)
            if value is None:
                cells.append("—")
            elif unit == "%":
                cells.append(f"{value:.0%}")
            else:
                cells.append(f"{value:,.{digits}f}{unit}")
        return label, cells

    out = []
    for phase, name in (("sync_ingest", "sync ingest"), ("async_ingest", "async ingest")):
        out += [
            row(f"{name}: resources (Bundle entries) sent", (phase, "resources"), "", 0),
            row(f"{name}: resources/s until searchable", (phase, "resources_per_second"), "", 0),
            row(f"{name}: bundles/s", (phase, "bundles_per_second")),
            row(f"{name}: seconds submitting", (phase, "seconds_submitted"), " s"),
            row(f"{name}: seconds until searchable", (phase, "seconds_searchable"), " s"),
            row(f"{name}: submit p50 / p95 (ms)", (phase, "submit_latency_ms", "p50")),
            row("", (phase, "submit_latency_ms", "p95")),
            row(f"{name}: share of engines' limit", (phase, "share_of_engine_limit"), "%"),
            row(f"{name}: our CPU per resource (ms)", (phase, "server_cpu_ms_per_unit"), "", 2),
            *(
                row(
                    f"{name}: {engine}'s CPU per resource (ms)",
                    (phase, "engine_cpu_ms_per_unit", engine),
                    "",
                    2,
                )
                for engine in ("store", "index", "queue")
            ),
            *(
                row(
                    f"{name}: {engine} calls per episode",
                    (phase, "engine_calls_per_episode", engine, "total"),
                )
                for engine in ("store", "index", "queue")
            ),
            row(f"{name}: errors", (phase, "errors"), "", 0),
            row(f"{name}: all searchable in time (1 = yes)", (phase, "searchable"), "", 0),
            row(
                f"{name}: episodes expected / in the index", (phase, "episodes", "expected"), "", 0
            ),
            row("", (phase, "episodes", "in_index"), "", 0),
            row(
                f"{name}: episodes all in, after last outcome",
                (phase, "episodes", "seconds_after_last_outcome"),
                " s",
                2,
            ),
        ]
    for kind in ("all", "documents", "reports"):
        for p in ("p50", "p95", "p99"):
            out.append(row(f"search {kind} 1 client {p} (ms)", ("search", "one_client", kind, p)))
    out += [
        row("search 8 clients: searches/s", ("search", "searches_per_second")),
        row("search 8 clients: p95 (ms)", ("search", "loaded_latency_ms", "p95")),
        row(
            "search: share with a match (documents)", ("search", "matched_share", "documents"), "%"
        ),
        row("search: our CPU per search (ms)", ("search", "server_cpu_ms_per_unit"), "", 2),
        row(
            "search: store's CPU per search (ms)",
            ("search", "engine_cpu_ms_per_unit", "store"),
            "",
            2,
        ),
        row(
            "search: index's CPU per search (ms)",
            ("search", "engine_cpu_ms_per_unit", "index"),
            "",
            2,
        ),
        row(
            "search: store calls per search",
            ("search", "engine_calls_per_unit", "store", "total"),
            "",
            2,
        ),
        row(
            "search: index calls per search",
            ("search", "engine_calls_per_unit", "index", "total"),
            "",
            2,
        ),
        row("search errors", ("search", "errors"), "", 0),
    ]
    for p in ("p50", "p95", "p99"):
        out.append(row(f"read 1 client {p} (ms)", ("read", "one_client", p)))
    out += [
        row("read 8 clients: reads/s", ("read", "reads_per_second")),
        row("read: our CPU per read (ms)", ("read", "server_cpu_ms_per_unit"), "", 2),
        row("read: store's CPU per read (ms)", ("read", "engine_cpu_ms_per_unit", "store"), "", 2),
        row(
            "read: store calls per read", ("read", "engine_calls_per_unit", "store", "total"), "", 2
        ),
        row("dashboard: episodes in the index", ("dashboard", "episodes"), "", 0),
        row("dashboard: requests at 1 client", ("dashboard", "all", "n"), "", 0),
        row("dashboard all p50 / p95 (ms)", ("dashboard", "all", "p50")),
        row("", ("dashboard", "all", "p95")),
    ]
    for name in _dashboard_names(stacks):
        out.append(row(f"dashboard {name} p50 / p95 (ms)", ("dashboard", "questions", name, "p50")))
        out.append(row("", ("dashboard", "questions", name, "p95")))
    out += [
        row("dashboard errors", ("dashboard", "errors"), "", 0),
        row("notifications: events delivered", ("notifications", "events_delivered"), "", 0),
        row(
            "notifications: not delivered in time",
            ("notifications", "not_delivered_in_time"),
            "",
            0,
        ),
        row("notifications: commit to arrival p50 (ms)", ("notifications", "latency_ms", "p50")),
        row("notifications: commit to arrival p95 (ms)", ("notifications", "latency_ms", "p95")),
        row("notifications: repeats", ("notifications", "repeats"), "", 0),
        row("disk: store bytes", ("disk", "store_bytes"), "", 0),
        row("disk: index bytes", ("disk", "index_bytes"), "", 0),
        row("disk: bytes per resource sent", ("disk", "bytes_per_resource"), "", 0),
        row("disk: stored resource versions", ("disk", "stored_versions"), "", 0),
        row("disk: pages in use per stored version (bytes)", ("disk", "bytes_per_version"), "", 0),
        row("bulk export: seconds waited for an idle stack", ("export", "settle_seconds"), " s"),
        row("bulk export: resources", ("export", "resources"), "", 0),
        row("bulk export: resources/s (kick-off to manifest)", ("export", "resources_per_second")),
        row("bulk export: seconds to download", ("export", "download_seconds"), " s"),
        row("bulk export: memory at kick-off (MiB)", ("export", "memory_at_kickoff_mib")),
        row("bulk export: peak memory during it (MiB)", ("export", "peak_memory_mib")),
        row("engines' limit: documents", ("engine_limit", "documents"), "", 0),
        row("engines' limit: store inserts/s", ("engine_limit", "store_per_second"), "", 0),
        row("engines' limit: project()/s", ("engine_limit", "project_per_second"), "", 0),
        row("engines' limit: index writes/s", ("engine_limit", "index_per_second"), "", 0),
        row(
            "engines' limit: resources/s (all three)",
            ("engine_limit", "resources_per_second"),
            "",
            0,
        ),
    ]
    return out


def _dashboard_names(stacks: list[dict[str, Any]]) -> list[str]:
    """The dashboard's questions (and `alerts`) any stack answered, in the order asked."""
    names: dict[str, None] = {}
    for stack in stacks:
        names.update(dict.fromkeys(_get(stack, ("dashboard", "questions")) or {}))
    return list(names)


def markdown(results: dict[str, Any], stamp: str) -> str:
    c = results["conditions"]
    d = results["data"]
    lines = [
        f"# miCDR benchmark {stamp}",
        "",
        f"- machine: {c.get('cpus')} CPUs, {c.get('memory_gb', '?')} GB, {c.get('platform')}, "
        f"Python {c.get('python')}; load average at start {c.get('load_average')}",
        f"- code: {c.get('git')}",
        f"- data: {d['patients']} patients, {d['episodes']} episodes (transaction Bundles), "
        f"{d['resources']} entries; seed {results['plan']['seed']}; "
        f"{results['plan']['clients']} clients; run took {results.get('seconds')} s",
    ]
    for kind, stack in results["stacks"].items():
        if "error" in stack:
            lines.append(f"- {kind}: not run: {stack['error']}")
            continue
        lines.append(
            f"- {kind}: store {stack['versions']['store']}, index {stack['versions']['index']}, "
            f"{stack['processes']['workers']} worker processes; load average before "
            f"{stack['load_average_before']}, after {stack['load_average_after']}"
        )
        for phase, measured in stack.items():
            if isinstance(measured, dict) and "failed" in measured:
                lines.append(f"- {kind}: {phase} failed, not measured: {measured['failed']}")
    lines += [
        "",
        "| metric | " + " | ".join(results["stacks"]) + " |",
        "|---|" + "---:|" * len(results["stacks"]),
    ]
    for label, cells in rows(results):
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Targets (issue 9)",
        "",
        "| target | stack | measured | goal | verdict |",
        "|---|---|---:|---:|---|",
    ]
    for t in results["targets"]:
        lines.append(
            f"| {t['target']} | {t['stack']} | {t['measured']} | {t['goal']} | {t['verdict']} |"
        )
    met = sum(1 for t in results["targets"] if t["met"])
    lines += ["", f"{met} of {len(results['targets'])} met."]
    if results.get("profile_summary"):
        lines += ["", "## Profile (py-spy, each ingest phase): share of samples per part", ""]
        for name, shares in results["profile_summary"].items():
            parts = ", ".join(f"{k} {v:.0%}" for k, v in shares.items())
            lines.append(f"- {name}: {parts}")
    lines += [
        "",
        "Ingest counts the Bundle entries submitted (shared Patients, Organizations and "
        "Practitioners included, as feeds send them; the server's own DocumentReferences are "
        "extra work not counted). The engines' limit inserts one document per submitted entry "
        "into the store's engine and projects the same documents into the index, with no API. "
        "See bench/README.md.",
        "",
    ]
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> Path | None:
    """Throughput and latency percentiles per stack; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    stacks = {k: v for k, v in results["stacks"].items() if "error" not in v}
    if not stacks:
        return None
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    names = list(stacks)
    width = 0.8 / max(1, len(names))

    def bars(
        ax: Any,
        labels: list[str],
        paths: Sequence[tuple[str, ...]],
        goal: float | None,
        title: str,
        unit: str,
    ) -> None:
        for n, kind in enumerate(names):
            values = [float(_get(stacks[kind], p) or 0) for p in paths]
            xs = [i + n * width for i in range(len(labels))]
            ax.bar(xs, values, width, label=kind)
            for x, v in zip(xs, values, strict=True):
                ax.annotate(
                    f"{v:,.0f}" if v >= 100 else f"{v:.1f}",
                    (x, v),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
        ax.set_xticks(
            [i + width * (len(names) - 1) / 2 for i in range(len(labels))], labels, fontsize=8
        )
        if goal is not None:
            ax.axhline(goal, color="red", linestyle="--", linewidth=1, label=f"target {goal:g}")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit)
        ax.legend(fontsize=7)

    bars(
        axes[0][0],
        ["sync ingest", "async ingest", "engines' limit"],
        [
            ("sync_ingest", "resources_per_second"),
            ("async_ingest", "resources_per_second"),
            ("engine_limit", "resources_per_second"),
        ],
        1000,
        "ingest until searchable",
        "resources/s",
    )
    bars(
        axes[0][1],
        ["searches/s (8 clients)", "reads/s (8 clients)"],
        [("search", "searches_per_second"), ("read", "reads_per_second")],
        200,
        "throughput",
        "requests/s",
    )
    pct = ["p50", "p95", "p99"]
    bars(
        axes[1][0],
        [f"documents {p}" for p in pct] + [f"reports {p}" for p in pct],
        [("search", "one_client", "documents", p) for p in pct]
        + [("search", "one_client", "reports", p) for p in pct],
        50,
        "longitudinal search latency, 1 client",
        "ms",
    )
    bars(
        axes[1][1],
        pct,
        [("read", "one_client", p) for p in pct],
        5,
        "read by id latency, 1 client",
        "ms",
    )
    c = results["conditions"]
    fig.suptitle(
        f"miCDR benchmark {results['date']} — {c.get('cpus')} CPUs, {results['data']['resources']}"
        f" entries, load avg at start {c.get('load_average')}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# -- profile summary --------------------------------------------------------------------------

# (part, substrings of a frame "function (file:line)"): the first part whose pattern is in a
# sample's stack, innermost frame first, takes the sample.
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("JSON (orjson, msgspec)", ("orjson", "msgspec", "json/")),
    ("validation (app/fhir/validate)", ("app/fhir/validate", "app/fhir/_")),
    (
        "FHIRPath extraction (indexing)",
        (
            "indexing/extract",
            "indexing/_fhirpath",
            "indexing/_fastpath",
            "fhirpathpy",
            "indexing/_values",
            "indexing/normalize",
            "indexing/document",
        ),
    ),
    ("store (app/store, sqlite3, pymongo)", ("app/store/", "sqlite3", "pymongo", "bson")),
    ("index writes (indexing/engines)", ("indexing/engines/", "elasticsearch", "elastic_")),
    ("IG rules (app/ig)", ("app/ig/",)),
    ("write planning (app/tx)", ("app/tx/", "app/interactions/_write")),
    ("queue (workers, arq, redis)", ("workers/", "arq/", "redis/")),
    (
        "HTTP (litestar, uvicorn, httptools)",
        ("litestar", "uvicorn", "httptools", "h11", "starlette", "anyio"),
    ),
    ("asyncio / threads", ("asyncio", "threading", "concurrent/")),
)


def _part(stack: list[str]) -> str:
    for frame in reversed(stack):  # innermost first
        for part, patterns in PARTS:
            if any(p in frame for p in patterns):
                return part
    return "other"


def profile_shares(path: Path) -> dict[str, float]:
    """Share of samples per part from py-spy's collapsed stacks (`frame;frame;... count`),
    attributed to the innermost frame that belongs to a known part."""
    if not path.exists():
        return {}
    counts: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        counts[_part(stack.split(";"))] += int(n)
    total = sum(counts.values()) or 1
    return {k: round(v / total, 3) for k, v in counts.most_common()}
