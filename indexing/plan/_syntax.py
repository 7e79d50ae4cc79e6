"""Lexical rules of FHIR search values (R4 search.html §3.1.1.5 "Escaping Search Parameters"
and §3.1.1.4 prefixes), shared by the predicate builders and the result parameters."""

from __future__ import annotations

import re
from typing import cast

from indexing.plan.errors import InvalidSearch
from indexing.plan.plan import Prefix

PREFIXES: frozenset[str] = frozenset({"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"})

# FHIR decimal, with the exponent search allows (`1e2`); no NaN, infinity or `1_000`.
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
# A zone offset whose `+` became a space because the client did not percent-encode it.
_SPACE_ZONE = re.compile(r"(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:\d{2})$")
# The same for an exponent's sign (`1e+2` sent unencoded arrives as `1e 2`).
_SPACE_EXPONENT = re.compile(r"(?<=\d[eE]) (?=\d+$)")


class Unsupported(Exception):
    """A parameter or modifier the server does not support: 400 `not-supported` in strict mode,
    silently left out in lenient mode (R4 search.html §3.1.1.3 "handling")."""

    def __init__(self, diagnostics: str) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics


def invalid(parameter: str, message: str) -> InvalidSearch:
    return InvalidSearch(f"{parameter}: {message}", expression=(parameter,))


def split_unescaped(text: str, separator: str) -> list[str]:
    """`text` split on each `separator` not preceded by an escaping backslash; the parts keep
    their escapes (`a\\,b,c` on `,` -> [`a\\,b`, `c`]) so they can be split again."""
    parts: list[str] = []
    current: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            current.append(text[index : index + 2])
            index += 2
            continue
        if char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    parts.append("".join(current))
    return parts


def unescape(text: str) -> str:
    """Remove the search escapes `\\,` `\\|` `\\$` `\\\\`; any other backslash is literal."""
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text) and text[index + 1] in ",|$\\":
            out.append(text[index + 1])
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


def split_prefix(parameter: str, value: str) -> tuple[Prefix, str]:
    """`ge2024-01` -> (`ge`, `2024-01`); no prefix means `eq`. A value starting with letters
    that are not a prefix is malformed (a date or number never starts with a letter)."""
    head = value[:2]
    if head in PREFIXES and len(value) > 2:
        return cast(Prefix, head), value[2:]
    if value[:1].isalpha():
        raise invalid(
            parameter,
            f"{value!r} does not start with a number, a date or one of the"
            f" prefixes {', '.join(sorted(PREFIXES))}",
        )
    return "eq", value


def is_number(text: str) -> bool:
    return _NUMBER.fullmatch(text) is not None


def repair_zone(text: str) -> str:
    """`2024-01-01T10:00:00 05:00` -> `...+05:00`: an unencoded `+` in a query string decodes
    to a space; the intent is unambiguous, so accept it rather than reject the date."""
    return _SPACE_ZONE.sub(r"\1+\2", text)


def repair_exponent(text: str) -> str:
    """`1.00e 2` -> `1.00e+2`: an unencoded `+` in an exponent, repaired as `repair_zone` does."""
    return _SPACE_EXPONENT.sub("+", text)
