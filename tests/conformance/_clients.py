"""Clients with non-default settings, e.g. a plain FHIR server (`MICDR_IG_MODE=0`), on both
deployments' stores like conftest's `client`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.main import create_app
from app.settings import load_settings
from tests.conformance.conftest import _mongomock_engines

PLAIN_FHIR = {"MICDR_IG_MODE": "0"}


@asynccontextmanager
async def client_with(
    env: Mapping[str, str], store: str, data_dir: Path
) -> AsyncIterator[AsyncTestClient[Any]]:
    """A test client whose settings are `env` (plus a temp data dir) on `store`."""
    settings = load_settings({"MICDR_DATA_DIR": str(data_dir), **env})
    app = (
        create_app(settings, _mongomock_engines) if store == "mongo" else create_app(settings)
    )
    async with AsyncTestClient(app=app, base_url="http://micdr.local") as c:
        yield c


@pytest.fixture(params=["embedded", "mongo"])
async def plain_client(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[AsyncTestClient[Any]]:
    """A plain FHIR server: IG mode off."""
    async with client_with(PLAIN_FHIR, request.param, tmp_path) as c:
        yield c
