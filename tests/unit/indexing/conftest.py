"""Shared fixtures for the indexing unit tests: one registry per session, example resources."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from indexing.registry import SearchParamRegistry
from tests._data import R4_EXAMPLES_DIR as R4_FIXTURES
from tests._data import ig_episode_path

REPO = Path(__file__).resolve().parents[3]


def load_json(path: Path) -> Any:
    return json.loads(path.read_text("utf-8"))


def bundle_resources(path: Path) -> list[dict[str, Any]]:
    return [entry["resource"] for entry in load_json(path)["entry"]]


def r4_example(name: str) -> dict[str, Any]:
    resource: dict[str, Any] = load_json(R4_FIXTURES / f"{name}.json")
    return resource


def episode_resource(episode: int, resource_type: str) -> dict[str, Any]:
    resources = bundle_resources(ig_episode_path(episode))
    return next(r for r in resources if r["resourceType"] == resource_type)


@pytest.fixture(scope="session")
def registry() -> SearchParamRegistry:
    return SearchParamRegistry.load()
