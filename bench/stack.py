"""Start and stop what a benchmark run needs: `micdr serve` (and, for the full stack,
`micdr worker` processes on the engines of scripts/services.sh), each on fresh data.

Every process is started by this module and stopped by its pid; nothing else is touched. The
full stack's fresh names (database, index prefix) are dropped again by `Stack.clean`.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

SERVICES_SCRIPT = Path("scripts/services.sh")
DEFAULT_URLS = {
    "mongo": "mongodb://127.0.0.1:27018/",
    "elasticsearch": "http://127.0.0.1:19200",
    "redis": "redis://127.0.0.1:16379",
}


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, from /proc (Linux); 0 for a process that is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # fields after the parenthesised command name (which may itself hold spaces): utime and
    # stime are the 14th and 15th fields of the line, the 12th and 13th after it
    after_name = stat.rsplit(")", 1)[1].split()
    return (int(after_name[11]) + int(after_name[12])) / os.sysconf("SC_CLK_TCK")


class StackError(RuntimeError):
    """The stack could not be started; the message says what to do."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def engine_urls() -> dict[str, str]:
    """The engines' URLs: MICDR_TEST_* (scripts/services.sh env) or the script's defaults; the
    Redis URL without its database number (the run picks its own)."""
    redis = os.environ.get("MICDR_TEST_REDIS_URL", DEFAULT_URLS["redis"])
    return {
        "mongo": os.environ.get("MICDR_TEST_MONGO_URL", DEFAULT_URLS["mongo"]),
        "elasticsearch": os.environ.get(
            "MICDR_TEST_ELASTICSEARCH_URL", DEFAULT_URLS["elasticsearch"]
        ),
        "redis": re.sub(r"/\d*$", "", redis),
    }


def ensure_services(urls: dict[str, str]) -> str:
    """Make sure the full stack's engines answer; start them with scripts/services.sh when it is
    there (a checkout). Answers what was done, for the record."""
    if _engines_answer(urls):
        return "engines already running"
    if not SERVICES_SCRIPT.exists():
        raise StackError(
            "the full stack needs Elasticsearch, a MongoDB-wire server and Redis at "
            f"{', '.join(urls.values())}; start them (scripts/services.sh in a checkout, or "
            "docker compose) or set MICDR_TEST_*_URL"
        )
    done = subprocess.run(["bash", str(SERVICES_SCRIPT), "start"], capture_output=True, text=True)
    if done.returncode != 0 or not _engines_answer(urls):
        raise StackError(f"scripts/services.sh start failed: {done.stderr.strip()[-400:]}")
    return "engines started by scripts/services.sh"


def _engines_answer(urls: dict[str, str]) -> bool:
    for url in urls.values():
        host_port = url.split("://", 1)[1].split("/", 1)[0]
        host, _, port = host_port.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=2):
                pass
        except OSError:
            return False
    return True


@dataclass
class Stack:
    """One running deployment: the API's base URL, its processes and how to clean up."""

    kind: str  # embedded | full
    base: str
    env: dict[str, str]
    workdir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)

    @property
    def server_pid(self) -> int:
        return self.processes[0].pid

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the stack's own processes (API, workers) have used so far;
        the engines' is not counted. Differences of it between two moments are what a phase
        cost, a figure far less disturbed by other load on the machine than wall-clock rates."""
        return sum(process_cpu_seconds(pid) for pid in self.pids)

    def log_tail(self, lines: int = 20) -> str:
        out = []
        for log in sorted(self.workdir.glob("*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(out)

    def stop(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in reversed(self.processes):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    async def clean(self) -> None:
        """Drop the full stack's fresh database and indices; remove the work folder."""
        if self.kind == "full":
            await drop_names(self.env)
        shutil.rmtree(self.workdir, ignore_errors=True)


async def drop_names(env: dict[str, str]) -> None:
    from elasticsearch import AsyncElasticsearch
    from pymongo import AsyncMongoClient

    prefix = env["MICDR_INDEX_PREFIX"]
    es = AsyncElasticsearch(env["MICDR_ELASTICSEARCH_URL"])
    try:
        names = list(await es.indices.get(index=f"{prefix}-*"))
        if names:  # wildcard deletes are refused: name each index
            await es.indices.delete(index=",".join(names))
    finally:
        await es.close()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(env["MICDR_MONGO_URL"])
    try:
        await client.drop_database(env["MICDR_MONGO_DATABASE"])
        await client.drop_database(env["MICDR_MONGO_DATABASE"] + "_limit")
    finally:
        await client.close()
    await flush_redis(env["MICDR_REDIS_URL"])


async def flush_redis(url: str) -> None:
    """Empty the run's own Redis database (its queue, results and retry counters)."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


async def start(kind: str, run_id: str, workers: int, urls: dict[str, str]) -> Stack:
    workdir = Path(tempfile.mkdtemp(prefix=f"micdr-bench-{kind}-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICDR_")}
    env |= {"MICDR_LOG_LEVEL": "WARNING", "MICDR_DATA_DIR": str(workdir / "data")}
    (workdir / "data").mkdir()  # the full stack keeps its audit log there too
    names: dict[str, str] = {}
    if kind == "full":
        name = f"bench-{run_id}"
        env |= {
            "MICDR_MONGO_URL": urls["mongo"],
            "MICDR_MONGO_DATABASE": name.replace("-", "_"),
            "MICDR_ELASTICSEARCH_URL": urls["elasticsearch"],
            "MICDR_INDEX_PREFIX": name,
            # A Redis database of its own, so no other user of the engines takes its jobs.
            "MICDR_REDIS_URL": f"{urls['redis'].rstrip('/')}/{_redis_db(run_id)}",
            "MICDR_SECRET": run_id,
        }
        names = {
            "mongo_database": env["MICDR_MONGO_DATABASE"],
            "index_prefix": name,
            "redis": env["MICDR_REDIS_URL"],
        }
        # emptied first: jobs a killed earlier run left there would be run too (Redis persists)
        await flush_redis(env["MICDR_REDIS_URL"])
    stack = Stack(kind, f"http://127.0.0.1:{port}/fhir", env, workdir, names=names)
    stack.processes.append(
        _spawn(
            ["serve", "--port", str(port), "--data-dir", env["MICDR_DATA_DIR"]],
            env,
            workdir / "serve.log",
        )
    )
    if kind == "full":
        for n in range(workers):
            stack.processes.append(_spawn(["worker"], env, workdir / f"worker-{n}.log"))
    try:
        await _wait_up(stack)
    except BaseException:
        stack.stop()
        raise
    return stack


def _redis_db(run_id: str) -> int:
    return 8 + sum(run_id.encode()) % 8


async def _wait_up(stack: Stack, timeout: float = 90.0) -> None:
    health = stack.base.rsplit("/fhir", 1)[0] + "/health"
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5) as client:
        while time.monotonic() < deadline:
            for proc in stack.processes:
                if proc.poll() is not None:
                    raise StackError(
                        f"a {stack.kind} process exited with {proc.returncode}:\n"
                        + stack.log_tail()
                    )
            try:
                if (await client.get(health)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.3)
    raise StackError(f"the {stack.kind} API did not answer within {timeout:.0f}s")
