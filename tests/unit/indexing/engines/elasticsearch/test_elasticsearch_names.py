"""Index and alias names (indexing/engines/names.py)."""

from __future__ import annotations

import pytest

from indexing.engines.names import (
    alias_name,
    index_generation,
    index_name,
    is_alias_of,
    validate_prefix,
)


def test_alias_and_index_names() -> None:
    assert alias_name("micdr", "ImagingStudy") == "micdr-imagingstudy"
    assert index_name("micdr", "ImagingStudy", 3) == "micdr-imagingstudy-v3"


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        ("micdr-patient-v1", 1),
        ("micdr-patient-v12", 12),
        ("micdr-patient", None),
        ("micdr-patient-v0", None),
        ("micdr-test-patient-v1", None),
        ("micdr-patientx-v1", None),
    ],
)
def test_index_generation(index: str, expected: int | None) -> None:
    assert index_generation("micdr", "Patient", index) == expected


def test_alias_of_a_prefix_ignores_longer_prefixes() -> None:
    assert is_alias_of("micdr", "micdr-patient")
    assert not is_alias_of("micdr", "micdr-test-patient")
    assert not is_alias_of("micdr", "micdr-patient-v1")


@pytest.mark.parametrize("prefix", ["", "Micdr", "-x", "_x", "a b", "a*"])
def test_invalid_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError):
        validate_prefix(prefix)


def test_type_names_are_letters_only() -> None:
    with pytest.raises(ValueError):
        alias_name("micdr", "Patient-1")
