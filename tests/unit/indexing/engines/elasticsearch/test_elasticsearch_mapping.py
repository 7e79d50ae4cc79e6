"""Elasticsearch mappings and `_source` documents (indexing/engines/elasticsearch/mapping.py)."""

from __future__ import annotations

from typing import Any

import pytest

from indexing.document import index_document
from indexing.engines.elasticsearch.mapping import (
    IndexSettings,
    field_name,
    from_source,
    index_body,
    index_mappings,
    to_source,
    tombstone_source,
)
from indexing.extract import extract_values
from indexing.registry import SearchParamRegistry

KEYWORD = {"type": "keyword", "ignore_above": 8191}
DATE = {"type": "date", "format": "strict_date_optional_time||epoch_millis"}
DATE_RANGE = {"type": "date_range", "format": "strict_date_optional_time||epoch_millis"}
TOKEN = {
    "properties": {k: KEYWORD for k in ("system", "code", "display", "text", "forms", "of_type")}
}
QUANTITY_PROPERTIES = {
    "gte": {"type": "double"},
    "lte": {"type": "double"},
    "value": {"type": "double"},
    "range": {"type": "double_range"},
    "system": KEYWORD,
    "code": KEYWORD,
    "unit": KEYWORD,
}


@pytest.fixture(scope="module")
def observation(registry: SearchParamRegistry) -> dict[str, Any]:
    properties: dict[str, Any] = index_mappings(registry, "Observation")["properties"]
    return properties


def test_mapping_is_not_dynamic_and_has_the_bookkeeping_fields(
    registry: SearchParamRegistry,
) -> None:
    mappings = index_mappings(registry, "Patient")
    assert mappings["dynamic"] is False
    properties = mappings["properties"]
    assert properties["id"] == KEYWORD
    assert properties["resourceType"] == KEYWORD
    assert properties["versionId"] == {"type": "long"}
    assert properties["lastUpdated"] == DATE
    assert properties["deleted"] == {"type": "boolean"}


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("code", TOKEN),
        (
            "subject",
            {
                "properties": {
                    k: KEYWORD for k in ("ref", "type", "id", "url", "version", "identifier")
                }
            },
        ),
        ("date", {"properties": {"gte": DATE, "lte": DATE, "range": DATE_RANGE}}),
        ("value-quantity", {"type": "nested", "properties": QUANTITY_PROPERTIES}),
        ("value-string", {"properties": {"norm": KEYWORD, "exact": KEYWORD}}),
        ("_profile", {"properties": {"uri": KEYWORD}}),
        (
            "code-value-quantity",
            {
                "type": "nested",
                "properties": {
                    "code": TOKEN,
                    "value-quantity": {"properties": QUANTITY_PROPERTIES},
                },
            },
        ),
    ],
)
def test_observation_field_per_parameter_type(
    observation: dict[str, Any], code: str, expected: dict[str, Any]
) -> None:
    assert observation[code] == expected


def test_number_parameter_is_double_and_double_range(registry: SearchParamRegistry) -> None:
    properties = index_mappings(registry, "RiskAssessment")["properties"]
    assert properties["probability"] == {
        "properties": {
            "gte": {"type": "double"},
            "lte": {"type": "double"},
            "value": {"type": "double"},
            "range": {"type": "double_range"},
        }
    }


def test_metadata_field_names_are_renamed(observation: dict[str, Any]) -> None:
    assert field_name("_id") == "fhir_id"
    assert field_name("_source") == "fhir_source"
    assert field_name("_profile") == "_profile"
    assert "_id" not in observation and "_source" not in observation
    assert "fhir_id" in observation and "fhir_source" in observation


def test_special_parameters_have_no_field(observation: dict[str, Any]) -> None:
    assert "_text" not in observation and "_content" not in observation


def test_index_body_settings_default_to_one_shard_no_replica(
    registry: SearchParamRegistry,
) -> None:
    body = index_body(registry, "Patient")
    assert body["settings"] == {
        "number_of_shards": 1,
        "number_of_replicas": 0,
        "refresh_interval": "1s",
        "mapping": {"total_fields": {"limit": 4000}},
    }
    custom = index_body(registry, "Patient", IndexSettings(shards=3, replicas=1))
    assert custom["settings"]["number_of_shards"] == 3
    assert custom["settings"]["number_of_replicas"] == 1


def _observation_document(registry: SearchParamRegistry) -> dict[str, Any]:
    resource = {
        "resourceType": "Observation",
        "id": "o1",
        "meta": {"versionId": "3", "lastUpdated": "2024-06-01T10:00:00Z", "source": "urn:x"},
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
        "effectiveDateTime": "2024-03",
        "valueQuantity": {"value": 120, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"},
    }
    return index_document(registry, resource, extract_values(registry, resource))


def test_source_adds_ranges_and_deleted(registry: SearchParamRegistry) -> None:
    source = to_source(registry, _observation_document(registry))
    assert source["id"] == "o1" and source["versionId"] == 3 and source["deleted"] is False
    assert source["date"] == [
        {
            "gte": "2024-03-01T00:00:00.000Z",
            "lte": "2024-03-31T23:59:59.999Z",
            "range": {"gte": "2024-03-01T00:00:00.000Z", "lte": "2024-03-31T23:59:59.999Z"},
        }
    ]
    assert source["value-quantity"][0]["range"] == {"gte": 119.5, "lte": 120.5}
    composite = source["code-value-quantity"][0]
    assert composite["value-quantity"]["range"] == {"gte": 119.5, "lte": 120.5}
    assert composite["code"]["forms"] == ["8480-6", "http://loinc.org|8480-6", "http://loinc.org|"]
    assert source["fhir_id"][0]["code"] == "o1"
    assert source["fhir_source"] == [{"uri": "urn:x"}]
    assert "_id" not in source and "_source" not in source


def test_from_source_undoes_to_source(registry: SearchParamRegistry) -> None:
    document = _observation_document(registry)
    assert from_source(to_source(registry, document)) == document


def test_tombstone_keeps_the_deleting_version() -> None:
    tombstone = tombstone_source("Patient", "p1", 7)
    assert tombstone == {"id": "p1", "resourceType": "Patient", "versionId": 7, "deleted": True}
    assert from_source(tombstone) is None
