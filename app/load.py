"""`micdr load`: feed files of Bundles and NDJSON into a running server or straight into the
configured store, concurrently, with a progress bar, a report and resume.

Units of work: a Bundle file is one unit (a transaction or batch, as its type says); an NDJSON
file is cut into units of `NDJSON_CHUNK` lines, each sent as one batch of creates (PUT when the
line has an id). Completed units are appended to a state file, so a rerun with the same report
path skips them (resume after interruption).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from app.fhir.outcome import FhirError, operation_outcome
from app.interactions.bundle import submit_bundle
from app.interactions.context import Services
from app.interactions.result import FhirRequest

NDJSON_CHUNK = 200


@dataclass(frozen=True)
class Unit:
    key: str  # file path, or path#start-line for NDJSON chunks
    bundle: dict[str, Any]
    resources: int


@dataclass
class Outcome:
    key: str
    ok: bool
    status: int
    resources: int
    reason: str = ""


def _ndjson_units(path: Path) -> Iterator[Unit]:
    entries: list[dict[str, Any]] = []
    start = 1
    with path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            resource = orjson.loads(line)
            type_ = resource.get("resourceType", "")
            id_ = resource.get("id")
            request = (
                {"method": "PUT", "url": f"{type_}/{id_}"}
                if id_
                else {"method": "POST", "url": type_}
            )
            entries.append({"resource": resource, "request": request})
            if len(entries) == NDJSON_CHUNK:
                yield _batch(f"{path}#{start}", entries)
                entries, start = [], number + 1
    if entries:
        yield _batch(f"{path}#{start}", entries)


def _batch(key: str, entries: list[dict[str, Any]]) -> Unit:
    return Unit(key, {"resourceType": "Bundle", "type": "batch", "entry": entries}, len(entries))


def units(paths: list[Path]) -> Iterator[Unit]:
    """Every unit of work under `paths` (files, or folders searched for *.json / *.ndjson)."""
    for path in paths:
        files = (
            sorted(p for p in path.rglob("*") if p.suffix in (".json", ".ndjson"))
            if path.is_dir()
            else [path]
        )
        for file in files:
            if file.suffix == ".ndjson":
                yield from _ndjson_units(file)
                continue
            data = orjson.loads(file.read_bytes())
            if data.get("resourceType") == "Bundle" and data.get("type") in (
                "transaction",
                "batch",
            ):
                yield Unit(str(file), data, len(data.get("entry") or []))
            elif data.get("resourceType"):
                entry = {
                    "resource": data,
                    "request": {"method": "POST", "url": data["resourceType"]},
                }
                yield _batch(str(file), [entry])


Submit = Callable[[dict[str, Any]], Awaitable[tuple[int, dict[str, Any]]]]


def _judge(unit: Unit, status: int, body: dict[str, Any]) -> Outcome:
    if status >= 300:
        issues = body.get("issue") or [{}]
        return Outcome(unit.key, False, status, 0, str(issues[0].get("diagnostics", status)))
    failed = [
        e
        for e in body.get("entry", [])
        if not str(e.get("response", {}).get("status", "")).startswith("2")
    ]
    if failed:
        first = failed[0]["response"]
        reason = (first.get("outcome", {}).get("issue") or [{}])[0].get("diagnostics", "")
        return Outcome(
            unit.key,
            False,
            status,
            unit.resources - len(failed),
            f"{len(failed)} entries failed, first: {first.get('status')} {reason}",
        )
    return Outcome(unit.key, True, status, unit.resources)


def done_keys(report: Path) -> set[str]:
    """Units completed by an earlier run with the same report (resume)."""
    state = report.with_suffix(report.suffix + ".done")
    return set(state.read_text().splitlines()) if state.exists() else set()


async def load(
    paths: list[Path],
    submit: Submit,
    report: Path,
    concurrency: int = 8,
    progress: Callable[[Outcome], None] = lambda o: None,
) -> list[Outcome]:
    state = report.with_suffix(report.suffix + ".done")
    done = done_keys(report)
    queue: asyncio.Queue[Unit | None] = asyncio.Queue(maxsize=concurrency * 2)
    outcomes: list[Outcome] = []

    async def work() -> None:
        while (unit := await queue.get()) is not None:
            try:
                status, body = await submit(unit.bundle)
                outcome = _judge(unit, status, body)
            except Exception as exc:  # one bad unit must not stop the load
                outcome = Outcome(unit.key, False, 0, 0, f"{type(exc).__name__}: {exc}")
            outcomes.append(outcome)
            with report.open("ab") as out:
                out.write(orjson.dumps(outcome.__dict__) + b"\n")
            if outcome.ok:
                with state.open("a") as marks:
                    marks.write(unit.key + "\n")
            progress(outcome)

    workers = [asyncio.create_task(work()) for _ in range(concurrency)]
    for unit in units(paths):
        if unit.key not in done:
            await queue.put(unit)
    for _ in workers:
        await queue.put(None)
    await asyncio.gather(*workers)
    return outcomes


@contextlib.asynccontextmanager
async def http_submitter(url: str) -> AsyncIterator[Submit]:
    import httpx

    async with httpx.AsyncClient(base_url=url.rstrip("/"), timeout=120) as client:

        async def submit(bundle: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            response = await client.post(
                "",
                content=orjson.dumps(bundle),
                headers={"Content-Type": "application/fhir+json"},
            )
            return response.status_code, response.json() if response.content else {}

        yield submit


@contextlib.asynccontextmanager
async def store_submitter(
    opened: contextlib.AbstractAsyncContextManager[Services],
) -> AsyncIterator[Submit]:
    """Submit straight into the configured store (no server: `opened` assembles the process's
    context, app/deploy), then project what was loaded."""
    async with opened as services:
        base = (services.settings.public_base_url or "").rstrip("/")

        async def submit(bundle: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            try:
                answer = await submit_bundle(services, FhirRequest(base=base, body=bundle))
            except FhirError as err:
                return err.status, operation_outcome(err.issues)
            return answer.status, answer.resource or {}

        yield submit
        await services.queue.drain()
