"""The benchmark's episode-lag probe (bench/workloads.py) against the embedded app: it expects
one imaging episode per generated Bundle, whatever the Bundle holds (a pending order, an
amended report, an addendum), and counts them through the analysts' API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient

from app.main import create_app
from app.settings import load_settings
from bench.generate import Episode, generate
from bench.workloads import episode_count, wait_episodes
from tests.conformance.conftest import indexed

BASE = "http://micdr.local/fhir"


def _types(episode: Episode) -> list[str]:
    return [e["resource"]["resourceType"] for e in episode.bundle["entry"]]


def _reports(episode: Episode) -> list[dict[str, Any]]:
    return [
        e["resource"]
        for e in episode.bundle["entry"]
        if e["resource"]["resourceType"] == "DiagnosticReport"
    ]


def one_of_each_kind() -> list[Episode]:
    """A pending order (no study), an amended report, an addendum, a plain final report."""
    episodes = generate(3, 200).episodes
    kinds = {
        "pending": lambda e: "ImagingStudy" not in _types(e),
        "amended": lambda e: [r["status"] for r in _reports(e)] == ["amended"],
        "addendum": lambda e: len(_reports(e)) == 2,
        "final": lambda e: [r["status"] for r in _reports(e)] == ["final"],
    }
    return [next(e for e in episodes if test(e)) for test in kinds.values()]


async def test_each_generated_bundle_is_one_episode_in_the_count(tmp_path: Path) -> None:
    chosen = one_of_each_kind()
    settings = load_settings({"MICDR_DATA_DIR": str(tmp_path)})
    async with AsyncTestClient(app=create_app(settings), base_url="http://micdr.local") as client:
        assert await episode_count(client, BASE) == 0
        for episode in chosen:
            response = await client.post("/fhir", json=episode.bundle)
            assert response.status_code == 200, response.text
        await indexed(client)
        assert await episode_count(client, BASE) == 4
        found, at = await wait_episodes(client, BASE, 4, deadline=0.0)
        assert (found, at is not None) == (4, True)
        # a count that never comes: one poll, then the deadline answers None
        assert await wait_episodes(client, BASE, 5, deadline=0.0) == (4, None)
