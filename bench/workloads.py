"""The benchmark's workloads against a running API (httpx, async), and the engines' own limit.

Each answers a plain dict of numbers (JSON-ready). Latencies are in milliseconds.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.generate import Episode, PatientKey

FHIR_JSON = "application/fhir+json"
MAIN_TYPES = ("ServiceRequest", "ImagingStudy", "DiagnosticReport", "Patient")
Advance = Callable[[int], None]


def percentiles(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/mean/max in ms (nearest rank) of `seconds`."""
    if not seconds:
        return {"n": 0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "mean": 0.0, "max": 0.0}
    ordered = sorted(seconds)

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p * len(ordered) + 0.5) - 1))]

    return {
        "n": len(ordered),
        "p50": round(rank(0.50) * 1000, 2),
        "p95": round(rank(0.95) * 1000, 2),
        "p99": round(rank(0.99) * 1000, 2),
        "mean": round(sum(ordered) / len(ordered) * 1000, 2),
        "max": round(ordered[-1] * 1000, 2),
    }


def _client(base: str, clients: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base,
        timeout=httpx.Timeout(300.0),
        limits=httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4),
        headers={"Accept": FHIR_JSON},
    )


async def health(client: httpx.AsyncClient, base: str, timeout: float = 30.0) -> dict[str, Any]:
    answer = await client.get(base.rsplit("/fhir", 1)[0] + "/health", timeout=timeout)
    data: dict[str, Any] = answer.json()
    return data


async def wait_searchable(
    client: httpx.AsyncClient,
    base: str,
    submissions: bool = False,
    timeout: float = 1800.0,
    every: float = 0.25,
) -> None:
    """Until /health shows no unindexed commit (and, for asynchronous ingest, no queued or
    running submission), asking every `every` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = await health(client, base, min(10.0, max(0.1, deadline - time.monotonic())))
        except httpx.TimeoutException:
            continue  # a busy store answers /health slowly: the deadline decides
        queued = state["submissions"]["queue_depth"] + state["submissions"]["running"]
        if state["index"]["oldest_unindexed_commit"] is None and not (submissions and queued):
            return
        # not faster: /health's own queries load the stack it is waiting for
        await asyncio.sleep(every)
    raise TimeoutError(f"the index did not catch up within {timeout:.0f}s")


def analytics_api(base: str) -> str:
    return base.rsplit("/fhir", 1)[0] + "/analytics/api"


async def episode_count(client: httpx.AsyncClient, base: str) -> int:
    """Episodes in the index: the `volume` question's rows summed, with no filter."""
    answer = await client.get(analytics_api(base) + "/volume")
    answer.raise_for_status()
    return sum(int(row["episodes"]) for row in answer.json()["rows"])


async def wait_episodes(
    client: httpx.AsyncClient, base: str, expected: int, deadline: float
) -> tuple[int, float | None]:
    """Poll the episode count until it is `expected` or the `perf_counter` `deadline` passes
    (one count at least): (the last count, the moment it was `expected` or None)."""
    while True:
        found = await episode_count(client, base)
        now = time.perf_counter()
        if found == expected:
            return found, now
        if now >= deadline:
            return found, None
        await asyncio.sleep(0.25)


def _refs(body: dict[str, Any]) -> tuple[list[str], int]:
    """(main resources' `Type/id` from a transaction-response, failed entries)."""
    refs, failed = [], 0
    for entry in body.get("entry") or []:
        if not str(entry.get("response", {}).get("status", "")).startswith("2"):
            failed += 1
            continue
        ref = "/".join(str(entry.get("fullUrl", "")).rsplit("/", 2)[-2:])
        if ref.split("/")[0] in MAIN_TYPES:
            refs.append(ref)
    return refs, failed


async def ingest(
    base: str,
    episodes: Sequence[Episode],
    clients: int,
    respond_async: bool,
    advance: Advance,
    on_submitted: Callable[[], None] = lambda: None,
    budget: float = 3600.0,
    catch_up: float = 600.0,
    episodes_before: int = 0,
) -> dict[str, Any]:
    """Submit the episodes in order from `clients` concurrent clients — all of them, or those
    taken within `budget` seconds — then wait (at most `catch_up` seconds) until every
    submitted one is done (asynchronous: status polling) and searchable. Resources/s over the
    whole span; `bundles` says how many were submitted (a prefix of `episodes`).

    Then, within the same `catch_up`, the episode lag: how long after the last outcome (the
    last answer, or the last status found done) the analysts' index holds every episode, that
    is `episodes_before` (loaded earlier) and one per Bundle that succeeded."""
    queue: asyncio.Queue[Episode | None] = asyncio.Queue()
    for episode in episodes:
        queue.put_nowait(episode)
    for _ in range(clients):
        queue.put_nowait(None)
    latencies: list[float] = []
    refs: list[str] = []
    errors: list[str] = []
    failed_entries = 0
    last_outcome: float | None = None
    pending: asyncio.Queue[str | None] = asyncio.Queue()
    sent: list[Episode] = []
    stop_at = time.perf_counter() + budget
    headers = {"Content-Type": FHIR_JSON}
    if respond_async:
        headers["Prefer"] = "respond-async"

    async with _client(base, clients) as client:

        def outcome() -> None:
            nonlocal last_outcome
            last_outcome = time.perf_counter()
            advance(1)

        def judge(status: int, body: dict[str, Any]) -> None:
            nonlocal failed_entries
            if status != 200:
                issue = (body.get("issue") or [{}])[0]
                errors.append(f"{status} {issue.get('diagnostics', '')}"[:300])
                return
            found, failed = _refs(body)
            refs.extend(found)
            failed_entries += failed

        async def submit() -> None:
            while (episode := await queue.get()) is not None:
                if time.perf_counter() > stop_at:
                    continue  # over budget: leave the rest unsent
                sent.append(episode)
                began = time.perf_counter()
                answer = await client.post(
                    "", content=orjson.dumps(episode.bundle), headers=headers
                )
                latencies.append(time.perf_counter() - began)
                if respond_async:
                    if answer.status_code != 202:
                        errors.append(f"{answer.status_code} {answer.text[:300]}")
                        outcome()
                        continue
                    pending.put_nowait(answer.headers["Content-Location"])
                else:
                    judge(answer.status_code, answer.json())
                    outcome()

        async def poll() -> None:
            """Status polling, oldest first: while the oldest is not done, later ones are not
            asked (a queue is served in order), so polling costs little."""
            while (url := await pending.get()) is not None:
                while True:
                    answer = await client.get(url)
                    if answer.status_code == 200:
                        judge(int(answer.headers.get("X-Original-Status", "200")), answer.json())
                        outcome()
                        break
                    if answer.status_code != 202:
                        errors.append(f"status {answer.status_code} {answer.text[:200]}")
                        outcome()
                        break
                    await asyncio.sleep(0.1)

        began = time.perf_counter()
        pollers = [asyncio.create_task(poll()) for _ in range(2 if respond_async else 0)]
        await asyncio.gather(*(submit() for _ in range(clients)))
        submitted = time.perf_counter() - began
        on_submitted()
        for _ in pollers:
            pending.put_nowait(None)
        # `catch_up` bounds the wait for the submissions' outcomes, the index and the episodes
        caught_up = False
        processed = None
        catch_up_until = time.perf_counter() + catch_up
        try:
            async with asyncio.timeout(catch_up):
                await asyncio.gather(*pollers)
                processed = time.perf_counter() - began
                await wait_searchable(client, base, submissions=respond_async, timeout=catch_up)
            caught_up = True
        except TimeoutError:
            for poller in pollers:
                poller.cancel()
        searchable = time.perf_counter() - began
        # each generated Bundle is one imaging episode (bench/generate.py)
        expected = episodes_before + len(sent) - len(errors)
        in_index, reflected = await wait_episodes(client, base, expected, catch_up_until)
    resources = sum(e.resources for e in sent)
    return {
        "bundles": len(sent),
        "bundles_offered": len(episodes),
        "searchable": caught_up,
        "resources": resources,
        "clients": clients,
        "errors": len(errors),
        "first_errors": errors[:3],
        "failed_entries": failed_entries,
        "seconds_submitted": round(submitted, 3),
        "seconds_processed": None if processed is None else round(processed, 3),
        "seconds_searchable": round(searchable, 3),
        "resources_per_second": round(resources / searchable, 1),
        "bundles_per_second": round(len(sent) / searchable, 2),
        "submit_latency_ms": percentiles(latencies),
        "episodes": {
            "expected": expected,
            "in_index": in_index,
            "seconds_after_last_outcome": (
                round(reflected - last_outcome, 3)
                if reflected is not None and last_outcome is not None
                else None
            ),
        },
        "refs": refs,
    }


def _search_url(rng: random.Random, patients: Sequence[PatientKey], kind: str) -> str:
    patient = rng.choice(patients)
    token = patient.hcn if rng.random() < 0.5 else patient.mrn
    if kind == "documents":
        return f"DocumentReference?patient.identifier={token}"
    year = rng.randint(2015, 2022)
    return (
        f"DiagnosticReport?patient.identifier={token}&issued=ge{year}-01-01"
        "&_include=DiagnosticReport:subject"
    )


SEARCHES = ("documents", "reports")


async def search(
    base: str,
    patients: Sequence[PatientKey],
    seed: int,
    count: int,
    clients: int,
    seconds: float,
    advance: Advance,
) -> dict[str, Any]:
    """Longitudinal searches on random patients: `count` at 1 client (latency per search), then
    as many as `clients` clients finish in `seconds` (throughput)."""
    rng = random.Random(seed)
    single: dict[str, list[float]] = {k: [] for k in SEARCHES}
    matched: dict[str, int] = dict.fromkeys(SEARCHES, 0)
    errors: list[str] = []
    async with _client(base, clients) as client:

        async def one(kind: str, into: list[float], count_match: bool = False) -> None:
            url = _search_url(rng, patients, kind)
            began = time.perf_counter()
            answer = await client.get(url)
            into.append(time.perf_counter() - began)
            if answer.status_code != 200:
                errors.append(f"{answer.status_code} {url} {answer.text[:200]}")
            elif count_match and any(
                e.get("search", {}).get("mode") == "match" for e in answer.json().get("entry", [])
            ):
                matched[kind] += 1

        for n in range(count):
            await one(SEARCHES[n % 2], single[SEARCHES[n % 2]], count_match=True)
            advance(1)
        loaded: list[float] = []
        deadline = time.perf_counter() + seconds

        async def loop(k: int) -> None:
            n = k
            while time.perf_counter() < deadline:
                await one(SEARCHES[n % 2], loaded)
                n += 1

        began = time.perf_counter()
        await asyncio.gather(*(loop(k) for k in range(clients)))
        span = time.perf_counter() - began
    return {
        "one_client": {
            "all": percentiles(single["documents"] + single["reports"]),
            **{k: percentiles(v) for k, v in single.items()},
        },
        "matched_share": {k: round(matched[k] / max(1, count // 2), 3) for k in SEARCHES},
        "clients": clients,
        "loaded_latency_ms": percentiles(loaded),
        "searches_per_second": round(len(loaded) / span, 1),
        "errors": len(errors),
        "first_errors": errors[:3],
    }


async def read(
    base: str,
    refs: Sequence[str],
    seed: int,
    count: int,
    clients: int,
    seconds: float,
    advance: Advance,
) -> dict[str, Any]:
    """Read by id: `count` reads of random ingested resources at 1 client, then throughput at
    `clients` for `seconds`."""
    rng = random.Random(seed)
    single: list[float] = []
    loaded: list[float] = []
    errors: list[str] = []
    async with _client(base, clients) as client:

        async def one(into: list[float]) -> None:
            ref = rng.choice(refs)
            began = time.perf_counter()
            answer = await client.get(ref)
            into.append(time.perf_counter() - began)
            if answer.status_code != 200:
                errors.append(f"{answer.status_code} {ref}")

        for _ in range(count):
            await one(single)
            advance(1)
        deadline = time.perf_counter() + seconds

        async def loop() -> None:
            while time.perf_counter() < deadline:
                await one(loaded)

        began = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(clients)))
        span = time.perf_counter() - began
    return {
        "one_client": percentiles(single),
        "clients": clients,
        "loaded_latency_ms": percentiles(loaded),
        "reads_per_second": round(len(loaded) / span, 1),
        "errors": len(errors),
        "first_errors": errors[:3],
    }


# The filters the dashboard's rounds cycle through, each applied to every question as the page
# does: none (every episode), a modality, one year (the data spans 2015-2024), a site with a
# 30-day `unreported` threshold.
DASHBOARD_FILTERS: tuple[dict[str, str], ...] = (
    {},
    {"modality": "CT"},
    {"start": "2020-01-01", "end": "2021-01-01"},
    {"site": "UPI100", "days": "30"},
)


async def dashboard_questions(base: str) -> list[str]:
    """The questions the analysts' API lists (`GET /analytics/api`)."""
    async with _client(base, 1) as client:
        answer = await client.get(analytics_api(base))
        answer.raise_for_status()
        return [str(q["name"]) for q in answer.json()["questions"]]


async def dashboard(
    base: str, questions: Sequence[str], rounds: int, advance: Advance
) -> dict[str, Any]:
    """The analysts' dashboard (issue 20) at one client, as its page loads: `rounds` times every
    question with the round's filter (DASHBOARD_FILTERS in turn), then the alerts. Latency per
    question (and `alerts`) and over all, and the episodes they ran over (an ingest backlog may
    still be adding some); every answer must be 200."""
    api = analytics_api(base)
    times: dict[str, list[float]] = {q: [] for q in (*questions, "alerts")}
    errors: list[str] = []
    async with _client(api, 1) as client:
        episodes = await episode_count(client, base)
        for n in range(rounds):
            params = DASHBOARD_FILTERS[n % len(DASHBOARD_FILTERS)]
            for name in times:
                began = time.perf_counter()
                answer = await client.get(
                    f"{api}/{name}", params={} if name == "alerts" else params
                )
                times[name].append(time.perf_counter() - began)
                if answer.status_code != 200:
                    errors.append(f"{answer.status_code} {name} {params} {answer.text[:200]}")
                advance(1)
    return {
        "rounds": rounds,
        "episodes": episodes,
        "all": percentiles([t for ts in times.values() for t in ts]),
        "questions": {name: percentiles(ts) for name, ts in times.items()},
        "errors": len(errors),
        "first_errors": errors[:3],
    }


# -- the engines' own limit -------------------------------------------------------------------

BATCH = 500
LIMIT_WRITERS = 8  # index writes in flight when measuring the index's own limit


class _Current:
    """What `indexing.project.project` reads of a stored resource."""

    __slots__ = ("deleted", "id", "resource", "type", "version")

    def __init__(self, resource: dict[str, Any]) -> None:
        self.type: str = resource["resourceType"]
        self.id: str = resource["id"]
        self.version = 1
        self.deleted = False
        self.resource: dict[str, Any] | None = resource


def _batches(items: Sequence[Any], size: int = BATCH) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _sqlite_insert(path: Path, docs: Sequence[dict[str, Any]], advance: Advance) -> None:
    import sqlite3  # the bench is a client of the engines, not part of app/ (no layering rule)

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE resources (type TEXT, id TEXT, version INTEGER, resource BLOB,"
        " PRIMARY KEY (type, id))"
    )
    for batch in _batches(docs):
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO resources VALUES (?, ?, 1, ?)",
            [(d["resourceType"], d["id"], orjson.dumps(d)) for d in batch],
        )
        conn.execute("COMMIT")
        advance(len(batch))
    conn.close()


async def _mongo_insert(
    url: str, database: str, docs: Sequence[dict[str, Any]], advance: Advance
) -> None:
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    try:
        collection = client[database]["resources"]
        for batch in _batches(docs):
            await collection.insert_many(
                [
                    {"_id": f"{d['resourceType']}/{d['id']}", "version": 1, "resource": d}
                    for d in batch
                ],
                ordered=False,
            )
            advance(len(batch))
    finally:
        await client.close()


async def engine_limit(
    kind: str,
    env: dict[str, str],
    workdir: Path,
    docs: Sequence[dict[str, Any]],
    advance: Advance,
) -> dict[str, Any]:
    """The same documents straight into the store's engine (bulk insert, no API) and straight
    into the index (project() + the index adapter's write), timed apart; the limit is what
    both together sustain on this machine: documents / (store + projection + index) seconds."""
    from indexing.project import project
    from indexing.registry import SearchParamRegistry

    registry = SearchParamRegistry.load()
    began = time.perf_counter()
    if kind == "full":
        await _mongo_insert(
            env["MICDR_MONGO_URL"], env["MICDR_MONGO_DATABASE"] + "_limit", docs, advance
        )
    else:
        await asyncio.to_thread(_sqlite_insert, workdir / "limit-store.sqlite", docs, advance)
    store_s = time.perf_counter() - began

    began = time.perf_counter()
    ops = project(registry, [_Current(d) for d in docs])
    project_s = time.perf_counter() - began

    index: Any
    if kind == "full":
        from indexing.engines.elasticsearch.adapter import ElasticsearchSearchIndex

        index = await ElasticsearchSearchIndex.open(
            env["MICDR_ELASTICSEARCH_URL"], env["MICDR_INDEX_PREFIX"] + "-limit", registry
        )
    else:
        from indexing.engines.sqlite.adapter import SqliteSearchIndex

        index = await SqliteSearchIndex.open(workdir / "limit-index.sqlite", registry)
    try:
        began = time.perf_counter()
        # a write returns once its documents are searchable (a refresh later on Elasticsearch):
        # keep several in flight, as a bulk loader would
        in_flight = asyncio.Semaphore(LIMIT_WRITERS)

        async def write(batch: Sequence[Any]) -> None:
            async with in_flight:
                await index.write(batch)
            advance(len(batch))

        await asyncio.gather(*(write(batch) for batch in _batches(ops)))
        await index.refresh()
        index_s = time.perf_counter() - began
    finally:
        await index.close()
    n = len(docs)
    total = store_s + project_s + index_s
    return {
        "documents": n,
        "batch": BATCH,
        "store_seconds": round(store_s, 3),
        "project_seconds": round(project_s, 3),
        "index_seconds": round(index_s, 3),
        "store_per_second": round(n / store_s, 1),
        "project_per_second": round(n / project_s, 1),
        "index_per_second": round(n / index_s, 1),
        "resources_per_second": round(n / total, 1),
    }


def memory_mib(pid: int, field: str) -> float | None:
    """A memory figure of the process from Linux's `/proc/<pid>/status` (`VmHWM`: the peak
    resident size so far, `VmRSS`: the resident size now); None when unreadable."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith(f"{field}:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def restart_peak_memory(pid: int) -> bool:
    """Make the process's peak resident size (`VmHWM`) start again from its present size
    (Linux: `5` written to `/proc/<pid>/clear_refs`); False when that is not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


async def export(
    base: str, pids: Sequence[int], settle: float, timeout: float = 1800.0
) -> dict[str, Any]:
    """One system-level Bulk Data export of everything loaded (docs/api/export.md): resources
    per second from the kick-off to the manifest, the files downloaded (lines counted), and the
    memory of the processes that produce it (`pids`): resident at the kick-off, and the peak
    during the export (over their whole life if the peak could not be restarted).

    It first waits, `settle` seconds at most, until the stack has no queued or running
    submission and no unindexed commit: an ingest backlog still being worked through would
    share the engines with the export and be measured with it. It asks every 5 s: on FerretDB
    each /health reads every stored submission several times, which would slow the backlog."""
    async with _client(base, 1) as client:
        waited = time.perf_counter()
        try:
            await wait_searchable(client, base, submissions=True, timeout=settle, every=5.0)
            idle = True
        except TimeoutError:
            idle = False
        settle_seconds = time.perf_counter() - waited
        restarted = all([restart_peak_memory(pid) for pid in pids])  # each one, not up to a refusal
        resident = [m for pid in pids if (m := memory_mib(pid, "VmRSS")) is not None]
        began = time.perf_counter()
        kicked = await client.get(f"{base}/$export", headers={"Prefer": "respond-async"})
        if kicked.status_code != 202:
            raise RuntimeError(f"export kick-off answered {kicked.status_code}: {kicked.text}")
        status = kicked.headers["content-location"]
        deadline = began + timeout
        while (answer := await client.get(status)).status_code == 202:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"the export did not finish in {timeout:.0f}s")
            await asyncio.sleep(0.2)
        seconds = time.perf_counter() - began
        peaks = [m for pid in pids if (m := memory_mib(pid, "VmHWM")) is not None]
        manifest = answer.json()
        counted = sum(o["count"] for o in manifest["output"])
        downloaded = 0
        for output in manifest["output"]:
            ndjson = {"Accept": "application/fhir+ndjson"}
            async with client.stream("GET", output["url"], headers=ndjson) as response:
                async for line in response.aiter_lines():
                    downloaded += bool(line)
        download_seconds = time.perf_counter() - began - seconds
    return {
        "stack_idle_at_kickoff": idle,
        "settle_seconds": round(settle_seconds, 2),
        "resources": counted,
        "files": len(manifest["output"]),
        "seconds": round(seconds, 2),
        "resources_per_second": round(counted / seconds) if seconds else None,
        "downloaded_lines": downloaded,
        "download_seconds": round(download_seconds, 2),
        "memory_at_kickoff_mib": max(resident) if resident else None,
        "peak_memory_mib": max(peaks) if peaks else None,
        "peak_memory_of": "the export" if restarted else "the process's life",
    }
