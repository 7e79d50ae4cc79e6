"""`micdr`: serve | load | reindex | export | alerts | report | worker | bench.

Configuration errors are one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import errno
import importlib.util
import ipaddress
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.settings import Settings, SettingsError, load_settings


class CliError(Exception):
    """Something the operator must fix; printed as one line."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_data_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".micdr-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise CliError(f"data dir {path} is not writable: {exc.strerror or exc}") from None


def _check_port(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CliError(f"port {port} on {host} is already in use") from None
            raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _check_engines(settings: Settings) -> None:
    """Reach every configured engine before serving, so a bad URL is one clear line."""
    import asyncio

    from app.deploy.engines import StartupError, check_engines

    try:
        asyncio.run(check_engines(settings))
    except StartupError as exc:
        raise CliError(str(exc)) from None


def serve(args: argparse.Namespace) -> None:
    settings = load_settings(data_dir=Path(args.data_dir) if args.data_dir else None)
    if not _is_loopback(args.host) and not args.insecure and not settings.auth_configured:
        raise CliError(
            f"refusing to listen on {args.host} without authentication configured "
            "(MICDR_AUTH_JWKS_FILE or MICDR_AUTH_JWKS_URL); bind to 127.0.0.1 or pass --insecure"
        )
    if settings.deployment == "embedded":
        _check_data_dir(settings.data_dir)
    _check_port(args.host, args.port)
    _check_engines(settings)
    import uvicorn

    from app.logs import log_config
    from app.main import create_app

    where = f"http://{args.host}:{args.port}{settings.base_path}"
    print(f"miCDR ({settings.deployment}) serving FHIR R4 at {where}", file=sys.stderr, flush=True)
    if settings.auth_configured:
        print(f"bearer tokens required (issuer {settings.auth_issuer})", file=sys.stderr)
    elif _is_loopback(args.host):
        print("listening on loopback only (no authentication configured)", file=sys.stderr)
    else:
        print("WARNING: no authentication configured and not on loopback", file=sys.stderr)
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level=settings.log_level.lower(),
        log_config=log_config(settings.log_level),
        access_log=False,
        lifespan="on",
    )


def worker(args: argparse.Namespace) -> None:
    settings = load_settings()
    if settings.deployment != "full":
        raise CliError(
            "micdr worker runs the full stack's workers: set MICDR_REDIS_URL and friends"
        )
    _check_engines(settings)
    from app.deploy.worker import run_worker

    run_worker(settings)


def load(args: argparse.Namespace) -> None:
    import asyncio
    import time

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from app.deploy.assemble import deployed
    from app.load import (
        Tally,
        done_keys,
        http_submitter,
        load,
        store_submitter,
        unit_keys,
    )

    paths = [Path(p) for p in args.paths]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise CliError(f"no such file or folder: {', '.join(missing)}")
    report = Path(args.report)
    settings = load_settings(data_dir=Path(args.data_dir) if args.data_dir else None)
    if not args.url:
        _check_engines(settings)
    done = done_keys(report)
    total = sum(1 for key in unit_keys(paths) if key not in done)
    columns = (
        TextColumn("loading"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("units, {task.fields[resources]} resources, {task.fields[failed]} failed"),
        TimeElapsedColumn(),
    )

    async def run() -> Tally:
        with Progress(*columns, transient=False) as bar:
            task = bar.add_task("load", total=total, failed=0, resources=0)

            def step(loaded: Tally) -> None:
                bar.update(task, advance=1, failed=loaded.failed_units, resources=loaded.resources)

            submitter = (
                http_submitter(args.url) if args.url else store_submitter(deployed(settings))
            )
            async with submitter as submit:
                return await load(paths, submit, report, args.concurrency, step)

    began = time.monotonic()
    tally = asyncio.run(run())
    seconds = time.monotonic() - began
    print(
        f"loaded {tally.units - tally.failed_units} units ({tally.resources} resources), "
        f"{tally.failed_units} failed, {tally.rejects} resources refused; "
        f"{seconds:.1f} s, {tally.resources / max(seconds, 1e-9):.0f} resources/s; report: {report}"
    )
    if tally.failed_units:
        raise SystemExit(1)


def reindex(args: argparse.Namespace) -> None:
    import asyncio

    from app.reindex import CHECKPOINT_FILE, Checkpoint, ReindexReport

    settings = load_settings(data_dir=Path(args.data_dir) if args.data_dir else None)
    _check_engines(settings)
    checkpoint = Path(args.checkpoint) if args.checkpoint else settings.data_dir / CHECKPOINT_FILE
    saved = Checkpoint.load(checkpoint)
    report = asyncio.run(_reindex(settings, args.type or [], args.param or [], checkpoint))
    if report is None:
        print("nothing to reindex: the store holds none of those types")
        return
    assert isinstance(report, ReindexReport)
    if report.resumed_from is not None:
        print(f"resumed from the checkpoint: {report.resumed_from}")
    elif saved is not None:
        print("a checkpoint of other types was found and discarded: reindexed from the start")
    print(
        f"reindexed {report.written} resources of {len(report.types)} types in"
        f" {report.seconds:.1f}s ({report.per_second:.0f}/s),"
        f" {report.caught_up} caught up from concurrent writes"
    )


async def _reindex(
    settings: Settings, types: list[str], params: list[str], checkpoint: Path
) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from app.deploy.engines import open_engines
    from app.fhir.validate import resource_types
    from app.reindex import reindex, select_types
    from app.search_parameters import sync_search_parameters
    from workers.episodes import rebuild_episodes

    unknown = sorted(set(types) - resource_types())
    if unknown:
        raise CliError(f"not FHIR R4 resource types: {', '.join(unknown)}")
    engines = await open_engines(settings)
    try:
        assert engines.index is not None
        await sync_search_parameters(engines.store, engines.registry)
        try:
            chosen = await select_types(engines.store, engines.registry, types, params)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        if not chosen:
            return None
        totals = {t: await engines.store.count(t) for t in chosen}
        columns = (
            TextColumn("reindex {task.description:<22}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, transient=False) as bar:
            overall = bar.add_task("all types", total=sum(totals.values()))
            tasks: dict[str, Any] = {}

            def on_type(resource_type: str, total: int) -> None:
                tasks[resource_type] = bar.add_task(resource_type, total=total)

            def on_progress(resource_type: str, done: int) -> None:
                bar.update(tasks[resource_type], advance=done)
                bar.update(overall, advance=done)

            report = await reindex(
                engines.store,
                engines.index,
                engines.registry,
                chosen,
                checkpoint=checkpoint,
                on_type=on_type,
                on_progress=on_progress,
            )
        if not types and not params and engines.episodes is not None:
            # a whole reindex also rebuilds the analysts' episodes (docs/index-schema.md)
            read = await rebuild_episodes(engines.store, engines.episodes, settings)
            print(f"rebuilt the imaging episodes from {read} orders, studies and reports")
        return report
    finally:
        await engines.close()


def export(args: argparse.Namespace) -> None:
    """A system-level Bulk Data export into a directory (docs/api/export.md): kicked off and
    produced as the API's are (embedded: in this process; full stack: by the workers)."""
    import asyncio

    settings = load_settings(data_dir=Path(args.data_dir) if args.data_dir else None)
    _check_engines(settings)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = asyncio.run(_export(settings, args.type or [], args.since, out))
    total = sum(count for _, count in written)
    print(f"exported {total} resources in {len(written)} files to {out}")
    for name, count in written:
        print(f"  {name}: {count}")


async def _export(
    settings: Settings, types: list[str], since: str | None, out: Path
) -> list[tuple[str, int]]:
    import asyncio

    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from app.bulk.output import ExportState
    from app.deploy.assemble import deploy
    from app.fhir.outcome import FhirError
    from app.interactions.export import export_system
    from app.interactions.result import FhirRequest

    query = [("_type", ",".join(types))] if types else []
    query += [("_since", since)] if since else []
    deployment = await deploy(settings)
    try:
        services = deployment.services
        request = FhirRequest(
            base=settings.public_base_url or "micdr-cli",
            query=tuple(query),
            headers={"prefer": "respond-async"},
        )
        try:
            answer = await export_system(services, request)
        except FhirError as err:
            raise CliError(str(err)) from None
        export_id = answer.headers["Content-Location"].rsplit("/", 1)[1]
        columns = (SpinnerColumn(), TextColumn("export {task.description}"), TimeElapsedColumn())
        with Progress(*columns, transient=False) as bar:
            task = bar.add_task("queued")
            while True:
                sub = await services.store.submission(export_id)
                assert sub is not None
                if sub.state in ("done", "failed", "dead"):
                    break
                bar.update(task, description=sub.progress or sub.state)
                await asyncio.sleep(0.5)
            bar.update(task, description=sub.state)
        if sub.state != "done":
            raise CliError(f"the export failed: {sub.error or sub.result}")
        state = ExportState.from_json(sub.journal["export"])
        files = services.files
        assert files is not None
        written: list[tuple[str, int]] = []
        for f in state.files:
            if not f.count:
                continue
            with (out / f.name).open("wb") as sink:
                async for chunk in files.read(export_id, f.name, f.chunks):
                    sink.write(chunk)
            written.append((f.name, f.count))
        return written
    finally:
        await deployment.close()


def alerts(args: argparse.Namespace) -> None:
    """The turnaround alerts firing now, one JSON object a line (docs/index-schema.md)."""
    import asyncio

    settings = load_settings(data_dir=Path(args.data_dir) if args.data_dir else None)
    _check_engines(settings)
    for line in asyncio.run(_alerts(settings)):
        print(line)


async def _alerts(settings: Settings) -> list[str]:
    from datetime import UTC, datetime

    import orjson

    from app.deploy.engines import open_engines
    from indexing.alerts import parse_rules

    try:
        rules = parse_rules(settings.alert_rules)
    except ValueError as exc:
        raise CliError(f"MICDR_ALERT_RULES: {exc}") from None
    engines = await open_engines(settings)
    try:
        assert engines.episodes is not None
        found = await engines.episodes.alerts(rules, datetime.now(UTC))
    finally:
        await engines.close()
    return [orjson.dumps(row).decode() for row in found]


def report(args: argparse.Namespace) -> None:
    """The dashboard's figures for one month as a static HTML page (app/report.py)."""
    import asyncio

    settings = load_settings(data_dir=Path(args.data_dir) if args.data_dir else None)
    _check_engines(settings)
    html = asyncio.run(_report(settings, args.period))
    Path(args.out).write_text(html, encoding="utf-8")
    print(f"wrote {args.out}")


async def _report(settings: Settings, period: str) -> str:
    from datetime import UTC, datetime

    from app.deploy.engines import open_engines
    from app.report import month_bounds, render_report
    from indexing.alerts import parse_rules
    from indexing.analytics import QUESTIONS, AnalyticsQuery

    try:
        start, end = month_bounds(period)
        rules = parse_rules(settings.alert_rules)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    now = datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    engines = await open_engines(settings)
    try:
        assert engines.episodes is not None
        answers = {
            q: await engines.episodes.answer(AnalyticsQuery(q, start=start, end=end, now=stamp))
            for q in QUESTIONS
        }
        firing = await engines.episodes.alerts(rules, now)
    finally:
        await engines.close()
    return render_report(period, answers, firing, stamp)


def bench(args: argparse.Namespace) -> None:
    """The benchmark is a dev tool shipped beside `app` (bench/): this process becomes
    `python -m bench` with the options given, so the server never imports it and the benchmark's
    help, errors, exit status and signal handling are its own."""
    if importlib.util.find_spec("bench") is None:
        raise CliError("the benchmark is not installed here: pip install '.[bench]' in a checkout")
    os.execv(sys.executable, [sys.executable, "-m", "bench", *args.options])


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="micdr", description="miCDR FHIR R4 imaging repository")
    sub = top.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve the FHIR API")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--data-dir", default=os.environ.get("MICDR_DATA_DIR"), help="embedded data")
    s.add_argument("--insecure", action="store_true", help="allow a non-loopback bind without auth")
    s.set_defaults(run=serve)
    ld = sub.add_parser("load", help="load Bundles and NDJSON files or folders")
    ld.add_argument("paths", nargs="+")
    ld.add_argument("--url", help="a running server's FHIR base (default: straight into the store)")
    ld.add_argument("--concurrency", type=int, default=8)
    ld.add_argument("--report", default="micdr-load-report.jsonl", help="outcomes, one per line")
    ld.add_argument("--data-dir", default=os.environ.get("MICDR_DATA_DIR"))
    ld.set_defaults(run=load)
    ri = sub.add_parser(
        "reindex", help="rebuild the search index from the store (online, resumable)"
    )
    ri.add_argument("--type", action="append", metavar="T", help="only this type (repeatable)")
    ri.add_argument(
        "--param", action="append", metavar="P", help="only types with this parameter (code/url)"
    )
    ri.add_argument(
        "--checkpoint", help="progress file (default: <data dir>/reindex-checkpoint.json)"
    )
    ri.add_argument("--data-dir", default=os.environ.get("MICDR_DATA_DIR"))
    ri.set_defaults(run=reindex)
    ex = sub.add_parser("export", help="a Bulk Data export of the store into a directory")
    ex.add_argument("--type", action="append", metavar="T", help="only this type (repeatable)")
    ex.add_argument("--since", metavar="INSTANT", help="only resources changed at or after it")
    ex.add_argument("--out", required=True, help="the directory to write the NDJSON files to")
    ex.add_argument("--data-dir", default=os.environ.get("MICDR_DATA_DIR"))
    ex.set_defaults(run=export)
    al = sub.add_parser("alerts", help="the turnaround alerts firing now, as JSON lines")
    al.add_argument("--data-dir", default=os.environ.get("MICDR_DATA_DIR"))
    al.set_defaults(run=alerts)
    rp = sub.add_parser("report", help="one month's figures as a static HTML page with charts")
    rp.add_argument("--period", required=True, help="the month, YYYY-MM")
    rp.add_argument("--out", required=True, help="the HTML file to write")
    rp.add_argument("--data-dir", default=os.environ.get("MICDR_DATA_DIR"))
    rp.set_defaults(run=report)
    w = sub.add_parser("worker", help="run the full stack's arq worker")
    w.set_defaults(run=worker)
    # no options of its own: main() hands everything after `bench` to bench/__main__.py
    b = sub.add_parser(
        "bench", help="benchmark ingest, search and read (bench/README.md)", add_help=False
    )
    b.set_defaults(run=bench)
    return top


def main(argv: Sequence[str] | None = None) -> None:
    top = parser()
    args, rest = top.parse_known_args(argv)
    if args.command == "bench":
        args.options = rest
    elif rest:
        top.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        args.run(args)
    except (CliError, SettingsError) as exc:
        print(f"micdr: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
