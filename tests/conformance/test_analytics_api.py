"""The analysts' JSON API at /analytics/api (docs/index-schema.md, Imaging episodes) on every
deployment: the IG's three example episodes, submitted as the guide submits them, answered by
an aggregation in the deployment's episode index with exact figures; an amendment reaches the
figures; bad parameters are a 400 OperationOutcome; the analyst scope is required; `micdr
reindex` rebuilds the episodes from the store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.cli import CliError, _alerts, _reindex, _report
from app.main import create_app
from app.settings import load_settings
from indexing.engines.sqlite.episodes import SqliteEpisodeIndex
from tests.conformance._auth import secured_client, viewer
from tests.conformance._clients import strict_client
from tests.conformance._episodes import resource
from tests.conformance.conftest import episode, indexed

API = "/analytics/api"


async def submit_episodes(client: AsyncTestClient[Any]) -> None:
    for n in (1, 2, 3):
        response = await client.post("/fhir", json=episode(n))
        assert response.status_code == 200, response.text
    await indexed(client)


async def rows(client: AsyncTestClient[Any], question: str, **params: str) -> Any:
    response = await client.get(f"{API}/{question}", params=params)
    assert response.status_code == 200, response.text
    return response.json()["rows"]


async def test_the_three_ig_episodes_answer_every_question(client: AsyncTestClient[Any]) -> None:
    await submit_episodes(client)
    assert await rows(client, "volume") == [
        {"month": "2021-02", "modality": "DX", "performing_org_upi": None, "episodes": 1},
        {"month": "2022-09", "modality": "MR", "performing_org_upi": None, "episodes": 1},
        {"month": "2025-05", "modality": "MR", "performing_org_upi": None, "episodes": 1},
    ]
    assert await rows(client, "turnaround", modality="MR") == [
        {
            "modality": "MR",
            "episodes": 2,
            "order_to_exam_avg": 90.0,
            "exam_to_report_avg": 330.0,
            "order_to_report_avg": 420.0,
        }
    ]
    assert await rows(client, "repeats", start="2022-01-01") == [
        {"procedure_code": "MR-KNEE-L", "episodes": 2, "repeats": 0}
    ]
    assert await rows(client, "unreported") == []
    assert await rows(client, "amendments", end="2022-01-01") == [
        {"modality": "DX", "reported": 1, "amended": 0}
    ]


async def test_an_amended_report_is_counted(client: AsyncTestClient[Any]) -> None:
    await submit_episodes(client)
    amended = episode(1)  # the guide's amendment: the same bundle, the report amended
    report = resource(amended, "DiagnosticReport")
    report["status"] = "amended"
    report["issued"] = "2021-02-20T10:00:00-05:00"
    response = await client.post("/fhir", json=amended)
    assert response.status_code == 200, response.text
    await indexed(client)
    assert await rows(client, "amendments") == [
        {"modality": "DX", "reported": 1, "amended": 1},
        {"modality": "MR", "reported": 2, "amended": 0},
    ]


async def test_bad_parameters_are_a_precise_operation_outcome(
    client: AsyncTestClient[Any],
) -> None:
    cases = [
        ("volume?start=2026-13-01", 400, "start must be a date YYYY-MM-DD"),
        ("volume?days=0", 400, "days must be a whole number from 1 to 3650"),
        ("volume?colour=red", 400, "unknown parameter 'colour'"),
        ("volume?modality=CT&modality=MR", 400, "parameter 'modality' given 2 times"),
        ("volume?start=2026-02-01&end=2026-01-01", 400, "end must be after start"),
        ("weather", 404, "unknown question 'weather'"),
    ]
    for path, status, diagnostics in cases:
        response = await client.get(f"{API}/{path}")
        assert response.status_code == status, (path, response.text)
        body = response.json()
        assert body["resourceType"] == "OperationOutcome"
        assert body["issue"][0]["diagnostics"].startswith(diagnostics), (path, body)


async def test_the_api_lists_its_questions(client: AsyncTestClient[Any]) -> None:
    response = await client.get(API)
    assert response.status_code == 200
    assert [q["name"] for q in response.json()["questions"]] == [
        "volume",
        "turnaround",
        "unreported",
        "repeats",
        "amendments",
    ]


async def test_the_analyst_scope_is_required(tmp_path: Path) -> None:
    async with secured_client("embedded", tmp_path) as client:
        assert (await client.get(f"{API}/volume")).status_code == 401
        refused = await client.get(f"{API}/volume", headers=viewer("user/*.rs"))
        assert refused.status_code == 403
        assert "micdr/analytics.read" in refused.json()["issue"][0]["diagnostics"]
        allowed = await client.get(f"{API}/volume", headers=viewer("micdr/analytics.read"))
        assert allowed.status_code == 200
        assert allowed.json()["rows"] == []


async def test_micdr_reindex_rebuilds_the_episodes_from_the_store(tmp_path: Path) -> None:
    settings = load_settings({"MICDR_DATA_DIR": str(tmp_path)})
    async with strict_client(create_app(settings)) as client:
        await submit_episodes(client)
        before = await rows(client, "volume")
    assert len(before) == 3
    episodes = await SqliteEpisodeIndex.open(settings.sqlite_index_path)
    await episodes.begin_rebuild("2026-12-01T09:00:00.000Z")  # a rebuild that died at once
    await episodes.close()
    async with strict_client(create_app(settings)) as client:
        assert await rows(client, "volume") == []
        health = (await client.get("/health")).json()["episodes"]
        assert health["rebuilding_since"] == "2026-12-01T09:00:00.000Z"
        assert health["rebuilding_seconds"] > 0
        assert health["oldest_unreflected_commit"] is None  # the projection is not behind
    await _reindex(settings, [], [], tmp_path / "checkpoint.json")
    async with strict_client(create_app(settings)) as client:
        assert await rows(client, "volume") == before
        assert (await client.get("/health")).json()["episodes"] == CURRENT


CURRENT = {
    "up": True,
    "oldest_unreflected_commit": None,
    "lag_seconds": 0.0,
    "rebuilding_since": None,
    "rebuilding_seconds": 0.0,
}


async def test_health_reports_the_episodes_current_once_the_projection_is(
    client: AsyncTestClient[Any],
) -> None:
    await submit_episodes(client)  # waits for no unindexed commit
    assert (await client.get("/health")).json()["episodes"] == CURRENT
    assert len(await rows(client, "volume")) == 3


def order_only(n: int) -> dict[str, Any]:
    bundle = episode(n)
    bundle["entry"] = [
        e
        for e in bundle["entry"]
        if e["resource"]["resourceType"] not in ("ImagingStudy", "DiagnosticReport")
    ]
    return bundle


async def test_an_alert_fires_for_an_old_order_and_clears_when_its_exam_is_reported(
    client: AsyncTestClient[Any],
) -> None:
    assert (await client.post("/fhir", json=order_only(1))).status_code == 200
    await indexed(client)
    response = await client.get(f"{API}/alerts")
    assert response.status_code == 200, response.text
    [alert] = response.json()["alerts"]
    assert {k: alert[k] for k in ("rule", "status", "value")} == {
        "rule": "order-without-study",
        "status": "ordered",
        "value": "2021-02-16T13:00:00Z",
    }
    assert (await client.post("/fhir", json=episode(1))).status_code == 200
    await indexed(client)
    assert (await client.get(f"{API}/alerts")).json()["alerts"] == []
    refused = await client.get(f"{API}/alerts", params={"rule": "x"})
    assert refused.status_code == 400


async def test_micdr_alerts_prints_json_lines(tmp_path: Path) -> None:
    settings = load_settings({"MICDR_DATA_DIR": str(tmp_path)})
    async with strict_client(create_app(settings)) as client:
        assert (await client.post("/fhir", json=order_only(2))).status_code == 200
        await indexed(client)
    [line] = await _alerts(settings)
    assert json.loads(line)["rule"] == "order-without-study"
    bad = load_settings({"MICDR_DATA_DIR": str(tmp_path), "MICDR_ALERT_RULES": "[{}]"})
    with pytest.raises(CliError, match="MICDR_ALERT_RULES: alert rule 1 must have exactly"):
        await _alerts(bad)


async def test_micdr_report_writes_the_months_figures(tmp_path: Path) -> None:
    settings = load_settings({"MICDR_DATA_DIR": str(tmp_path)})
    async with strict_client(create_app(settings)) as client:
        await submit_episodes(client)
    html = await _report(settings, "2022-09")
    assert "<h1>miCDR imaging report — 2022-09</h1>" in html
    assert "<tr><td>2022-09</td><td>MR</td><td>—</td><td>1</td></tr>" in html
    assert "<tr><td>MR</td><td>1</td><td>1.5</td><td>5.5</td><td>7.0</td></tr>" in html
    assert "2021-02" not in html  # another month's episode
    assert html.count("<svg") == 2
    with pytest.raises(CliError, match="--period must be a month YYYY-MM, got '2022-13'"):
        await _report(settings, "2022-13")
