"""app/security/tokens.py: bearer header parsing and claims to principal."""

from __future__ import annotations

import pytest

from app.security.tokens import AuthError, TokenPolicy, bearer_token, load_jwks, principal_of

POLICY = TokenPolicy("iss", "aud")


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer", "Bearer   ", "Token x"])
def test_no_bearer_token(header: str | None) -> None:
    with pytest.raises(AuthError):
        bearer_token(header)


def test_bearer_token() -> None:
    assert bearer_token("bearer abc.def.ghi ") == "abc.def.ghi"


def test_claims_to_principal() -> None:
    p = principal_of(
        {
            "sub": "u1",
            "azp": "app",
            "scope": ["user/*.rs", "openid"],
            "micdr_org": "A",
            "patient": "p1",
        },
        POLICY,
    )
    assert (p.subject, p.client_id, p.org, p.patient) == ("u1", "app", "A", "p1")
    assert len(p.grants) == 1 and p.submitter == "app"


def test_a_jwks_without_usable_keys_is_refused() -> None:
    with pytest.raises(ValueError):
        load_jwks({"keys": []})
