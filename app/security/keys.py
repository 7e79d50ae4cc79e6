"""The verification keys: a JWKS file (read at start) or a JWKS URL (fetched on first use, and
again when a token names an unknown `kid`, at most once per REFRESH_SECONDS)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import jwt

from app.security.scopes import Principal
from app.security.tokens import (
    AuthError,
    TokenPolicy,
    bearer_token,
    load_jwks,
    principal_of,
    verify_token,
)
from app.settings import Settings

REFRESH_SECONDS = 60.0
FETCH_TIMEOUT = 5.0


class KeyStore:
    """Verifies bearer tokens against the configured JWKS."""

    def __init__(self, settings: Settings) -> None:
        assert settings.auth_issuer is not None and settings.auth_audience is not None
        self.policy = TokenPolicy(
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
            leeway=settings.auth_leeway,
            algorithms=settings.auth_algorithms,
            org_claim=settings.auth_org_claim,
            patient_claim=settings.auth_patient_claim,
        )
        self.url = settings.auth_jwks_url
        self.keys: jwt.PyJWKSet | None = None
        self.fetched = 0.0
        self.lock = asyncio.Lock()
        if settings.auth_jwks_file is not None:
            self.keys = load_jwks(json.loads(settings.auth_jwks_file.read_bytes()))

    async def _refresh(self) -> None:
        if self.url is None or time.monotonic() - self.fetched < REFRESH_SECONDS:
            return
        async with self.lock:
            if time.monotonic() - self.fetched < REFRESH_SECONDS:
                return
            self.fetched = time.monotonic()
            try:
                async with httpx.AsyncClient(timeout=FETCH_TIMEOUT) as client:
                    answer = await client.get(self.url)
                    answer.raise_for_status()
                    document: Any = answer.json()
                self.keys = load_jwks(document)
            except (httpx.HTTPError, ValueError) as exc:
                if self.keys is None:
                    raise AuthError(f"the token keys cannot be fetched: {exc}") from None

    async def principal(self, authorization: str | None) -> Principal:
        token = bearer_token(authorization)
        if self.keys is None:
            await self._refresh()
        if self.keys is None:
            raise AuthError("the token keys are not available yet; retry", error=None)
        try:
            claims = verify_token(token, self.keys, self.policy)
        except AuthError as err:
            if self.url is None or "not known" not in err.detail:
                raise
            await self._refresh()  # a rotated key
            claims = verify_token(token, self.keys, self.policy)
        return principal_of(claims, self.policy)
