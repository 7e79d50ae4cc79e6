"""schemathesis against `GET /openapi.json` of a running `micdr serve` (docs/security.md,
"Fuzzing"): every generated request is answered, and never with a 5xx.

Default run: a few hundred requests. Long run (README): `MICDR_FUZZ_EXAMPLES=2000 .venv/bin/pytest
tests/fuzz/test_openapi.py`, or against any server:
`.venv/bin/st run http://127.0.0.1:8080/openapi.json --checks not_a_server_error
--max-examples 2000`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conformance.test_cli import MICDR, ROOT, free_port

EXAMPLES = os.environ.get("MICDR_FUZZ_EXAMPLES_HTTP", os.environ.get("MICDR_FUZZ_EXAMPLES", "15"))


def test_schemathesis_finds_no_server_error(tmp_path: Path) -> None:
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MICDR_")}
    server = subprocess.Popen(
        [*MICDR, "serve", "--port", str(port), "--data-dir", str(tmp_path)],
        cwd=ROOT,
        env=clean,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/openapi.json"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError:
                time.sleep(0.2)
        st = Path(sys.executable).with_name("st")
        run = subprocess.run(
            [str(st), "run", url, "--checks", "not_a_server_error", "--max-examples", EXAMPLES,
             "--phases", "examples,coverage,fuzzing", "--request-timeout", "30",
             "--suppress-health-check", "all"],
            capture_output=True,
            text=True,
            timeout=1800,
            cwd=tmp_path,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
        assert "passed" in run.stdout
    finally:
        server.terminate()
        server.wait(timeout=30)
