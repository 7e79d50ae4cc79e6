"""Normalisation shared by index and query: strings, date intervals, number precision."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexing.normalize import date_interval, normalize_string, number_interval, parse_decimal


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Zoë", "zoe"),
        ("ZOE", "zoe"),
        ("  Jean-François   Lemaître ", "jean-francois lemaitre"),
        ("Ångström\tMüller", "angstrom muller"),
        ("Straße", "strasse"),  # case folding, not lower-casing
        ("ﬁle", "file"),  # NFKD splits the ligature
        ("", ""),
    ],
)
def test_normalize_string_folds_case_accents_and_whitespace(text: str, expected: str) -> None:
    assert normalize_string(text) == expected


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("2024", "2024-01-01T00:00:00.000Z", "2024-12-31T23:59:59.999Z"),
        ("2024-02", "2024-02-01T00:00:00.000Z", "2024-02-29T23:59:59.999Z"),
        ("2023-02", "2023-02-01T00:00:00.000Z", "2023-02-28T23:59:59.999Z"),
        ("2024-03-01", "2024-03-01T00:00:00.000Z", "2024-03-01T23:59:59.999Z"),
        ("2024-03-01T10:00", "2024-03-01T10:00:00.000Z", "2024-03-01T10:00:59.999Z"),
        ("2024-03-01T10:00:00", "2024-03-01T10:00:00.000Z", "2024-03-01T10:00:00.999Z"),
        ("2024-03-01T10:00:00Z", "2024-03-01T10:00:00.000Z", "2024-03-01T10:00:00.999Z"),
        ("2024-03-01T10:00:00+05:00", "2024-03-01T05:00:00.000Z", "2024-03-01T05:00:00.999Z"),
        ("2024-03-01T02:00:00+05:00", "2024-02-29T21:00:00.000Z", "2024-02-29T21:00:00.999Z"),
        ("2021-02-16T08:00:00-05:00", "2021-02-16T13:00:00.000Z", "2021-02-16T13:00:00.999Z"),
        ("2024-03-01T10:00:00.5Z", "2024-03-01T10:00:00.500Z", "2024-03-01T10:00:00.599Z"),
        ("2024-03-01T10:00:00.50Z", "2024-03-01T10:00:00.500Z", "2024-03-01T10:00:00.509Z"),
        ("2024-03-01T10:00:00.123Z", "2024-03-01T10:00:00.123Z", "2024-03-01T10:00:00.123Z"),
        ("2024-03-01T10:00:00.1239-04:00", "2024-03-01T14:00:00.123Z", "2024-03-01T14:00:00.123Z"),
        ("0001", "0001-01-01T00:00:00.000Z", "0001-12-31T23:59:59.999Z"),
        ("9999-12-31T23:00:00-05:00", "9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59.999Z"),
        ("2024-03-01T10:00:00+00:00", "2024-03-01T10:00:00.000Z", "2024-03-01T10:00:00.999Z"),
        ("2024-03-01T10:00-00:00", "2024-03-01T10:00:00.000Z", "2024-03-01T10:00:59.999Z"),
        ("2024-03-01T10:00:00.12", "2024-03-01T10:00:00.120Z", "2024-03-01T10:00:00.129Z"),
        ("2024-03-01T10:00:00.000001Z", "2024-03-01T10:00:00.000Z", "2024-03-01T10:00:00.000Z"),
        ("2024-12", "2024-12-01T00:00:00.000Z", "2024-12-31T23:59:59.999Z"),
        ("2024-02-29T23:59:59Z", "2024-02-29T23:59:59.000Z", "2024-02-29T23:59:59.999Z"),
    ],
)
def test_date_interval_covers_the_precision_in_utc(text: str, low: str, high: str) -> None:
    assert date_interval(text) == (low, high)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "x",
        "24",
        "2024-13",
        "2024-02-30",
        "2024-01-01T25:00:00Z",
        "2024-01-01T10",
        "2024-01-01T10:00:00+15:00",
        "2024-01-01 10:00:00",
        "0000",
        "0000-01-01",
        "2024-00",
        "2023-02-29",
        "2024-04-31T10:00:00Z",
        "2024-01-01T23:60:00Z",
        "2024-01-01T23:59:60Z",
        "2024-01-01T24:00",
    ],
)
def test_date_interval_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        date_interval(text)


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    precision=st.sampled_from(["minutes", "seconds", "milliseconds", "microseconds"]),
    hours=st.integers(min_value=-14, max_value=14),
)
def test_an_instant_has_one_interval_whatever_its_zone(
    moment: datetime, precision: str, hours: int
) -> None:
    """UTC values take a shortcut; the same instant written at another offset must agree."""
    utc = moment.isoformat(timespec=precision)
    elsewhere = (moment + timedelta(hours=hours)).isoformat(timespec=precision)
    offset = f"{'-' if hours < 0 else '+'}{abs(hours):02d}:00"
    assert date_interval(f"{utc}Z") == date_interval(f"{elsewhere}{offset}")
    assert date_interval(utc) == date_interval(f"{utc}+00:00")


def test_date_interval_strings_sort_as_instants() -> None:
    ordered = ["0999", "2024-02-29T21:00:00Z", "2024-03-01", "2024-03-01T05:00:00Z"]
    lows = [date_interval(text)[0] for text in ordered]
    assert lows == sorted(lows)


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [
        (1.5, "1.45", "1.55"),
        (100, "99.5", "100.5"),
        (Decimal("1.50"), "1.495", "1.505"),
        ("0.001", "0.0005", "0.0015"),
        ("1e2", "50", "150"),
        (-3, "-3.5", "-2.5"),
    ],
)
def test_number_interval_is_half_a_unit_of_the_last_digit(
    value: object, low: str, high: str
) -> None:
    assert number_interval(parse_decimal(value)) == (Decimal(low), Decimal(high))


@pytest.mark.parametrize("value", [True, "abc", "NaN", None, [1]])
def test_parse_decimal_rejects_non_numbers(value: object) -> None:
    with pytest.raises(ValueError):
        parse_decimal(value)
