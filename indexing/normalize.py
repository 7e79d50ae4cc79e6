"""Value normalisation shared by the index (projection) and the search side (query parsing).

Both engines store and compare exactly what these functions return, so an Elasticsearch and a
SQLite index built from the same resources answer the same query identically. See
`docs/implementation/index-values.md`.

Dates are intervals of fixed-width ISO-8601 UTC strings with millisecond precision
(`2024-01-01T00:00:00.000Z`): Elasticsearch `date_range` fields accept them and SQLite compares
them correctly as text. A date or dateTime without a zone is read as UTC (FHIR leaves the zone of
such values undefined; the server must pick one, and UTC makes the index independent of the
server's locale).
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

__all__ = [
    "MAX_INSTANT",
    "MIN_INSTANT",
    "date_interval",
    "format_instant",
    "normalize_string",
    "number_interval",
    "parse_decimal",
]

MIN_INSTANT = "0001-01-01T00:00:00.000Z"
MAX_INSTANT = "9999-12-31T23:59:59.999Z"

_MIN_DATETIME = datetime(1, 1, 1, tzinfo=UTC)
_MAX_DATETIME = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)

# FHIR date / dateTime / instant, plus minute precision (`2024-01-01T10:00`), which search
# queries use even though stored dateTimes must carry seconds.
_DATE_TIME = re.compile(
    r"(?P<year>\d{4})"
    r"(?:-(?P<month>\d{2})"
    r"(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})"
    r"(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,9}))?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?"
    r")?)?)?"
)


def normalize_string(text: str) -> str:
    """Case-fold, strip accents and collapse whitespace: `'  Zoë  ÅSTRÖM '` -> `'zoe astrom'`."""
    decomposed = unicodedata.normalize("NFKD", text)
    without_marks = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(without_marks.casefold().split())


def format_instant(moment: datetime) -> str:
    """Fixed-width UTC ISO string with milliseconds; strftime would not zero-pad years < 1000."""
    utc = moment.astimezone(UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
    )


def date_interval(text: str) -> tuple[str, str]:
    """The UTC interval `(low, high)` a FHIR date, dateTime or instant covers at its precision.

    `2024` -> (`2024-01-01T00:00:00.000Z`, `2024-12-31T23:59:59.999Z`);
    `2024-03-01T10:00:00+05:00` -> (`2024-03-01T05:00:00.000Z`, `2024-03-01T05:00:00.999Z`).
    Raises ValueError on anything else.
    """
    match = _DATE_TIME.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"not a FHIR date, dateTime or instant: {text!r}")
    parts = match.groupdict()
    try:
        if parts["zone"] in _UTC_ZONES:
            return _utc_interval(parts)
        start, width = _local_start_and_width(parts)
    except ValueError as error:
        raise ValueError(f"not a valid date {text!r}: {error}") from None
    offset = _zone_offset(parts["zone"])
    low = _to_utc(start, offset)
    high = _to_utc(start, offset, plus=width - _ONE_MICROSECOND)
    return format_instant(low), format_instant(high)


_UTC_ZONES = (None, "Z", "+00:00", "-00:00")


def _utc_interval(parts: dict[str, str | None]) -> tuple[str, str]:
    """`date_interval` of a value already in UTC (or without a zone), written out directly: the
    common case, and several times faster than the arithmetic of the general path. `datetime`
    still checks the calendar (February 30th, hour 25)."""
    year, month, day = parts["year"] or "", parts["month"], parts["day"]
    if month is None:
        datetime(int(year), 1, 1)
        return f"{year}-01-01T00:00:00.000Z", f"{year}-12-31T23:59:59.999Z"
    if day is None:
        last = calendar.monthrange(int(year), int(month))[1]  # checks the month
        return f"{year}-{month}-01T00:00:00.000Z", f"{year}-{month}-{last:02d}T23:59:59.999Z"
    hour, minute, second = parts["hour"], parts["minute"], parts["second"]
    datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
    date = f"{year}-{month}-{day}T"
    if hour is None:
        return f"{date}00:00:00.000Z", f"{date}23:59:59.999Z"
    if second is None:
        return f"{date}{hour}:{minute}:00.000Z", f"{date}{hour}:{minute}:59.999Z"
    fraction = parts["fraction"] or ""
    # `.5` covers .500-.599 and `.50` .500-.509; from three digits on, one millisecond
    low, high = (fraction + "000")[:3], (fraction + "999")[:3]
    return f"{date}{hour}:{minute}:{second}.{low}Z", f"{date}{hour}:{minute}:{second}.{high}Z"


def _local_start_and_width(parts: dict[str, str | None]) -> tuple[datetime, timedelta]:
    """The value's first instant (wall clock, zone not yet applied) and the span it covers."""
    year = int(parts["year"] or 0)
    if parts["month"] is None:
        return datetime(year, 1, 1), timedelta(days=366 if calendar.isleap(year) else 365)
    month = int(parts["month"])
    if parts["day"] is None:
        return datetime(year, month, 1), timedelta(days=calendar.monthrange(year, month)[1])
    day = int(parts["day"])
    if parts["hour"] is None:
        return datetime(year, month, day), timedelta(days=1)
    hour, minute = int(parts["hour"]), int(parts["minute"] or 0)
    if parts["second"] is None:
        return datetime(year, month, day, hour, minute), timedelta(minutes=1)
    second = int(parts["second"])
    fraction = parts["fraction"]
    if fraction is None:
        return datetime(year, month, day, hour, minute, second), timedelta(seconds=1)
    microseconds = int(fraction[:6].ljust(6, "0"))
    # `.5` covers .500-.599 and `.50` covers .500-.509; digits beyond microseconds add nothing.
    width = timedelta(microseconds=10 ** (6 - min(len(fraction), 6)))
    return datetime(year, month, day, hour, minute, second, microseconds), width


def _zone_offset(zone: str | None) -> timedelta:
    if zone is None or zone == "Z":
        return timedelta(0)
    sign = -1 if zone[0] == "-" else 1
    hours, minutes = int(zone[1:3]), int(zone[4:6])
    if hours > 14 or minutes > 59:
        raise ValueError(f"not a valid time zone offset: {zone!r}")
    return sign * timedelta(hours=hours, minutes=minutes)


def _to_utc(local: datetime, offset: timedelta, plus: timedelta = timedelta(0)) -> datetime:
    """`local + plus` read at `offset`, in UTC; clamped to year 1..9999 at the calendar's edges."""
    try:
        return (local + plus - offset).replace(tzinfo=UTC)
    except OverflowError:
        return _MIN_DATETIME if plus - offset < timedelta(0) else _MAX_DATETIME


def parse_decimal(value: object) -> Decimal:
    """A FHIR decimal/integer as Decimal, keeping the written precision when it is still known.

    JSON parsed with `parse_float=Decimal` keeps `1.50` as written; a float has already lost
    trailing zeros, so its shortest repr (`1.5`) is the best precision left.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str):
        try:
            parsed = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"not a number: {value!r}") from None
        if parsed.is_finite():
            return parsed
    raise ValueError(f"not a number: {value!r}")


def number_interval(value: Decimal) -> tuple[Decimal, Decimal]:
    """The range a number's implicit precision covers: `1.5` -> (1.45, 1.55), `100` -> 99.5..100.5.

    FHIR search (R4 §3.1.1.4.2) compares `eq` on this range, half a unit of the last written digit
    either side.
    """
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int):
        raise ValueError(f"not a finite number: {value!r}")
    half_unit = Decimal(5).scaleb(exponent - 1)
    return value - half_unit, value + half_unit
