"""R4 primitive data types in JSON: what each JSON value must look like.

The lexical rules are the spec's (https://hl7.org/fhir/R4/datatypes.html#primitive), written as
Python regular expressions; `check` returns a diagnostic for a bad value and None for a good one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import date

from app.fhir._xhtml import check_div

_YEAR = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
_MONTH = r"(0[1-9]|1[0-2])"
_DAY = r"(0[1-9]|[1-2][0-9]|3[0-1])"
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
_ZONE = r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"

_PATTERNS: dict[str, re.Pattern[str]] = {
    name: re.compile(pattern)
    for name, pattern in {
        "id": r"[A-Za-z0-9\-\.]{1,64}",
        "code": r"[^\s]+( [^\s]+)*",
        "uri": r"\S+",
        "url": r"\S+",
        "canonical": r"\S+",
        "oid": r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+",
        "uuid": r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "date": rf"{_YEAR}(-{_MONTH}(-{_DAY})?)?",
        "dateTime": rf"{_YEAR}(-{_MONTH}(-{_DAY}(T{_TIME}{_ZONE})?)?)?",
        "instant": rf"{_YEAR}-{_MONTH}-{_DAY}T{_TIME}{_ZONE}",
        "time": _TIME,
        # Whitespace is allowed between quads; it is stripped before matching (linear time).
        "base64Binary": r"([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?",
    }.items()
}
_WHITESPACE = re.compile(r"\s+")
# Below U+0020 only tab, LF and CR: datatypes.html asks strings to hold no other, and the XML
# format cannot carry them at all (nor can PostgreSQL's jsonb carry U+0000).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_DATED = frozenset({"date", "dateTime", "instant"})
_INT_RANGE = {"integer": -(2**31), "unsignedInt": 0, "positiveInt": 1}
_INT_MAX = 2**31 - 1


def _real_date(text: str) -> bool:
    # The regex allows 2023-02-31; the calendar does not.
    if len(text) < 10:
        return True
    try:
        date(int(text[0:4]), int(text[5:7]), int(text[8:10]))
    except ValueError:
        return False
    return True


def _check_string(type_code: str, value: object) -> str | None:
    if not isinstance(value, str):
        return f"expected a JSON string for {type_code}, got {json_kind(value)}"
    if not value:
        return "empty string (FHIR does not allow empty values)"
    if (control := _CONTROL.search(value)) is not None:
        return (
            f"control character U+{ord(control.group()):04X} in a {type_code} (below U+0020 "
            "only tab, line feed and carriage return are allowed)"
        )
    if type_code == "xhtml":
        return check_div(value)
    pattern = _PATTERNS.get(type_code)
    if pattern is None:  # string, markdown
        return None
    text = _WHITESPACE.sub("", value) if type_code == "base64Binary" else value
    if not pattern.fullmatch(text) or (type_code in _DATED and not _real_date(value)):
        return f"invalid {type_code} {value!r}"
    return None


def _check_boolean(type_code: str, value: object) -> str | None:
    if value is True or value is False:
        return None
    return f"expected a JSON boolean, got {json_kind(value)}"


def _check_integer(type_code: str, value: object) -> str | None:
    if type(value) is not int:
        return f"expected a JSON integer for {type_code}, got {json_kind(value)}"
    if not _INT_RANGE[type_code] <= value <= _INT_MAX:
        return f"{type_code} {value} out of range"
    return None


def _check_decimal(type_code: str, value: object) -> str | None:
    if type(value) is int or (type(value) is float and math.isfinite(value)):
        return None
    return f"expected a JSON number for decimal, got {json_kind(value)}"


def json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


Checker = Callable[[str, object], "str | None"]
CHECKERS: dict[str, Checker] = {
    "boolean": _check_boolean,
    "integer": _check_integer,
    "unsignedInt": _check_integer,
    "positiveInt": _check_integer,
    "decimal": _check_decimal,
}


def check(type_code: str, value: object) -> str | None:
    """Why `value` is not a valid JSON `type_code`, or None when it is."""
    return CHECKERS.get(type_code, _check_string)(type_code, value)
