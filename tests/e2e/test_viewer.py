"""The clinicians' page at /viewer (issue 19, docs/viewer.md) in a real browser against a real
server, on the embedded deployment and on the full stack: finding the patient, the timeline's
content, corrections and addenda, the image link, filters, the print view, the few searches it
makes, and its messages while loading and on errors. Screenshots of each state go to the test
artefacts (tests/e2e/_browser.py `artifacts_dir`)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from playwright.sync_api import Page, Route, expect

from tests._data import ig_episode_path
from tests.e2e._records import (
    AMENDED_CONCLUSION,
    EPISODES,
    FIRST_CONCLUSION,
    HOSTILE_URL,
    REPORT_PDF,
    ClinicalPatient,
    busy_patient,
    entries,
    identifier,
    resource,
)
from tests.e2e._server import submit
from tests.e2e.conftest import Record

HCN_SYSTEM = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn"


def open_viewer(page: Page, record: Record) -> None:
    page.goto(f"{record.server.url}/viewer/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")


def find(page: Page, system: str, value: str) -> None:
    page.select_option("#id-system", system)
    page.fill("#id-value", value)
    page.click("#by-identifier button[type=submit]")


def wait_timeline(page: Page) -> None:
    expect(page.locator("#results")).to_be_visible()
    expect(page.locator("#main")).to_have_attribute("aria-busy", "false")


def open_record(page: Page, record: Record) -> None:
    """The page, with the clinical patient's timeline found by HCN."""
    open_viewer(page, record)
    find(page, *record.patient.hcn)
    wait_timeline(page)


def episode_date(bundle: dict[str, Any]) -> str:
    studies = entries(bundle, "ImagingStudy")
    if studies:
        return str(studies[0]["resource"]["started"])
    return str(resource(bundle, "ServiceRequest")["authoredOn"])


def expected_headings(bundles: list[dict[str, Any]]) -> list[str]:
    """Newest first: '<date> <procedure>' as each episode's heading reads."""
    ordered = sorted(bundles, key=lambda b: datetime.fromisoformat(episode_date(b)), reverse=True)
    return [
        f"{episode_date(b)[:10]} {resource(b, 'ServiceRequest')['code']['coding'][0]['display']}"
        for b in ordered
    ]


def episode_of(page: Page, accession: str) -> Any:
    """The episode whose order carries `accession`."""
    return page.locator("[data-testid=episode]").filter(
        has=page.locator("[data-testid=order]").filter(has=page.get_by_text(accession, exact=True))
    )


def bundle_of(patient: ClinicalPatient, accession: str) -> dict[str, Any]:
    return next(b for b in patient.first if identifier(b, "ServiceRequest", "ACSN")[1] == accession)


def wado_link(bundle: dict[str, Any]) -> str:
    study = resource(bundle, "ImagingStudy")
    uid = study["identifier"][0]["value"].removeprefix("urn:oid:")
    return f"{resource(bundle, 'Endpoint')['address']}/studies/{uid}"


def test_finding_by_hcn_shows_every_episode_newest_first(page: Page, record: Record) -> None:
    patient = record.patient
    open_viewer(page, record)
    record.shot(page, "start")
    find(page, *patient.hcn)
    wait_timeline(page)
    family, given = patient.name
    expect(page.locator("#patient-h")).to_have_text(f"{given} {family}")
    headings = page.locator("[data-testid=episode] > h3")
    expect(headings).to_have_text(expected_headings(patient.first))
    expect(page.locator("#summary")).to_have_text(f"{EPISODES} imaging episodes, newest first.")
    states = page.locator("[data-testid=episode-state]").all_inner_texts()
    assert sorted(states) == sorted(
        [
            "Pending order: no study yet",
            "Study done: report pending",
            "Reported · report changed",
            *["Reported"] * 3,
        ]
    )
    record.shot(page, "timeline")


def test_finding_by_mrn_opens_the_same_record(page: Page, record: Record) -> None:
    patient = record.patient
    open_viewer(page, record)
    find(page, *patient.mrn)
    wait_timeline(page)
    expect(page.locator("[data-testid=episode]")).to_have_count(EPISODES)
    facts = page.locator("#patient-facts")
    expect(facts).to_contain_text(patient.mrn[1])
    expect(facts).to_contain_text(patient.hcn[1])
    expect(facts).to_contain_text(patient.birth_date)


def test_a_pending_order_shows_as_pending_with_its_order_only(page: Page, record: Record) -> None:
    patient = record.patient
    open_record(page, record)
    pending = episode_of(page, patient.pending_accession)
    expect(pending.locator("[data-testid=episode-state]")).to_have_text(
        "Pending order: no study yet"
    )
    expect(pending.locator("[data-testid=order] .badge")).to_have_text("active")
    expect(pending.locator("[data-testid=study]")).to_have_count(0)
    expect(pending.locator("[data-testid=report]")).to_have_count(0)


def test_a_study_without_its_report_shows_the_report_pending(page: Page, record: Record) -> None:
    open_record(page, record)
    waiting = episode_of(page, record.patient.unreported_accession)
    expect(waiting.locator("[data-testid=episode-state]")).to_have_text(
        "Study done: report pending"
    )
    expect(waiting.locator("[data-testid=study]")).to_have_count(1)
    expect(waiting.locator("[data-testid=report]")).to_have_count(0)
    page.select_option("#f-status", "awaiting-report")
    expect(page.locator("[data-testid=episode]:visible")).to_have_count(1)


def test_an_amended_report_shows_when_it_changed_and_the_difference(
    page: Page, record: Record
) -> None:
    patient = record.patient
    open_record(page, record)
    amended = episode_of(page, patient.amended_accession)
    report = amended.locator("[data-testid=report]")
    expect(report.locator("h4 .badge")).to_have_text("amended")
    change = report.locator("[data-testid=change]")
    expect(change.locator(".change-title")).to_have_text(
        re.compile(
            r"^Amended report — changed on \d{4}-\d\d-\d\d \d\d:\d\d UTC \(version 1 → 2\)\.$"
        )
    )
    conclusion = change.locator("dd[data-field=Conclusion]")
    assert conclusion.locator("del").all_text_contents() == ["[removed: Right]"]
    assert conclusion.locator("ins").all_text_contents() == [
        "[added: Left]",
        "[added:  Amended: laterality corrected.]",
    ]
    expect(change.locator("dd[data-field=Status]")).to_have_text("final → amended")
    expect(report.locator("[data-testid=conclusion]")).to_have_text(
        f"Conclusion: {AMENDED_CONCLUSION}"
    )
    assert FIRST_CONCLUSION.startswith("Right")
    amended.scroll_into_view_if_needed()
    record.shot(page, "amended")


def test_an_addendum_is_attached_to_its_report(page: Page, record: Record) -> None:
    patient = record.patient
    open_record(page, record)
    episode = episode_of(page, patient.addendum_accession)
    expect(episode.locator("[data-testid=report]")).to_have_count(1)
    addendum = episode.locator("[data-testid=report] [data-testid=addendum]")
    expect(addendum.locator("h4")).to_have_text("Addendum final")
    expect(addendum.locator("[data-testid=conclusion]")).to_have_text(
        "Conclusion: Addendum: comparison with outside study reviewed; no change."
    )
    episode.scroll_into_view_if_needed()
    record.shot(page, "addendum")


def test_each_study_links_to_its_images_through_its_endpoint(page: Page, record: Record) -> None:
    patient = record.patient
    open_record(page, record)
    for bundle in patient.first[1:]:
        accession = identifier(bundle, "ServiceRequest", "ACSN")[1]
        study = episode_of(page, accession).locator("[data-testid=study]")
        link = study.locator("a.image-link")
        expect(link).to_have_text("Open images (WADO-RS)")
        expect(link).to_have_attribute("href", wado_link(bundle))
        instances = resource(bundle, "ImagingStudy")["numberOfInstances"]
        series = resource(bundle, "ImagingStudy")["numberOfSeries"]
        expect(study).to_contain_text(f"{series} series, {instances} images")


def test_the_ig_episodes_read_as_their_bundles_say(page: Page, record: Record) -> None:
    open_viewer(page, record)
    for n in (1, 2, 3):
        bundle = json.loads(ig_episode_path(n).read_text())
        find(page, *identifier(bundle, "Patient", "MR"))
        wait_timeline(page)
        expect(page.locator("[data-testid=episode] > h3")).to_have_text(expected_headings([bundle]))
        report = resource(bundle, "DiagnosticReport")
        expect(page.locator("[data-testid=report] h4 .badge")).to_have_text(report["status"])
        expect(page.locator("[data-testid=conclusion]")).to_have_text(
            f"Conclusion: {report['conclusion']}"
        )
        expect(page.locator("a.image-link")).to_have_attribute("href", wado_link(bundle))
        record.shot(page, f"ig-episode-{n}")


def test_a_name_and_birth_date_search_lists_the_matches_to_choose(
    page: Page, record: Record
) -> None:
    patient = record.patient
    open_viewer(page, record)
    page.fill("#family", patient.name[0])
    page.fill("#birthdate", patient.birth_date)
    page.click("#by-name button[type=submit]")
    choices = page.locator("#match-list button")
    expect(choices).to_have_count(2)
    record.shot(page, "matches")
    choices.filter(has_text=patient.mrn[1]).click()
    wait_timeline(page)
    expect(page.locator("[data-testid=episode]")).to_have_count(EPISODES)
    page.click("#by-name button[type=submit]")
    choices.filter(has_text="MRN-NAMESAKE-1").click()
    wait_timeline(page)
    expect(page.locator("#timeline")).to_have_text(
        "No imaging episodes on record for this patient."
    )


def test_filters_narrow_the_timeline_and_reset_restores_it(page: Page, record: Record) -> None:
    patient = record.patient
    open_record(page, record)
    visible = page.locator("[data-testid=episode]:visible")
    page.select_option("#f-status", "pending")
    expect(visible).to_have_count(1)
    expect(page.locator("#summary")).to_have_text(
        f"Showing 1 of {EPISODES} imaging episodes (filtered)."
    )
    page.select_option("#f-status", "changed")
    expect(visible).to_have_count(1)
    expect(visible.locator("[data-testid=order]")).to_contain_text(patient.amended_accession)
    page.select_option("#f-status", "")
    modality = resource(bundle_of(patient, patient.amended_accession), "ImagingStudy")
    code = modality["modality"][0]["code"]
    with_code = [
        b for b in patient.first[1:] if resource(b, "ImagingStudy")["modality"][0]["code"] == code
    ]
    page.select_option("#f-modality", code)
    expect(visible).to_have_count(len(with_code))
    page.click("#filters button[type=reset]")
    newest = expected_headings(patient.first)[0][:10]
    page.fill("#f-from", newest)
    expect(visible).to_have_count(1)
    record.shot(page, "filtered")
    page.click("#filters button[type=reset]")
    expect(visible).to_have_count(EPISODES)


def test_the_print_view_keeps_the_record_and_drops_the_controls(page: Page, record: Record) -> None:
    open_record(page, record)
    page.emulate_media(media="print")
    expect(page.locator("#filters")).to_be_hidden()
    expect(page.locator("#by-identifier")).to_be_hidden()
    expect(page.locator("[data-testid=episode]")).to_have_count(EPISODES)
    record.shot(page, "print")


def test_the_record_comes_from_a_few_searches_not_a_read_per_resource(
    page: Page, record: Record
) -> None:
    asked: list[str] = []
    page.on(
        "request",
        lambda r: (
            asked.append(r.url.split("/fhir/", 1)[1].split("?")[0]) if "/fhir/" in r.url else None
        ),
    )
    open_record(page, record)
    history = [a for a in asked if a.endswith("/_history")]
    assert len(history) == 1 and history[0].startswith("DiagnosticReport/")
    assert sorted(a for a in asked if not a.endswith("/_history")) == [
        "DiagnosticReport",
        "DocumentReference",
        "ImagingStudy",
        "Patient",
        "ServiceRequest",
    ]


def test_an_unknown_number_says_no_patient_matches(page: Page, record: Record) -> None:
    open_viewer(page, record)
    find(page, HCN_SYSTEM, "0000000000")
    expect(page.locator("#status")).to_have_text(
        "No patient matches this search. Check the number, or search by name and birth date."
    )
    expect(page.locator("#results")).to_be_hidden()


def _fail_with(status: int, diagnostics: str):  # type: ignore[no-untyped-def]
    def answer(route: Route) -> None:
        route.fulfill(
            status=status,
            content_type="application/fhir+json",
            headers={"X-Request-Id": "req-e2e-1"},
            body=json.dumps(
                {
                    "resourceType": "OperationOutcome",
                    "issue": [
                        {"severity": "error", "code": "exception", "diagnostics": diagnostics}
                    ],
                }
            ),
        )

    return answer


def test_a_server_failure_and_a_missing_endpoint_are_explained(page: Page, record: Record) -> None:
    """A 503 and a 404 cannot be provoked on a healthy server, so the browser answers them."""
    open_viewer(page, record)
    page.route("**/fhir/ImagingStudy?*", _fail_with(503, "index unavailable"))
    find(page, *record.patient.hcn)
    expect(page.locator("#error")).to_have_text(
        "The server failed (HTTP 503). Try again in a moment; if it persists, tell the"
        " administrator (request id req-e2e-1). Server says: index unavailable"
    )
    record.shot(page, "error-503")
    page.unroute("**/fhir/ImagingStudy?*")
    page.route("**/fhir/Patient?*", _fail_with(404, "no such endpoint"))
    find(page, *record.patient.hcn)
    expect(page.locator("#error")).to_have_text(
        "Not found (HTTP 404): the server has no such record or address."
        " Server says: no such endpoint"
    )


def test_a_loading_message_shows_until_the_record_arrives(page: Page, record: Record) -> None:
    held: list[Route] = []
    open_viewer(page, record)
    page.route("**/fhir/DiagnosticReport?*", lambda route: held.append(route))
    find(page, *record.patient.hcn)
    status = page.locator("#status")
    expect(status).to_have_text(re.compile(r"^Loading the imaging record of .+…$"))
    expect(page.locator("#main")).to_have_attribute("aria-busy", "true")
    record.shot(page, "loading")
    assert len(held) == 1
    held[0].continue_()
    wait_timeline(page)
    expect(status).to_have_text(
        re.compile(rf"^Loaded {EPISODES} episodes with 5 requests in \d+ ms")
    )


def test_a_patient_with_200_episodes_is_drawn_and_measured(page: Page, record: Record) -> None:
    """The rendering time is measured and reported (in the artefacts), not asserted: a shared CI
    machine's timing would make the test flaky. What is asserted is the content: all 200
    episodes, which takes following the paging (100 per page) of every search."""
    hcn, bundles = busy_patient(200)
    submit(record.server, bundles)
    open_viewer(page, record)
    find(page, *hcn)
    wait_timeline(page)
    expect(page.locator("[data-testid=episode]")).to_have_count(200)
    expect(page.locator("#summary")).to_have_text("200 imaging episodes, newest first.")
    expect(page.locator("body")).to_have_attribute("data-painted", "true")
    stats = page.evaluate("window.viewerStats")
    assert stats["episodes"] == 200
    assert stats["requests"] > 4  # more than one page per search
    report = {"deployment": record.deployment, **stats}
    (record.folder / f"{record.deployment}-render-200.json").write_text(json.dumps(report))
    print(f"\nviewer, 200 episodes on {record.deployment}: {json.dumps(stats)}")
    record.shot(page, "200-episodes")


def test_every_control_is_labelled_touch_sized_and_usable_from_the_keyboard(
    page: Page, record: Record
) -> None:
    open_viewer(page, record)
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
            .filter((e) => e.labels.length === 0 && !e.getAttribute('aria-label'))
            .map((e) => e.id)"""
    )
    assert unlabelled == []
    small = page.evaluate(
        """() => [...document.querySelectorAll('input, select, button')]
            .filter((e) => e.offsetParent && e.getBoundingClientRect().height < 44)
            .map((e) => e.id || e.textContent)"""
    )
    assert small == []  # touch targets of at least 44 px, for tablets
    for _ in range(10):  # skip link, then the first form's controls
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "id-system":
            break
    assert page.evaluate("document.activeElement.id") == "id-system"  # HCN is the first choice
    page.keyboard.press("Tab")
    page.keyboard.type(record.patient.hcn[1])
    page.keyboard.press("Enter")
    wait_timeline(page)
    expect(page.locator("#results")).to_be_focused()
    expect(page.locator("[data-testid=episode]")).to_have_count(EPISODES)


# WCAG 2 contrast of each text element against the first opaque background behind it.
CONTRAST = """(selector) => {
  const rgb = (c) => c.match(/[\\d.]+/g).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const back = (e) => {
    for (let n = e; n; n = n.parentElement) {
      const c = rgb(getComputedStyle(n).backgroundColor);
      if (c.length < 4 || c[3] === 1) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  return [...document.querySelectorAll(selector)].filter((e) => e.offsetParent).map((e) => {
    const [a, b] = [lum(rgb(getComputedStyle(e).color)), lum(back(e))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    return [e.className || e.tagName, Math.round(ratio * 10) / 10];
  });
}"""


def test_text_meets_the_wcag_aa_contrast_ratio(page: Page, record: Record) -> None:
    open_record(page, record)
    page.route("**/fhir/Patient?*", _fail_with(500, "boom"))
    measured = page.evaluate(
        CONTRAST,
        ".badge, .state, .hint, .facts dt, .facts dd, a, button, del, ins, .change p, h1, h2, h3",
    )
    assert len(measured) > 50
    low = [m for m in measured if m[1] < 4.5]
    assert low == []
    find(page, *record.patient.hcn)  # the error box too
    expect(page.locator("#error")).to_be_visible()
    error = page.evaluate(CONTRAST, "#error")
    assert len(error) == 1 and error[0][1] >= 4.5


def test_presented_forms_open_download_and_html_shows_in_a_sandbox(
    page: Page, record: Record
) -> None:
    open_record(page, record)
    report = episode_of(page, record.patient.documented_accession).locator("[data-testid=report]")
    html, pdf, hostile = report.locator(".attachments > li").all()
    expect(hostile).to_have_text(f"Hostile: not a web address, not linked ({HOSTILE_URL})")
    expect(hostile.locator("a")).to_have_count(0)
    expect(html.locator("a").first).to_have_text("Open Report")
    expect(html.locator("a[download]")).to_have_attribute("download", "Report")
    expect(pdf.locator("a").first).to_have_text("Open Report PDF")
    expect(pdf.locator("a[download]")).to_have_attribute("download", "Report_PDF")
    href = pdf.locator("a[download]").get_attribute("href")
    assert href is not None and href.startswith("blob:")
    fetched = page.evaluate("async (url) => await (await fetch(url)).text()", href)
    assert fetched.encode() == REPORT_PDF
    html.locator("summary").click()
    frame = html.locator("iframe")
    expect(frame).to_have_attribute("sandbox", "")
    inner = frame.content_frame
    expect(inner.locator("h1")).to_have_text("Imaging report")
    expect(inner.locator("p")).to_have_text("Findings: no focal abnormality.")
    report.scroll_into_view_if_needed()
    record.shot(page, "presented-form")


def test_a_late_answer_to_an_earlier_search_does_not_replace_the_later_one(
    page: Page, record: Record
) -> None:
    held: list[Route] = []
    hcn = record.patient.hcn[1]
    open_viewer(page, record)
    page.route(f"**/fhir/DiagnosticReport?*{hcn}*", lambda route: held.append(route))
    find(page, *record.patient.hcn)
    expect(page.locator("#status")).to_have_text(re.compile(r"^Loading the imaging record"))
    other = json.loads(ig_episode_path(1).read_text())
    find(page, *identifier(other, "Patient", "MR"))
    wait_timeline(page)
    expect(page.locator("[data-testid=episode] > h3")).to_have_text(expected_headings([other]))
    assert len(held) == 1
    held[0].continue_()
    page.wait_for_timeout(500)  # room for the late answer to be (wrongly) drawn
    expect(page.locator("[data-testid=episode] > h3")).to_have_text(expected_headings([other]))
    expect(page.locator("#patient-h")).to_have_text("Luc Tremblay")
