"""tests/e2e/_browser.py: a missing Chromium skips the browser tests with the reason, and fails
them when MICDR_REQUIRE_SERVICES=1 (scripts/test, CI), like a missing engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e._browser import chromium_path


def test_a_missing_chromium_fails_when_the_services_are_required(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MICDR_TEST_CHROMIUM", str(tmp_path / "no-chromium"))
    monkeypatch.setenv("MICDR_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="the browser tests must run"):
        chromium_path()


def test_a_missing_chromium_skips_with_how_to_install_it_otherwise(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MICDR_TEST_CHROMIUM", str(tmp_path / "no-chromium"))
    monkeypatch.setenv("MICDR_REQUIRE_SERVICES", "0")
    with pytest.raises(pytest.skip.Exception, match=r"apt-get install -y chromium"):
        chromium_path()


def test_a_configured_chromium_is_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    browser = tmp_path / "chromium"
    browser.write_text("")
    monkeypatch.setenv("MICDR_TEST_CHROMIUM", str(browser))
    assert chromium_path() == str(browser)
