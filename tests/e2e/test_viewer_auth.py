"""The viewer on a server with authentication on (docs/security.md, docs/viewer.md): without a
token the page says 401 and asks for one; a token whose scopes do not cover the imaging types
gets the 403 message; a sufficient token shows the record, and it is kept for the tab only
(sessionStorage), never in localStorage or another tab. Embedded deployment: authentication
is the same layer on both."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conformance._auth import ISSUER, ORG_A, auth_env, token
from tests.e2e._browser import artifacts_dir
from tests.e2e._records import EPISODES, IG_SYSTEMS, ClinicalPatient, clinical_patient
from tests.e2e._server import Server, running_server, submit

TOKEN_KEY = "micdr-viewer-token"


@pytest.fixture(scope="module")
def secured(
    tmp_path_factory: pytest.TempPathFactory, browser: Browser
) -> Iterator[tuple[Server, ClinicalPatient]]:
    folder: Path = tmp_path_factory.mktemp("secured")
    patient = clinical_patient()
    with running_server("embedded", folder, auth_env(folder, **IG_SYSTEMS)) as server:
        writer = token("system/*.cruds", org=ORG_A, client_id=f"client-{ORG_A}")
        submit(server, patient.first, writer)
        yield server, patient


def use_token(page: Page, value: str) -> None:
    page.fill("#token", value)
    page.click("#token-form button[type=submit]")
    expect(page.locator("#token-state")).to_have_text("A token is set for this tab.")


def find_by_hcn(page: Page, patient: ClinicalPatient) -> None:
    page.select_option("#id-system", patient.hcn[0])
    page.fill("#id-value", patient.hcn[1])
    page.click("#by-identifier button[type=submit]")


def expect_error(page: Page, status: int, pattern: str, screenshot: str) -> None:
    """The error box shows `pattern` (a regular expression) for `status`; screenshot it."""
    error = page.locator("#error")
    expect(error).to_have_text(re.compile(pattern))
    expect(error).to_have_attribute("data-status", str(status))
    page.screenshot(path=str(artifacts_dir() / screenshot), full_page=True)


def test_without_a_token_the_page_says_401_and_asks_for_one(
    page: Page, secured: tuple[Server, ClinicalPatient]
) -> None:
    server, patient = secured
    page.goto(f"{server.url}/viewer/")
    expect(page.locator("#access")).to_be_visible()
    expect(page.locator("#issuer")).to_have_text(ISSUER)
    expect(page.locator("#token-state")).to_have_text("No token set.")
    find_by_hcn(page, patient)
    expect_error(
        page,
        401,
        r"^Not signed in \(HTTP 401\): the server needs a valid bearer token\. Paste one"
        r" under “Access token” and search again\. Server says: .+",
        "auth-401.png",
    )
    expect(page.locator("#token")).to_be_focused()


def test_a_token_without_imaging_scopes_gets_the_403_message(
    page: Page, secured: tuple[Server, ClinicalPatient]
) -> None:
    server, patient = secured
    page.goto(f"{server.url}/viewer/")
    use_token(page, token("user/Patient.rs"))
    find_by_hcn(page, patient)
    # the four searches run together: whichever is refused first is reported
    expect_error(
        page,
        403,
        r"^Access refused \(HTTP 403\): your token does not allow reading this record\."
        r" Server says: the token's scopes do not allow search"
        r" (ServiceRequest|ImagingStudy|DiagnosticReport|DocumentReference)$",
        "auth-403.png",
    )
    expect(page.locator("#results")).to_be_hidden()


def test_a_sufficient_token_shows_the_record_and_stays_in_this_tab_only(
    page: Page, secured: tuple[Server, ClinicalPatient]
) -> None:
    server, patient = secured
    page.goto(f"{server.url}/viewer/")
    value = token("user/*.rs")
    use_token(page, value)
    expect(page.locator("#token")).to_have_value("")  # not left in the field
    find_by_hcn(page, patient)
    expect(page.locator("[data-testid=episode]")).to_have_count(EPISODES)
    assert page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") == value
    assert page.evaluate("localStorage.length") == 0
    page.reload()
    expect(page.locator("#token-state")).to_have_text("A token is set for this tab.")
    tab = page.context.new_page()  # another tab of the same browser
    tab.goto(f"{server.url}/viewer/")
    expect(tab.locator("#token-state")).to_have_text("No token set.")
    tab.close()
    page.click("#forget-token")
    expect(page.locator("#token-state")).to_have_text("No token set.")
    assert page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") is None
