"""SMART App Launch v2-style scopes (`system/*.cruds`, `user/ImagingStudy.rs`, `patient/*.rs`;
the v1 forms `*.read`, `*.write`, `*.*` are accepted) and the access decision they give.

`access_for(principal, type, op)` answers where an interaction on `type` may reach, or raises
`Forbidden`. The rules (docs/security.md, "Scopes"):

- `user/` grants reach every resource of the granted types (viewers).
- `system/` grants are contributors': they reach only resources their organisation contributed
  (the `org` claim, MICDR_AUTH_ORG_CLAIM). A system grant without that claim reaches nothing.
- `patient/` grants reach only the compartment of the `patient` claim's Patient, and only read
  and search (this server takes no writes in a patient context).
- Writes (c, u, d) in any context need the org claim: every write records the contributing
  organisation, and updates and deletes reach only that organisation's resources.
- When several grants allow an interaction, the widest wins: user, then system, then patient.
- `AuditEvent` is never written through the API, and is read only with a grant that names it
  (`user/AuditEvent.rs`); wildcards do not cover it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

Context = Literal["system", "user", "patient"]
Op = Literal["c", "r", "u", "d", "s"]
WRITE_OPS = frozenset("cud")
AUDIT_TYPE = "AuditEvent"

_SCOPE = re.compile(r"(system|user|patient)/(\*|[A-Z][A-Za-z]{1,63})\.([A-Za-z*]+)")
_V1 = {"read": frozenset("rs"), "write": frozenset("cud"), "*": frozenset("cruds")}
_V2_ORDER = "cruds"


class Forbidden(Exception):
    """The caller's scopes do not allow the interaction (403)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class Grant:
    context: Context
    type: str  # a resource type or "*"
    ops: frozenset[str]

    def covers(self, type_: str, op: str) -> bool:
        named = self.type == type_ or (self.type == "*" and type_ != AUDIT_TYPE)
        return named and op in self.ops


def parse_scope(scope: str) -> Grant | None:
    """The grant of one scope string; None for scopes that grant no resource access here
    (`openid`, `launch/patient`, granular `?param=` scopes, malformed ones)."""
    match = _SCOPE.fullmatch(scope)
    if match is None:
        return None
    context, type_, perms = match.groups()
    if perms in _V1:
        ops = _V1[perms]
    else:
        # v2: a non-empty subsequence of c r u d s, in that order.
        positions = [_V2_ORDER.find(p) for p in perms]
        if -1 in positions or positions != sorted(set(positions)):
            return None
        ops = frozenset(perms)
    return Grant(context, type_, ops)  # type: ignore[arg-type]


def parse_scopes(text: str | list[Any] | None) -> tuple[Grant, ...]:
    """The `scope` claim (space-separated string, or a list as some servers issue it)."""
    items = text.split() if isinstance(text, str) else [str(s) for s in (text or [])]
    return tuple(g for s in items if (g := parse_scope(s)) is not None)


@dataclass(frozen=True)
class Principal:
    """Who is calling. `open` is the unauthenticated server (no auth configured, loopback only):
    it may do everything a client may. `internal` is the server itself (audit events)."""

    subject: str
    client_id: str | None = None
    grants: tuple[Grant, ...] = ()
    org: str | None = None
    patient: str | None = None
    open: bool = False
    internal: bool = False
    scopes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def submitter(self) -> str:
        """Who owns an asynchronous submission: the OAuth client (else the subject)."""
        return self.client_id or self.subject

    def to_json(self) -> dict[str, Any]:
        return {
            "sub": self.subject,
            "client_id": self.client_id,
            "scope": " ".join(self.scopes),
            "org": self.org,
            "patient": self.patient,
            "open": self.open,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Principal:
        scopes = tuple(str(data.get("scope") or "").split())
        return cls(
            subject=str(data.get("sub") or "anonymous"),
            client_id=data.get("client_id"),
            grants=parse_scopes(" ".join(scopes)),
            org=data.get("org"),
            patient=data.get("patient"),
            open=bool(data.get("open")),
            scopes=scopes,
        )


# The analysts' scope: the episode aggregates of the dashboard at /analytics (no resource,
# no direct identifier), granted by name alone; resource scopes do not imply it.
ANALYTICS_SCOPE = "micdr/analytics.read"


def may_read_analytics(principal: Principal) -> bool:
    return principal.open or ANALYTICS_SCOPE in principal.scopes


OPEN = Principal("anonymous", open=True)
INTERNAL = Principal("micdr", open=True, internal=True)


@dataclass(frozen=True)
class Access:
    """Where an allowed interaction reaches: everything, one organisation's resources, or one
    patient's compartment."""

    kind: Literal["all", "org", "patient"]
    value: str | None = None


ALL = Access("all")
_WIDEST_FIRST: tuple[Context, ...] = ("user", "system", "patient")


def access_for(principal: Principal, type_: str, op: str) -> Access:
    """Raises Forbidden when no grant allows `op` on `type_` (see the module docstring)."""
    if type_ == AUDIT_TYPE and op in WRITE_OPS and not principal.internal:
        raise Forbidden("the audit trail is written by the server only")
    if principal.open:
        return ALL
    contexts = {g.context for g in principal.grants if g.covers(type_, op)}
    if not contexts:
        raise Forbidden(f"the token's scopes do not allow {_verb(op)} {type_}")
    if op in WRITE_OPS:
        if "patient" in contexts and len(contexts) == 1:
            raise Forbidden("patient-context scopes do not allow writes")
        if not principal.org:
            raise Forbidden("writes need the contributing organisation claim in the token")
        return Access("org", principal.org)
    for context in _WIDEST_FIRST:
        if context not in contexts:
            continue
        if context == "user":
            return ALL
        if context == "system" and principal.org:
            return Access("org", principal.org)
        if context == "patient" and principal.patient:
            return Access("patient", principal.patient)
    raise Forbidden(
        "system scopes need the organisation claim and patient scopes the patient claim"
    )


def _verb(op: str) -> str:
    return {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}.get(op, op)
