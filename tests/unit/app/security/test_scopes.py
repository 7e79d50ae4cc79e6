"""app/security/scopes.py: SMART scope parsing and the access decision (docs/security.md)."""

from __future__ import annotations

import pytest

from app.security.scopes import (
    ALL,
    OPEN,
    Access,
    Forbidden,
    Principal,
    access_for,
    parse_scope,
    parse_scopes,
)


@pytest.mark.parametrize(
    ("scope", "context", "type_", "ops"),
    [
        ("system/*.cruds", "system", "*", "cruds"),
        ("user/*.rs", "user", "*", "rs"),
        ("patient/ImagingStudy.rs", "patient", "ImagingStudy", "rs"),
        ("user/*.read", "user", "*", "rs"),
        ("user/Patient.write", "user", "Patient", "cud"),
        ("system/*.*", "system", "*", "cruds"),
        ("user/Observation.c", "user", "Observation", "c"),
    ],
)
def test_scopes_parse_to_grants(scope: str, context: str, type_: str, ops: str) -> None:
    grant = parse_scope(scope)
    assert grant is not None
    assert (grant.context, grant.type, grant.ops) == (context, type_, frozenset(ops))


@pytest.mark.parametrize(
    "scope",
    [
        "openid",
        "launch/patient",
        "user/*.sr",
        "user/*.rr",
        "user/*.x",
        "admin/*.rs",
        "user/patient.rs",
        "user/*.rs?category=x",
        "",
        "user/*.",
    ],
)
def test_scopes_granting_nothing(scope: str) -> None:
    assert parse_scope(scope) is None


def _p(scopes: str, org: str | None = None, patient: str | None = None) -> Principal:
    return Principal("s", "c", parse_scopes(scopes), org, patient)


@pytest.mark.parametrize(
    ("principal", "type_", "op", "access"),
    [
        (_p("system/*.cruds", org="A"), "Patient", "s", Access("org", "A")),
        (_p("system/*.cruds", org="A"), "Patient", "u", Access("org", "A")),
        (_p("user/*.rs"), "Patient", "r", ALL),
        (_p("user/*.rs system/*.cruds", org="A"), "Patient", "s", ALL),  # widest wins
        (_p("patient/*.rs", patient="p1"), "Observation", "s", Access("patient", "p1")),
        (_p("patient/*.rs system/*.rs", org="A", patient="p1"), "Patient", "r", Access("org", "A")),
        (_p("user/AuditEvent.rs"), "AuditEvent", "s", ALL),
        (OPEN, "Patient", "d", ALL),
    ],
)
def test_access_for(principal: Principal, type_: str, op: str, access: Access) -> None:
    assert access_for(principal, type_, op) == access


@pytest.mark.parametrize(
    ("principal", "type_", "op"),
    [
        (_p("user/*.rs"), "Patient", "c"),
        (_p("user/*.cruds"), "Patient", "c"),  # writes need an organisation
        (_p("system/*.rs"), "Patient", "r"),  # system scopes need an organisation
        (_p("patient/*.rs"), "Patient", "r"),  # patient scopes need a patient
        (_p("patient/*.cruds", patient="p"), "Patient", "u"),
        (_p("user/*.rs"), "AuditEvent", "r"),  # wildcards do not reach the audit trail
        (_p("system/*.cruds", org="A"), "AuditEvent", "c"),
        (OPEN, "AuditEvent", "d"),
        (_p("user/ImagingStudy.rs"), "Patient", "r"),
    ],
)
def test_access_refused(principal: Principal, type_: str, op: str) -> None:
    with pytest.raises(Forbidden):
        access_for(principal, type_, op)


def test_a_principal_survives_its_json_form() -> None:
    p = Principal("s", "c", parse_scopes("user/*.rs"), "A", "p", scopes=("user/*.rs",))
    assert Principal.from_json(p.to_json()) == p
