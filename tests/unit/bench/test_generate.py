"""The benchmark's data generator (bench/generate.py): deterministic for a seed, valid R4, and
accepted by the IG rules (a Submit MI Bundle answered 200 with every entry created)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from litestar.testing import AsyncTestClient

from app.fhir.validate import validate_resource
from app.main import create_app
from app.settings import load_settings
from bench.generate import ADDENDUM_OF, flatten, generate, write


def test_the_same_seed_generates_the_same_bundles() -> None:
    first, again, other = generate(7, 40), generate(7, 40), generate(8, 40)
    dump = [orjson.dumps(e.bundle) for e in first.episodes]
    assert dump == [orjson.dumps(e.bundle) for e in again.episodes]
    assert dump != [orjson.dumps(e.bundle) for e in other.episodes]
    assert first.patients == again.patients


def test_episodes_have_the_ig_shape() -> None:
    data = generate(3, 200)
    types = {e["resource"]["resourceType"] for ep in data.episodes for e in ep.bundle["entry"]}
    assert types == {
        "Patient",
        "Organization",
        "Practitioner",
        "ServiceRequest",
        "Endpoint",
        "ImagingStudy",
        "DiagnosticReport",
    }
    reports = [
        e["resource"]
        for ep in data.episodes
        for e in ep.bundle["entry"]
        if e["resource"]["resourceType"] == "DiagnosticReport"
    ]
    assert any(r["status"] == "amended" for r in reports)
    assert any(x["url"] == ADDENDUM_OF for r in reports for x in r.get("extension", []))
    for episode in data.episodes:
        for entry in episode.bundle["entry"]:
            assert entry["request"]["method"] == "PUT"
            assert "?identifier=" in entry["request"]["url"]
            assert entry["fullUrl"].startswith("urn:uuid:")
    organizations = {
        e["request"]["url"]
        for ep in data.episodes
        for e in ep.bundle["entry"]
        if e["resource"]["resourceType"] == "Organization"
    }
    assert 1 < len(organizations) < len(data.patients)  # shared across patients


def test_bundles_and_flat_resources_are_valid_r4() -> None:
    data = generate(5, 60)
    for episode in data.episodes:
        validate_resource(episode.bundle)
    flat = flatten(data)
    assert len({(r["resourceType"], r["id"]) for r in flat}) == len(flat)
    for resource in flat:
        validate_resource(resource)
        assert "urn:uuid:" not in orjson.dumps(resource).decode()


def test_write_gives_bundle_files_and_ndjson(tmp_path: Path) -> None:
    bundles, ndjson = write(generate(2, 5), tmp_path)
    assert sorted(bundles.glob("*.json"))
    lines = (ndjson / "Patient.ndjson").read_bytes().splitlines()
    assert len(lines) == 5
    assert orjson.loads(lines[0])["resourceType"] == "Patient"


async def test_generated_episodes_pass_the_ig_rules(tmp_path: Path) -> None:
    data = generate(11, 6)
    settings = load_settings({"MICDR_DATA_DIR": str(tmp_path)})
    async with AsyncTestClient(app=create_app(settings), base_url="http://micdr.local") as client:
        first: dict[str, Any] = {}
        for n, episode in enumerate(data.episodes[:4]):
            response = await client.post("/fhir", json=episode.bundle)
            assert response.status_code == 200, response.text
            statuses = {e["response"]["status"] for e in response.json()["entry"]}
            if n == 0:
                first = response.json()
                assert statuses == {"201 Created"}
            else:  # shared Organizations/Practitioners are found, not duplicated
                assert statuses <= {"201 Created", "200 OK"}
        assert len(first["entry"]) == data.episodes[0].resources
