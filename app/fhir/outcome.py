"""OperationOutcome: the one shape every failure (and some successes) takes on the wire.

`FhirError` carries an HTTP status and the issues; `app/http/errors.py` renders it. Pure code raises
it anywhere; nothing else turns into a client-visible error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome.issue. `code` is an R4 IssueType code (invalid, required, value,
    not-found, conflict, processing, not-supported, too-costly, security, exception, ...)."""

    code: str
    diagnostics: str
    expression: tuple[str, ...] = ()
    severity: str = "error"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"severity": self.severity, "code": self.code}
        if self.diagnostics:
            out["diagnostics"] = self.diagnostics
        # R4: a list of strings, each a location. A request that is not in a Bundle has no
        # location for its headers (`Entry.at` answers ""), and FHIR allows no empty string.
        expression = [e for e in self.expression if e]
        if expression:
            out["expression"] = expression
        return out


@dataclass
class FhirError(Exception):
    """A failure the client must see as an OperationOutcome with `status`."""

    status: int
    issues: tuple[Issue, ...] = field(default_factory=tuple)
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return "; ".join(i.diagnostics for i in self.issues) or f"HTTP {self.status}"

    @classmethod
    def of(
        cls, status: int, code: str, diagnostics: str, *expression: str, **headers: str
    ) -> FhirError:
        return cls(status, (Issue(code, diagnostics, tuple(expression)),), dict(headers))


def operation_outcome(issues: tuple[Issue, ...] | list[Issue]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [i.to_json() for i in issues]}


def information(diagnostics: str) -> dict[str, Any]:
    """An all-is-well OperationOutcome (used for `Prefer: return=OperationOutcome`)."""
    return operation_outcome([Issue("informational", diagnostics, severity="information")])
