"""Fixtures of the browser tests: one Chromium per session, and per deployment one server with
the IG episodes and the generated patients loaded (tests/e2e/_records.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright

from tests._data import IG_EPISODES
from tests.e2e._browser import artifacts_dir, chromium_path
from tests.e2e._records import IG_SYSTEMS, ClinicalPatient, clinical_patient, namesake
from tests.e2e._server import Server, running_server, submit

DEPLOYMENTS = ["embedded", pytest.param("full", marks=pytest.mark.integration)]
TABLET: ViewportSize = {"width": 1024, "height": 1366}  # a tablet in portrait


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for one test module. Not for the session: the sync Playwright keeps an event
    loop running on the main thread while it is open, which would break every asyncio test
    collected after tests/e2e."""
    executable = chromium_path()
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@dataclass(frozen=True)
class Record:
    deployment: str
    server: Server
    patient: ClinicalPatient
    folder: Path  # this deployment's screenshots

    def shot(self, page: Page, state: str) -> None:
        page.screenshot(path=str(self.folder / f"{self.deployment}-{state}.png"), full_page=True)


@pytest.fixture(scope="module", params=DEPLOYMENTS)
def record(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, browser: Browser
) -> Iterator[Record]:
    """The server of one deployment, loaded (after `browser`: no browser, no loading)."""
    deployment: str = request.param
    patient = clinical_patient()
    with running_server(deployment, tmp_path_factory.mktemp(deployment), IG_SYSTEMS) as server:
        episodes = [json.loads(path.read_text()) for path in IG_EPISODES]
        submit(server, [*episodes, *patient.first])
        # the correction arrives later, as a second version of the report
        submit(server, [patient.correction, namesake(patient)])
        yield Record(deployment, server, patient, artifacts_dir())


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A tablet-sized tab; the test fails if the page broke its own Content-Security-Policy."""
    context = browser.new_context(viewport=TABLET)
    opened = context.new_page()
    refused: list[str] = []
    opened.on(
        "console",
        lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
    )
    try:
        yield opened
    finally:
        context.close()
    assert refused == []
