"""Debian's Chromium driven through Playwright (its own browser download cannot work offline;
docs/decisions/0006-viewer-plain-files-debian-chromium.md).

A missing browser skips the browser tests with the reason, unless MICDR_REQUIRE_SERVICES=1
(scripts/test, CI), where it fails them, as a missing engine fails the integration tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests._services import services_required

ROOT = Path(__file__).resolve().parents[2]
INSTALL = "apt-get install -y chromium (scripts/test does it on Debian)"


def chromium_path() -> str:
    """The Chromium executable (MICDR_TEST_CHROMIUM, else `chromium` on the PATH)."""
    path = os.environ.get("MICDR_TEST_CHROMIUM") or shutil.which("chromium")
    if path and Path(path).exists():
        return path
    reason = f"Chromium not found (no `chromium` on the PATH, MICDR_TEST_CHROMIUM unset): {INSTALL}"
    if services_required():
        pytest.fail(
            f"{reason}. MICDR_REQUIRE_SERVICES=1, so the browser tests must run; set"
            " MICDR_REQUIRE_SERVICES=0 to skip them.",
            pytrace=False,
        )
    pytest.skip(reason)


def artifacts_dir() -> Path:
    """Where screenshots go: MICDR_TEST_ARTIFACTS, else test-artifacts/viewer (gitignored)."""
    folder = Path(os.environ.get("MICDR_TEST_ARTIFACTS") or ROOT / "test-artifacts") / "viewer"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
