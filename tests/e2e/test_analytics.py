"""The analysts' dashboard at /analytics (issue 20, docs/index-schema.md, Imaging episodes) in a
real browser against a real server, on the embedded deployment and on the full stack: the IG's
three episodes and an order still waiting for its exam, drawn as charts and tables; the alert
that order raises; the modality and period filters; an error from the API shown as its message;
the page `micdr report` writes, rendered and captured as PNG. Screenshots go to the test
artefacts (`analytics/` beside the viewer's)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from app.cli import _report
from tests._data import IG_EPISODES
from tests.e2e._browser import artifacts_dir
from tests.e2e._records import IG_SYSTEMS
from tests.e2e._server import Server, run_apart, running_server, submit
from tests.e2e.conftest import DEPLOYMENTS


@pytest.fixture(scope="module", params=DEPLOYMENTS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, browser: Browser
) -> Iterator[tuple[str, Server]]:
    deployment: str = request.param
    with running_server(deployment, tmp_path_factory.mktemp(deployment), IG_SYSTEMS) as running:
        bundles = [json.loads(path.read_text()) for path in IG_EPISODES]
        pending = json.loads(IG_EPISODES[0].read_text())  # an order whose exam never came
        pending["entry"] = [
            e
            for e in pending["entry"]
            if e["resource"]["resourceType"] not in ("ImagingStudy", "DiagnosticReport")
        ]
        order = next(
            e for e in pending["entry"] if e["resource"]["resourceType"] == "ServiceRequest"
        )
        order["resource"]["identifier"][0]["value"] = "ACC-PENDING"
        order["resource"]["identifier"] = order["resource"]["identifier"][:1]
        order["request"]["url"] = (
            "ServiceRequest?identifier=https://example.org/fhir/NamingSystem/"
            "hospital-a-accession|ACC-PENDING"
        )
        submit(running, [*bundles, pending])
        yield deployment, running


def shot(page: Page, deployment: str, state: str) -> None:
    folder: Path = artifacts_dir().parent / "analytics"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{deployment}-{state}.png"), full_page=True)


def cells(page: Page, table: str) -> list[list[str]]:
    """The cells of a table by id (or of the table a CSS selector names)."""
    rows = page.locator(f"{table if ' ' in table else '#' + table} tbody tr")
    return [rows.nth(i).locator("td").all_inner_texts() for i in range(rows.count())]


def open_dashboard(page: Page, server: Server) -> None:
    page.goto(f"{server.url}/analytics/")
    expect(page.locator("body")).to_have_attribute("data-loaded", "yes")


def test_the_dashboard_draws_every_question(page: Page, server: tuple[str, Server]) -> None:
    deployment, running = server
    open_dashboard(page, running)
    assert cells(page, "volume-table") == [
        ["2021-02", "DX", "—", "2"],
        ["2022-09", "MR", "—", "1"],
        ["2025-05", "MR", "—", "1"],
    ]
    assert page.locator("#volume-chart svg rect").count() == 3  # a bar per month
    [alert] = cells(page, "alerts-table")
    assert [alert[0], alert[2], alert[3], alert[5]] == [
        "order-without-study",
        "ordered",
        "DX",
        "2021-02-16T13:00:00Z",
    ]
    assert cells(page, "turnaround-table") == [
        ["DX", "2", "1.5", "5.5", "7.0"],  # the pending order has no times to average
        ["MR", "2", "1.5", "5.5", "7.0"],
    ]
    assert page.locator("#turnaround-chart svg rect").count() == 4
    assert cells(page, "unreported-table") == [["DX", "1"]]
    assert cells(page, "repeats-table") == [
        ["MR-KNEE-L", "2", "0", "0 %"],
        ["XR-CHEST", "2", "1", "50 %"],  # the pending order repeats the chest X-ray
    ]
    assert cells(page, "amendments-table") == [["DX", "1", "0", "0 %"], ["MR", "2", "0", "0 %"]]
    shot(page, deployment, "all")


def test_the_filters_narrow_every_chart_and_table(page: Page, server: tuple[str, Server]) -> None:
    deployment, running = server
    open_dashboard(page, running)
    page.fill("#modality", "MR")
    page.fill("#start", "2023-01-01")
    page.click("#filters button[type=submit]")
    expect(page.locator("#volume-table tbody tr")).to_have_count(1)
    assert cells(page, "volume-table") == [["2025-05", "MR", "—", "1"]]
    assert page.locator("#volume-chart svg rect").count() == 1
    assert cells(page, "repeats-table") == [["MR-KNEE-L", "1", "0", "0 %"]]
    shot(page, deployment, "filtered")


def test_an_api_error_is_shown_as_its_message(page: Page, server: tuple[str, Server]) -> None:
    deployment, running = server
    open_dashboard(page, running)
    page.fill("#modality", "M R")  # not a code
    page.click("#filters button[type=submit]")
    expect(page.locator("body")).to_have_attribute("data-loaded", "error")
    expect(page.locator("#state")).to_have_text(
        "modality must be a code of 1-64 letters, digits, '.', '_', '-'"
    )
    shot(page, deployment, "error")


def test_the_monthly_report_renders_in_the_browser(page: Page, server: tuple[str, Server]) -> None:
    deployment, running = server
    html = run_apart(lambda: _report(running.settings, "2021-02"))
    folder = artifacts_dir().parent / "analytics"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{deployment}-report-2021-02.html"
    path.write_text(html, encoding="utf-8")
    page.goto(path.as_uri())
    expect(page.locator("h1")).to_have_text("miCDR imaging report — 2021-02")
    assert page.locator("svg rect").count() == 2  # one bar each: exams, waits
    assert cells(page, "section:first-of-type table") == [["2021-02", "DX", "—", "2"]]
    png = folder / f"{deployment}-report.png"
    page.screenshot(path=str(png), full_page=True)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pdf = folder / f"{deployment}-report.pdf"  # printed, as a manager files it
    page.pdf(path=str(pdf), format="A4", print_background=True)
    assert pdf.read_bytes()[:5] == b"%PDF-"
