"""Typed index values: what one search parameter extracts from one resource.

Each class is one search-parameter type's value (R4 §3.1.1.4 / search.html "Search Parameter
Types"); `indexing.document` turns them into the engine-neutral document fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

__all__ = [
    "CompositeValue",
    "DateValue",
    "NumberValue",
    "QuantityValue",
    "ReferenceValue",
    "StringValue",
    "TokenValue",
    "UriValue",
    "Value",
]


@dataclass(frozen=True, slots=True)
class StringValue:
    """`norm` answers the default (starts-with) and `:contains` searches, `exact` `:exact`."""

    norm: str
    exact: str


@dataclass(frozen=True, slots=True)
class TokenValue:
    """A coded value. `system` None means "no system given", `""` an explicitly empty one (the
    `|code` query form must match only the latter, `code` both). `text` is the display or
    CodeableConcept.text for `:text`; `type_codings` are an Identifier's type codes (`:of-type`)."""

    system: str | None
    code: str | None
    text: str | None = None
    type_codings: tuple[tuple[str | None, str], ...] = ()


@dataclass(frozen=True, slots=True)
class DateValue:
    """An interval of UTC instants (see `indexing.normalize.date_interval`); both ends inclusive."""

    low: str
    high: str


@dataclass(frozen=True, slots=True)
class NumberValue:
    """A number and the range its written precision covers (`1.5` -> 1.45..1.55)."""

    value: Decimal
    low: Decimal
    high: Decimal


@dataclass(frozen=True, slots=True)
class QuantityValue:
    value: Decimal
    low: Decimal
    high: Decimal
    system: str | None
    code: str | None
    unit: str | None


@dataclass(frozen=True, slots=True)
class ReferenceValue:
    """A reference, normalised. `ref` is `Type/id` for a literal reference to a resource (whatever
    the base URL or version), or the reference as written when it is not one (`#contained`,
    `urn:uuid:...`, a canonical); `url` keeps an absolute reference or canonical in full;
    `identifier` is a logical reference's identifier, for `:identifier`."""

    ref: str | None
    type: str | None = None
    id: str | None = None
    url: str | None = None
    version: str | None = None
    identifier: TokenValue | None = None


@dataclass(frozen=True, slots=True)
class UriValue:
    uri: str


@dataclass(frozen=True, slots=True)
class CompositeValue:
    """One combination of component values, by the component parameter's code, in order."""

    components: tuple[tuple[str, Value], ...]


Value = (
    StringValue
    | TokenValue
    | DateValue
    | NumberValue
    | QuantityValue
    | ReferenceValue
    | UriValue
    | CompositeValue
)
