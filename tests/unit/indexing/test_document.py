"""The engine-neutral index document: bookkeeping fields and one field shape per type."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from indexing.document import index_document, token_forms, value_document
from indexing.extract import (
    CompositeValue,
    DateValue,
    NumberValue,
    QuantityValue,
    ReferenceValue,
    StringValue,
    TokenValue,
    UriValue,
    Value,
    extract_values,
)
from indexing.registry import SearchParamRegistry

PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "meta": {"versionId": "3", "lastUpdated": "2024-03-01T10:00:00.5+05:00"},
    "identifier": [
        {
            "system": "urn:mrn",
            "value": "M|1",
            "type": {"coding": [{"system": "urn:v2", "code": "MR"}]},
        }
    ],
    "name": [{"family": "Lefèvre"}],
    "gender": "female",
}


def test_index_document_carries_bookkeeping_and_parameter_fields(
    registry: SearchParamRegistry,
) -> None:
    document = index_document(registry, PATIENT, extract_values(registry, PATIENT))
    assert document == {
        "id": "p1",
        "resourceType": "Patient",
        "versionId": 3,
        "lastUpdated": "2024-03-01T05:00:00.500Z",
        "_id": [
            {"system": None, "code": "p1", "display": None, "text": None, "forms": ["p1", "|p1"]}
        ],
        "_lastUpdated": [{"gte": "2024-03-01T05:00:00.500Z", "lte": "2024-03-01T05:00:00.599Z"}],
        "identifier": [
            {
                "system": "urn:mrn",
                "code": "M|1",
                "display": None,
                "text": None,
                "forms": ["M\\|1", "urn:mrn|M\\|1", "urn:mrn|"],
                "of_type": ["urn:v2|MR|M\\|1"],
            }
        ],
        "family": [{"norm": "lefevre", "exact": "Lefèvre"}],
        "name": [{"norm": "lefevre", "exact": "Lefèvre"}],
        "phonetic": [{"norm": "lefevre", "exact": "Lefèvre"}],
        "gender": [
            {
                "system": None,
                "code": "female",
                "display": None,
                "text": None,
                "forms": ["female", "|female"],
            }
        ],
        "deceased": [
            {
                "system": None,
                "code": "false",
                "display": None,
                "text": None,
                "forms": ["false", "|false"],
            }
        ],
    }


@pytest.mark.parametrize(
    ("resource", "message"),
    [
        ({"resourceType": "Patient"}, "needs resourceType and id"),
        ({"resourceType": "Patient", "id": "x"}, "needs meta.versionId"),
        (
            {
                "resourceType": "Patient",
                "id": "x",
                "meta": {"versionId": "a", "lastUpdated": "2024"},
            },
            "not an integer",
        ),
    ],
)
def test_index_document_requires_what_the_store_assigns(
    registry: SearchParamRegistry, resource: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        index_document(registry, resource, {})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (StringValue("zoe", "Zoë"), {"norm": "zoe", "exact": "Zoë"}),
        (
            TokenValue("http://loinc.org", "1-8", "Ácid"),
            {
                "system": "http://loinc.org",
                "code": "1-8",
                "display": "Ácid",
                "text": "acid",
                "forms": ["1-8", "http://loinc.org|1-8", "http://loinc.org|"],
            },
        ),
        (
            TokenValue("", "x"),
            {"system": "", "code": "x", "display": None, "text": None, "forms": ["x", "|x"]},
        ),
        (
            TokenValue("urn:s", None),
            {"system": "urn:s", "code": None, "display": None, "text": None, "forms": ["urn:s|"]},
        ),
        (
            TokenValue(None, None, "Burnt Ear"),
            {
                "system": None,
                "code": None,
                "display": "Burnt Ear",
                "text": "burnt ear",
                "forms": [],
            },
        ),
        (
            DateValue("2024-01-01T00:00:00.000Z", "2024-12-31T23:59:59.999Z"),
            {"gte": "2024-01-01T00:00:00.000Z", "lte": "2024-12-31T23:59:59.999Z"},
        ),
        (
            NumberValue(Decimal("1.5"), Decimal("1.45"), Decimal("1.55")),
            {"gte": 1.45, "lte": 1.55, "value": 1.5},
        ),
        (
            QuantityValue(
                Decimal("107"),
                Decimal("106.5"),
                Decimal("107.5"),
                "http://unitsofmeasure.org",
                "mm[Hg]",
                "mmHg",
            ),
            {
                "gte": 106.5,
                "lte": 107.5,
                "value": 107,
                "system": "http://unitsofmeasure.org",
                "code": "mm[Hg]",
                "unit": "mmHg",
            },
        ),
        (
            ReferenceValue(
                "Patient/1",
                "Patient",
                "1",
                "http://x/fhir/Patient/1",
                None,
                TokenValue("urn:mrn", "7"),
            ),
            {
                "ref": "Patient/1",
                "type": "Patient",
                "id": "1",
                "url": "http://x/fhir/Patient/1",
                "version": None,
                "identifier": ["7", "urn:mrn|7", "urn:mrn|"],
            },
        ),
        (UriValue("http://a/b"), {"uri": "http://a/b"}),
        (
            CompositeValue(
                (
                    ("code", TokenValue("s", "c")),
                    (
                        "value-quantity",
                        QuantityValue(Decimal(5), Decimal("4.5"), Decimal("5.5"), None, None, None),
                    ),
                )
            ),
            {
                "code": {
                    "system": "s",
                    "code": "c",
                    "display": None,
                    "text": None,
                    "forms": ["c", "s|c", "s|"],
                },
                "value-quantity": {
                    "gte": 4.5,
                    "lte": 5.5,
                    "value": 5,
                    "system": None,
                    "code": None,
                    "unit": None,
                },
            },
        ),
    ],
)
def test_value_document_shapes(value: Value, expected: dict[str, Any]) -> None:
    assert value_document(value) == expected


@pytest.mark.parametrize(
    ("system", "code", "forms"),
    [
        ("s", "c", ["c", "s|c", "s|"]),
        (None, "c", ["c", "|c"]),
        ("a\\b", "x|y", ["x\\|y", "a\\\\b|x\\|y", "a\\\\b|"]),
    ],
)
def test_token_forms_escape_as_fhir_search_does(
    system: str | None, code: str, forms: list[str]
) -> None:
    assert token_forms(system, code) == forms
