"""The search planner's one error: a search the server cannot or will not run.

`indexing` must not import `app/` (layering rule, tests/unit/test_layering.py), so the planner
raises this plain exception and the HTTP layer turns it into an OperationOutcome with `status`.
"""

from __future__ import annotations

__all__ = ["InvalidSearch"]


class InvalidSearch(Exception):
    """A search that fails before it reaches an engine.

    - `status`: the HTTP status to answer with (400 for every error the parser raises).
    - `code`: the OperationOutcome issue code: `invalid` for a malformed value (a bad date,
      number, prefix or empty value: always an error), `not-supported` for an unknown parameter
      or modifier in strict mode (`Prefer: handling=strict`).
    - `diagnostics`: a sentence a client developer can act on.
    - `expression`: where the problem is (the query parameter as written), for
      `OperationOutcome.issue.expression`.
    """

    def __init__(
        self,
        diagnostics: str,
        *,
        status: int = 400,
        code: str = "invalid",
        expression: tuple[str, ...] = (),
    ) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.code = code
        self.diagnostics = diagnostics
        self.expression = expression

    def __repr__(self) -> str:
        return (
            f"InvalidSearch(status={self.status}, code={self.code!r},"
            f" diagnostics={self.diagnostics!r}, expression={self.expression!r})"
        )
