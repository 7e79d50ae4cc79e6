"""Test credentials: RSA and EC signing keys made per test session, a JWKS file in the test's
temp dir, and a token factory; clients configured for bearer authentication on both stores."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from litestar.testing import AsyncTestClient

from tests.conformance._clients import client_with

ISSUER = "https://auth.example.org/realms/micdr"
AUDIENCE = "https://micdr.example.org/fhir"
ORG_A = "upi-hospital-a"
ORG_B = "upi-hospital-b"


@cache
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@cache
def other_rsa_key() -> rsa.RSAPrivateKey:
    """A key the server does not know."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks() -> dict[str, Any]:
    rsa_jwk = json.loads(RSAAlgorithm.to_jwk(rsa_key().public_key()))
    ec_jwk = json.loads(ECAlgorithm.to_jwk(ec_key().public_key()))
    rsa_jwk.update(kid="rsa-1", alg="RS256", use="sig")
    ec_jwk.update(kid="ec-1", alg="ES256", use="sig")
    return {"keys": [rsa_jwk, ec_jwk]}


def auth_env(tmp: Path, **extra: str) -> dict[str, str]:
    path = tmp / "jwks.json"
    path.write_text(json.dumps(jwks()))
    return {
        "MICDR_AUTH_JWKS_FILE": str(path),
        "MICDR_AUTH_ISSUER": ISSUER,
        "MICDR_AUTH_AUDIENCE": AUDIENCE,
        "MICDR_IG_MODE": "0",
        **extra,
    }


TOKEN_LIFETIME = 12 * 3600


def token(
    scope: str,
    *,
    org: str | None = None,
    patient: str | None = None,
    sub: str | None = None,
    client_id: str | None = None,
    alg: str = "RS256",
    **claims: Any,
) -> str:
    now = int(time.time())
    body: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub or f"user-{uuid.uuid4().hex[:6]}",
        "client_id": client_id or (f"client-{org}" if org else "viewer-app"),
        "scope": scope,
        "iat": now,
        # some modules mint their tokens at import (collection): they must outlive the whole run
        "exp": now + TOKEN_LIFETIME,
    }
    if org is not None:
        body["micdr_org"] = org
    if patient is not None:
        body["patient"] = patient
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    if alg == "ES256":
        return jwt.encode(body, ec_key(), algorithm="ES256", headers={"kid": "ec-1"})
    return jwt.encode(body, rsa_key(), algorithm="RS256", headers={"kid": "rsa-1"})


def bearer(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


def contributor(org: str) -> dict[str, str]:
    return bearer(token("system/*.cruds", org=org, client_id=f"client-{org}"))


def viewer(scope: str = "user/*.rs") -> dict[str, str]:
    return bearer(token(scope))


def patient_app(patient_id: str) -> dict[str, str]:
    return bearer(token("patient/*.rs", patient=patient_id, client_id="patient-app"))


@asynccontextmanager
async def secured_client(
    store: str, tmp: Path, env: Mapping[str, str] | None = None
) -> AsyncIterator[AsyncTestClient[Any]]:
    async with client_with(auth_env(tmp, **(env or {})), store, tmp) as c:
        yield c
