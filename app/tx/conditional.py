"""Conditional criteria (`Type?identifier=s|v`) resolved from the store, not the lagging index.

The store answers identifier tokens and ids exactly and at once; other criteria need the search
index and are resolved there by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from app.fhir.outcome import FhirError

# Result parameters never narrow a conditional match; they are dropped from criteria.
_IGNORED = {"_format", "_pretty", "_summary", "_elements", "_count", "_sort", "_total"}


@dataclass(frozen=True)
class Criteria:
    """`Type?query` split into what the store can answer and what it cannot.

    `identifier_sets`: one set of tokens per `identifier` parameter (comma = OR within a set,
    repeated parameter = AND across sets); `ids` likewise for `_id`; `rest` is everything else.
    """

    type: str
    query: str
    identifier_sets: tuple[tuple[str, ...], ...]
    id_sets: tuple[tuple[str, ...], ...]
    rest: tuple[tuple[str, str], ...]

    @property
    def store_only(self) -> bool:
        return not self.rest

    @property
    def claim_token(self) -> str | None:
        """The one `system|value` token a race-free claim can be keyed on, if there is one."""
        if self.rest or self.id_sets or len(self.identifier_sets) != 1:
            return None
        (tokens,) = self.identifier_sets
        if len(tokens) == 1 and "|" in tokens[0] and not tokens[0].startswith("|"):
            return tokens[0]
        return None

    @property
    def key(self) -> tuple[str, str]:
        return (self.type, self.query)


def _split_or(value: str) -> tuple[str, ...]:
    # Commas separate alternatives unless escaped (`\,`).
    parts, current, escaped = [], [], False
    for ch in value:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return tuple(p for p in parts if p)


def parse_criteria(type_: str, query: str) -> Criteria:
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in _IGNORED]
    if not pairs:
        raise FhirError.of(
            412, "invalid", f"conditional criteria for {type_} are empty: a condition must narrow"
        )
    identifier_sets: list[tuple[str, ...]] = []
    id_sets: list[tuple[str, ...]] = []
    rest: list[tuple[str, str]] = []
    for name, value in pairs:
        if name == "identifier":
            identifier_sets.append(_split_or(value))
        elif name == "_id":
            id_sets.append(_split_or(value))
        else:
            rest.append((name, value))
    return Criteria(type_, query, tuple(identifier_sets), tuple(id_sets), tuple(rest))


def match_ids(
    criteria: Criteria, by_token: dict[str, list[str]], live_ids: set[str]
) -> list[str] | None:
    """The ids matching the store-answerable part; None when nothing narrowed by the store.

    `by_token`: identifier token -> live ids; `live_ids`: which of the `_id` values exist.
    """
    result: set[str] | None = None
    for tokens in criteria.identifier_sets:
        ids = {i for t in tokens for i in by_token.get(t, [])}
        result = ids if result is None else result & ids
    for wanted in criteria.id_sets:
        ids = {i for i in wanted if i in live_ids}
        result = ids if result is None else result & ids
    return sorted(result) if result is not None else None
