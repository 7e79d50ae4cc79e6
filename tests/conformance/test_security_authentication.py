"""Authentication (RFC 6750 bearer JWTs, docs/security.md): what is refused with 401 and
`WWW-Authenticate`, what is accepted (RS256 and ES256, within the clock-skew leeway), what stays
public (`metadata`, `/health`), and the request id on every answer."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from litestar.testing import AsyncTestClient

from tests.conformance._auth import (
    AUDIENCE,
    ISSUER,
    TOKEN_LIFETIME,
    bearer,
    other_rsa_key,
    rsa_key,
    secured_client,
    token,
)
from tests.conformance._clients import DEPLOYMENTS


@pytest.fixture(params=DEPLOYMENTS)
async def client(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    async with secured_client(request.param, tmp_path) as c:
        yield c


def _claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    # minted at import: valid for the whole run, so each is refused for its own flaw only
    exp = now + TOKEN_LIFETIME
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "u", "scope": "user/*.rs", "exp": exp}
    body.update(over)
    return {k: v for k, v in body.items() if v is not None}


def _rs256(claims: dict[str, Any], kid: str = "rsa-1", key: Any = None) -> str:
    return jwt.encode(claims, key or rsa_key(), algorithm="RS256", headers={"kid": kid})


NOW = int(time.time())
REFUSED = {
    "missing": None,
    "opaque": "Bearer 2YotnFZFEjr1zCsicMWpAA",
    "basic": "Basic dXNlcjpwYXNz",
    "empty bearer": "Bearer ",
    "expired": "Bearer " + _rs256(_claims(exp=NOW - 120)),
    "not yet valid": "Bearer " + _rs256(_claims(nbf=NOW + TOKEN_LIFETIME)),
    "wrong issuer": "Bearer " + _rs256(_claims(iss="https://evil.example.org")),
    "wrong audience": "Bearer " + _rs256(_claims(aud="https://other.example.org")),
    "no exp": "Bearer " + _rs256(_claims(exp=None)),
    "unknown key": "Bearer " + _rs256(_claims(), kid="rsa-9", key=other_rsa_key()),
    "known kid, other key": "Bearer " + _rs256(_claims(), key=other_rsa_key()),
    "alg none": "Bearer " + jwt.encode(_claims(), None, algorithm="none"),
    "HS256 with the public key as secret": "Bearer "
    + jwt.encode(_claims(), "secret-guess-of-at-least-32-bytes-long", algorithm="HS256"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
async def test_unusable_credentials_get_401_with_www_authenticate(
    client: AsyncTestClient[Any], case: str
) -> None:
    auth = REFUSED[case]
    headers = {"Authorization": auth} if auth is not None else {}
    r = await client.get("/fhir/Patient", headers=headers)
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"].startswith('Bearer realm="micdr"')
    if auth is not None:
        assert "error=" in r.headers["www-authenticate"]
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "login"


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
async def test_a_valid_token_is_accepted(client: AsyncTestClient[Any], alg: str) -> None:
    r = await client.get("/fhir/Patient", headers=bearer(token("user/*.rs", alg=alg)))
    assert r.status_code == 200


async def test_clock_skew_within_the_leeway_is_tolerated(client: AsyncTestClient[Any]) -> None:
    now = int(time.time())
    skewed = _rs256(_claims(exp=now - 10, nbf=now + 10))  # default leeway 30 s
    assert (await client.get("/fhir/Patient", headers=bearer(skewed))).status_code == 200


async def test_metadata_and_health_are_public_and_say_how_to_authenticate(
    client: AsyncTestClient[Any],
) -> None:
    r = await client.get("/fhir/metadata")
    assert r.status_code == 200
    security = r.json()["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    health = (await client.get("/health")).json()
    assert health["security"]["authentication"] == "oauth2-bearer-jwt"


async def test_the_open_server_says_it_is_open(
    client: AsyncTestClient[Any], tmp_path: Path
) -> None:
    from tests.conformance._clients import client_with

    async with client_with({}, "embedded", tmp_path / "open") as open_client:
        security = (await open_client.get("/fhir/metadata")).json()["rest"][0]["security"]
        assert "open access" in security["description"]
        health = (await open_client.get("/health")).json()
        assert health["security"]["authentication"] == "none"
        assert (await open_client.get("/fhir/Patient")).status_code == 200


async def test_every_answer_carries_a_request_id(client: AsyncTestClient[Any]) -> None:
    r = await client.get("/fhir/Patient", headers={"X-Request-Id": "abc-123"})
    assert r.status_code == 401 and r.headers["x-request-id"] == "abc-123"
    r = await client.get("/fhir/metadata")
    assert len(r.headers["x-request-id"]) == 32
    r = await client.get("/nowhere")
    assert r.status_code == 404 and r.headers["x-request-id"]
    r = await client.get("/fhir/metadata", headers={"X-Request-Id": "bad id\twith spaces"})
    assert r.headers["x-request-id"] != "bad id\twith spaces"
