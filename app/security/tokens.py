"""Bearer token verification (RFC 6750, RFC 7519) with PyJWT: signature against the configured
JWKS (RS256 or ES256 only), `iss`, `aud`, `exp` (required), `nbf`, with a clock-skew leeway.
Pure: the keys are handed in (app/security/keys.py loads them).

`principal_of(claims, ...)` turns verified claims into a `Principal`: `sub`, `client_id` (or
`azp`, or `cid`), `scope` (space-separated, or a list), the organisation claim and the patient
claim (names configurable: MICDR_AUTH_ORG_CLAIM, MICDR_AUTH_PATIENT_CLAIM).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt

from app.security.scopes import Principal, parse_scopes


class AuthError(Exception):
    """The request carries no usable credentials (401). `error` is RFC 6750's error code."""

    def __init__(self, detail: str, error: str | None = "invalid_token") -> None:
        super().__init__(detail)
        self.detail = detail
        self.error = error


@dataclass(frozen=True)
class TokenPolicy:
    issuer: str
    audience: str
    leeway: int = 30
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    org_claim: str = "micdr_org"
    patient_claim: str = "patient"


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header."""
    if not authorization:
        raise AuthError("this server needs an OAuth 2 bearer token", error=None)
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("the Authorization header is not a Bearer token", "invalid_request")
    return token.strip()


def load_jwks(data: dict[str, Any]) -> jwt.PyJWKSet:
    """A JWKS document's usable signing keys; raises ValueError when it has none."""
    try:
        keys = jwt.PyJWKSet.from_dict(data)
    except jwt.PyJWTError as exc:
        raise ValueError(f"not a usable JWKS: {exc}") from None
    return keys


def _key(keys: jwt.PyJWKSet, header: dict[str, Any], policy: TokenPolicy) -> jwt.PyJWK:
    alg = header.get("alg")
    if alg not in policy.algorithms:
        raise AuthError(f"tokens signed with {alg!r} are not accepted")
    kid = header.get("kid")
    candidates = [k for k in keys.keys if kid is None or k.key_id == kid]
    candidates = [k for k in candidates if getattr(k, "algorithm_name", alg) == alg]
    if kid is None and len(candidates) != 1:
        raise AuthError("the token names no key (kid) and the key set has several")
    if not candidates:
        raise AuthError("the token's signing key is not known to this server")
    return candidates[0]


def verify_token(token: str, keys: jwt.PyJWKSet, policy: TokenPolicy) -> dict[str, Any]:
    """The verified claims of a JWT; raises AuthError for anything else (opaque, expired, ...)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise AuthError("the bearer token is not a JWT this server can verify") from None
    key = _key(keys, header, policy)
    options: Any = {"require": ["exp", "iss", "aud", "sub"]}
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=list(policy.algorithms),
            audience=policy.audience,
            issuer=policy.issuer,
            leeway=policy.leeway,
            options=options,
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("the bearer token has expired") from None
    except jwt.ImmatureSignatureError:
        raise AuthError("the bearer token is not valid yet (nbf)") from None
    except jwt.PyJWTError as exc:
        raise AuthError(f"the bearer token is not valid: {exc}") from None
    return claims


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) and str(value) else None


def principal_of(claims: dict[str, Any], policy: TokenPolicy) -> Principal:
    raw_scope = claims.get("scope", claims.get("scp"))
    scopes = (
        tuple(raw_scope.split())
        if isinstance(raw_scope, str)
        else tuple(str(s) for s in raw_scope)
        if isinstance(raw_scope, list)
        else ()
    )
    client = claims.get("client_id") or claims.get("azp") or claims.get("cid")
    return Principal(
        subject=str(claims["sub"]),
        client_id=_text(client),
        grants=parse_scopes(" ".join(scopes)),
        org=_text(claims.get(policy.org_claim)),
        patient=_text(claims.get(policy.patient_claim)),
        scopes=scopes,
    )
