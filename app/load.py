"""`micdr load`: feed files of Bundles and NDJSON into a running server or straight into the
configured store, concurrently, with a progress bar, a report and resume.

Units of work: a Bundle file is one unit (a transaction or batch, as its type says); an NDJSON
file is cut into units of `NDJSON_CHUNK` lines, each a batch of independent writes. A line with an
id is a PUT of that id; one without, a conditional update on its first business identifier
(`Type?identifier=system|value`), so loading a record twice, or a record the server already
holds, updates it instead of creating a duplicate; one with neither, a create. Straight into the
store, an NDJSON unit is committed as one transaction while all its lines succeed
(`commit_independent`): the bulk path. Completed units are appended to a state file, so a rerun with
the same report path skips them (resume after interruption).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson

from app.fhir.bundles import status_line
from app.fhir.outcome import FhirError, operation_outcome
from app.interactions.batch import commit_independent
from app.interactions.bundle import submit_bundle
from app.interactions.context import Services
from app.interactions.result import FhirRequest

NDJSON_CHUNK = 500


@dataclass(frozen=True)
class Unit:
    key: str  # file path, or path#start-line for NDJSON chunks
    bundle: dict[str, Any]
    resources: int
    independent: bool = False  # NDJSON lines, or a lone resource: no entry depends on another
    lines: tuple[int, ...] = ()  # NDJSON: the line number of each entry
    bad_lines: tuple[tuple[int, str], ...] = ()  # NDJSON lines that are not a JSON object, and why


@dataclass
class Outcome:
    """What became of one unit. `rejects`: each entry (or NDJSON line) refused, with why."""

    key: str
    ok: bool
    status: int
    resources: int
    reason: str = ""
    rejects: list[dict[str, Any]] = field(default_factory=list)


def _chunks(path: Path) -> Iterator[tuple[int, list[tuple[int, bytes]]]]:
    """The NDJSON file's non-blank lines, `NDJSON_CHUNK` at a time, each chunk with the line its
    unit's key starts at."""
    chunk: list[tuple[int, bytes]] = []
    start = 1
    with path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                chunk.append((number, line))
            if len(chunk) == NDJSON_CHUNK:
                yield start, chunk
                chunk, start = [], number + 1
    if chunk:
        yield start, chunk


def ndjson_units(path: Path, skip: int = 0) -> Iterator[Unit]:
    """The units of one NDJSON file after its first `skip` (those are not parsed: resume)."""
    for start, lines in itertools.islice(_chunks(path), skip, None):
        yield _ndjson_unit(f"{path}#{start}", lines)


def _ndjson_unit(key: str, lines: list[tuple[int, bytes]]) -> Unit:
    entries: list[dict[str, Any]] = []
    numbers: list[int] = []
    bad: list[tuple[int, str]] = []
    for number, line in lines:
        try:
            resource = orjson.loads(line)
        except orjson.JSONDecodeError as err:
            bad.append((number, f"not JSON: {err}"))
            continue
        if not isinstance(resource, dict):
            bad.append((number, "not a JSON object"))
            continue
        entries.append({"resource": resource, "request": ndjson_request(resource)})
        numbers.append(number)
    return replace(_batch(key, entries), lines=tuple(numbers), bad_lines=tuple(bad))


def ndjson_request(resource: dict[str, Any]) -> dict[str, str]:
    """The write that loads one NDJSON line: PUT by id, else a conditional update on its first
    business identifier, else a create."""
    type_ = str(resource.get("resourceType", ""))
    if id_ := resource.get("id"):
        return {"method": "PUT", "url": f"{type_}/{id_}"}
    identifiers = resource.get("identifier")
    for identifier in identifiers if isinstance(identifiers, list) else [identifiers]:
        if not isinstance(identifier, dict):
            continue  # not an Identifier: validation refuses the line
        system, value = identifier.get("system"), identifier.get("value")
        if isinstance(system, str) and isinstance(value, str) and system and value:
            token = f"{system}|{value}".replace("\\", "\\\\").replace(",", "\\,")
            return {"method": "PUT", "url": f"{type_}?{urlencode({'identifier': token})}"}
    return {"method": "POST", "url": type_}


def _batch(key: str, entries: list[dict[str, Any]]) -> Unit:
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": entries}
    return Unit(key, bundle, len(entries), independent=True)


def _json_unit(file: Path) -> Unit:
    try:
        data = orjson.loads(file.read_bytes())
    except orjson.JSONDecodeError as err:
        return replace(_batch(str(file), []), bad_lines=((1, f"not JSON: {err}"),))
    if not isinstance(data, dict) or not data.get("resourceType"):
        return replace(_batch(str(file), []), bad_lines=((1, "not a FHIR resource"),))
    if data["resourceType"] == "Bundle" and data.get("type") in ("transaction", "batch"):
        return Unit(str(file), data, len(data.get("entry") or []))
    entry = {"resource": data, "request": ndjson_request(data)}
    return replace(_batch(str(file), [entry]), lines=(1,))


def _files(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix in (".json", ".ndjson"))
        else:
            yield path


def units(paths: list[Path]) -> Iterator[Unit]:
    """Every unit of work under `paths` (files, or folders searched for *.json / *.ndjson),
    read as it is needed: memory holds a few units whatever the input's size."""
    for file in _files(paths):
        if file.suffix == ".ndjson":
            yield from ndjson_units(file)
        else:
            yield _json_unit(file)


def unit_keys(paths: list[Path]) -> Iterator[str]:
    """The keys `units` yields, without parsing any JSON (for the progress bar's total)."""
    for file in _files(paths):
        if file.suffix == ".ndjson":
            yield from (f"{file}#{start}" for start, _ in _chunks(file))
        else:
            yield str(file)


Submit = Callable[[Unit], Awaitable[tuple[int, dict[str, Any]]]]


def judge(unit: Unit, status: int, body: dict[str, Any]) -> Outcome:
    rejects = [{"line": n, "status": status_line(400), "reason": why} for n, why in unit.bad_lines]
    if status >= 300:
        issues = body.get("issue") or [{}]
        reason = str(issues[0].get("diagnostics", status))
        return Outcome(unit.key, False, status, 0, reason, rejects)
    for index, entry in enumerate(body.get("entry", [])):
        response = entry.get("response", {})
        if str(response.get("status", "")).startswith("2"):
            continue
        where = {"line": unit.lines[index]} if unit.lines else {"entry": index}
        issue = (response.get("outcome", {}).get("issue") or [{}])[0]
        reason = str(issue.get("diagnostics", ""))
        rejects.append({**where, "status": str(response.get("status", "")), "reason": reason})
    if rejects:
        first = rejects[0]
        summary = f"{len(rejects)} refused, first: {first['status']} {first['reason']}"
        loaded = unit.resources - (len(rejects) - len(unit.bad_lines))
        return Outcome(unit.key, False, status, loaded, summary, rejects)
    return Outcome(unit.key, True, status, unit.resources)


@dataclass
class Tally:
    """What a load did, counted as it goes (the outcomes themselves are in the report)."""

    units: int = 0
    failed_units: int = 0
    resources: int = 0
    rejects: int = 0

    def add(self, outcome: Outcome) -> None:
        self.units += 1
        self.failed_units += 0 if outcome.ok else 1
        self.resources += outcome.resources
        self.rejects += len(outcome.rejects)


def done_keys(report: Path) -> set[str]:
    """Units completed by an earlier run with the same report (resume)."""
    state = report.with_suffix(report.suffix + ".done")
    return set(state.read_text().splitlines()) if state.exists() else set()


async def load(
    paths: list[Path],
    submit: Submit,
    report: Path,
    concurrency: int = 8,
    progress: Callable[[Tally], None] = lambda t: None,
) -> Tally:
    state = report.with_suffix(report.suffix + ".done")
    done = done_keys(report)
    queue: asyncio.Queue[Unit | None] = asyncio.Queue(maxsize=concurrency * 2)
    tally = Tally()

    async def work() -> None:
        while (unit := await queue.get()) is not None:
            try:
                status, body = await submit(unit)
                outcome = judge(unit, status, body)
            except Exception as exc:  # one bad unit must not stop the load
                outcome = Outcome(unit.key, False, 0, 0, f"{type(exc).__name__}: {exc}")
            tally.add(outcome)
            with report.open("ab") as out:
                out.write(orjson.dumps(outcome.__dict__) + b"\n")
            # Independent entries that landed stay loaded whatever their neighbours did: the
            # unit is done, its rejects are in the report (a rerun would create them again).
            if outcome.ok or (unit.independent and 0 < outcome.status < 300):
                with state.open("a") as marks:
                    marks.write(unit.key + "\n")
            progress(tally)

    workers = [asyncio.create_task(work()) for _ in range(concurrency)]
    for unit in units(paths):
        if unit.key not in done:
            await queue.put(unit)
    for _ in workers:
        await queue.put(None)
    await asyncio.gather(*workers)
    return tally


@contextlib.asynccontextmanager
async def http_submitter(url: str) -> AsyncIterator[Submit]:
    import httpx

    async with httpx.AsyncClient(base_url=url.rstrip("/"), timeout=120) as client:

        async def submit(unit: Unit) -> tuple[int, dict[str, Any]]:
            response = await client.post(
                "",
                content=orjson.dumps(unit.bundle),
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

        async def submit(unit: Unit) -> tuple[int, dict[str, Any]]:
            try:
                if unit.independent:
                    entries = await commit_independent(services, unit.bundle["entry"], base)
                    return 200, {"entry": entries}
                answer = await submit_bundle(services, FhirRequest(base=base, body=unit.bundle))
            except FhirError as err:
                return err.status, operation_outcome(err.issues)
            return answer.status, answer.resource or {}

        yield submit
        await services.queue.drain()
