"""Shared fixtures for the indexing unit tests: one registry per session, example resources."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from indexing.registry import SearchParamRegistry

REPO = Path(__file__).resolve().parents[3]
R4_FIXTURES = REPO / "tests" / "fixtures" / "r4-examples"
DATA = REPO.parent / "shared" / "data"
if not DATA.exists():  # the work tree sits beside shared/ (CI: a copy beside the clone)
    DATA = Path("/work/shared/data")
EPISODES = sorted((DATA / "micdr-examples").glob("*.json"))
SYNTHEA = sorted((DATA / "synthea-r4").glob("*.json"))


def load_json(path: Path) -> Any:
    return json.loads(path.read_text("utf-8"))


def bundle_resources(path: Path) -> list[dict[str, Any]]:
    return [entry["resource"] for entry in load_json(path)["entry"]]


def r4_example(name: str) -> dict[str, Any]:
    resource: dict[str, Any] = load_json(R4_FIXTURES / f"{name}.json")
    return resource


def episode_resource(episode: int, resource_type: str) -> dict[str, Any]:
    path = DATA / "micdr-examples" / f"episode-{episode}.json"
    if not path.exists():
        pytest.skip(f"{path} not available")
    return next(r for r in bundle_resources(path) if r["resourceType"] == resource_type)


@pytest.fixture(scope="session")
def registry() -> SearchParamRegistry:
    return SearchParamRegistry.load()
