"""`micdr serve` and `micdr load` as an operator runs them (subprocesses, real sockets)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests._data import IG_EPISODES_DIR
from tests.conformance._strict import check_body

MICDR = [sys.executable, "-m", "app.cli"]
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MICDR_")}
    return subprocess.run(
        [*MICDR, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**clean, **(env or {})},
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_an_unreachable_elasticsearch_is_one_error_line(tmp_path: Path) -> None:
    env = {
        "MICDR_ELASTICSEARCH_URL": "http://127.0.0.1:1",
        "MICDR_MONGO_URL": "mongodb://127.0.0.1:1",
        "MICDR_REDIS_URL": "redis://127.0.0.1:1",
    }
    line = one_error_line(run("serve", "--port", str(free_port()), env=env))
    assert line.startswith("micdr: error: ") and "unreachable" in line


def test_a_half_configured_full_stack_is_one_error_line() -> None:
    line = one_error_line(run("serve", env={"MICDR_ELASTICSEARCH_URL": "http://127.0.0.1:1"}))
    assert "MICDR_MONGO_URL" in line


def test_a_port_in_use_is_one_error_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = one_error_line(run("serve", "--port", str(port), "--data-dir", str(tmp_path)))
    assert line == f"micdr: error: port {port} on 127.0.0.1 is already in use"


def test_an_unwritable_data_dir_is_one_error_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    line = one_error_line(run("serve", "--data-dir", str(blocker / "data")))
    assert line.startswith(f"micdr: error: data dir {blocker / 'data'} is not writable")


def test_a_non_loopback_bind_without_auth_refuses_to_start(tmp_path: Path) -> None:
    line = one_error_line(run("serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path)))
    assert "--insecure" in line


def test_serve_answers_metadata_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MICDR_")}
    proc = subprocess.Popen(
        [*MICDR, "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(tmp_path)],
        cwd=ROOT,
        env=clean,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        body = None
        while time.monotonic() < deadline and body is None:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/fhir/metadata", timeout=2
                ) as r:
                    assert r.status == 200
                    raw = r.read()
                    check_body(raw, r.headers["content-type"], "/fhir/metadata")
                    body = json.loads(raw)
            except OSError:
                time.sleep(0.2)
        assert body is not None, "no answer within a minute"
        assert body["resourceType"] == "CapabilityStatement"
        assert body["fhirVersion"] == "4.0.1"
        assert (tmp_path / "micdr.sqlite3").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal so the exit status tells why
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in (proc.stderr.read() if proc.stderr else "")


@pytest.mark.parametrize("into", ["store"])
def test_load_feeds_every_bundle_reports_and_resumes(tmp_path: Path, into: str) -> None:
    report = tmp_path / "report.jsonl"
    args = (
        "load",
        str(IG_EPISODES_DIR),
        "--data-dir",
        str(tmp_path / "d"),
        "--report",
        str(report),
    )
    first = run(*args)
    assert first.returncode == 0, first.stderr
    assert "loaded 3 units (21 resources), 0 failed" in first.stdout
    assert [json.loads(line)["ok"] for line in report.read_text().splitlines()] == [True] * 3
    again = run(*args)
    assert "loaded 0 units (0 resources), 0 failed" in again.stdout


def test_a_non_loopback_bind_starts_once_authentication_is_configured(tmp_path: Path) -> None:
    from tests.conformance._auth import auth_env

    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MICDR_")}
    env = {**clean, **auth_env(tmp_path)}
    proc = subprocess.Popen(
        [*MICDR, "serve", "--host", "0.0.0.0", "--port", str(port), "--data-dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and status is None:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/fhir/Patient", timeout=2)
                status = 200
            except urllib.error.HTTPError as err:
                status = err.code
                check_body(err.read(), err.headers["content-type"], "/fhir/Patient")
                assert err.headers["WWW-Authenticate"].startswith("Bearer")
            except OSError:
                time.sleep(0.2)
        assert status == 401, "an unauthenticated search must be refused"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert "bearer tokens required" in (proc.stderr.read() if proc.stderr else "")


def test_export_writes_the_ndjson_files_of_a_snapshot(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    loaded = run("load", str(IG_EPISODES_DIR), "--data-dir", data, "--report", str(tmp_path / "r"))
    assert loaded.returncode == 0, loaded.stderr
    out = tmp_path / "out"
    result = run("export", "--type", "Patient", "--data-dir", data, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert f"exported 3 resources in 1 files to {out}" in result.stdout
    lines = (out / "Patient.1.ndjson").read_text().splitlines()
    assert [json.loads(line)["resourceType"] for line in lines] == ["Patient"] * 3
    bad = run("export", "--type", "Nope", "--data-dir", data, "--out", str(out))
    assert "_type names 'Nope'" in one_error_line(bad)
