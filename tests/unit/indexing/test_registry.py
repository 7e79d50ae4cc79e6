"""The search-parameter registry: loading search-params/, narrowing, compiling, registering."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

from indexing._fastpath import compile_fast_path
from indexing._fhirpath import RESOURCE_TYPES, compile_fhirpath
from indexing.registry import Component, SearchParam, SearchParamRegistry

R4_DIR = REPO / "search-params" / "r4"


def _r4_definitions() -> list[dict[str, Any]]:
    return [d for path in sorted(R4_DIR.glob("*.json")) for d in json.loads(path.read_text())]


def test_all_official_r4_definitions_are_stored_once() -> None:
    definitions = _r4_definitions()
    assert len(definitions) == 1375
    assert len({d["url"] for d in definitions}) == 1375


def test_every_definition_loads_and_every_url_is_known(registry: SearchParamRegistry) -> None:
    for definition in _r4_definitions():
        param = registry.by_url(definition["url"])
        assert param is not None and param.code == definition["code"]


def test_every_expression_compiles_for_every_type_it_applies_to(
    registry: SearchParamRegistry,
) -> None:
    compiled = 0
    for resource_type in sorted(RESOURCE_TYPES):
        for code, param in registry.for_type(resource_type).items():
            expression = param.expression_for(resource_type)
            if not expression:
                assert code in {"_text", "_content", "_query"}, (resource_type, code)
                continue
            compile_fhirpath(expression)
            for component in param.components:
                compile_fhirpath(component.expression)
                assert registry.by_url(component.definition) is not None, component
            compiled += 1
    assert compiled > 2500


def test_nearly_every_narrowed_expression_takes_the_fast_path(
    registry: SearchParamRegistry,
) -> None:
    slow = {
        param.expression_for(resource_type)
        for resource_type in RESOURCE_TYPES
        for param in registry.for_type(resource_type).values()
        if param.expression_for(resource_type)
        and compile_fast_path(param.expression_for(resource_type)) is None
    }
    assert slow == {
        "Bundle.entry[0].resource",
        "Patient.deceased.exists() and Patient.deceased != false",
    }


IG_PARAMS = {
    "ImagingStudy": [
        "patient",
        "subject",
        "identifier",
        "started",
        "based-on",
        "basedon",
        "status",
        "modality",
        "endpoint",
    ],
    "DiagnosticReport": [
        "patient",
        "subject",
        "identifier",
        "code",
        "category",
        "status",
        "issued",
        "based-on",
        "date",
        "addendum-of",
    ],
    "ServiceRequest": [
        "patient",
        "subject",
        "identifier",
        "code",
        "category",
        "status",
        "authored",
        "occurrence",
        "based-on",
    ],
    "Patient": ["identifier", "gender", "birthdate", "family", "given", "name"],
    "DocumentReference": [
        "patient",
        "subject",
        "identifier",
        "date",
        "period",
        "type",
        "status",
        "category",
    ],
}


@pytest.mark.parametrize(
    ("resource_type", "code"), [(t, c) for t, codes in IG_PARAMS.items() for c in codes]
)
def test_parameters_the_ig_searches_on_are_present(
    registry: SearchParamRegistry, resource_type: str, code: str
) -> None:
    assert registry.get(resource_type, code) is not None


@pytest.mark.parametrize(
    "code", ["_id", "_lastUpdated", "_tag", "_profile", "_security", "_source"]
)
def test_resource_level_parameters_apply_to_every_type(
    registry: SearchParamRegistry, code: str
) -> None:
    for resource_type in ("Patient", "Bundle", "Binary", "ImagingStudy"):
        param = registry.get(resource_type, code)
        assert param is not None and param.base == ("Resource",)


def test_domain_resource_text_does_not_apply_to_bundle(registry: SearchParamRegistry) -> None:
    assert registry.get("Patient", "_text") is not None
    assert registry.get("Bundle", "_text") is None


def test_ig_based_on_is_a_reference_to_service_request(registry: SearchParamRegistry) -> None:
    param = registry.get("ImagingStudy", "based-on")
    assert param is not None
    assert (param.type, param.expression, param.target) == (
        "reference",
        "ImagingStudy.basedOn",
        ("ServiceRequest",),
    )


@pytest.mark.parametrize(
    ("url", "resource_type", "narrowed"),
    [
        (
            "http://hl7.org/fhir/SearchParameter/clinical-patient",
            "ImagingStudy",
            "ImagingStudy.subject.where(resolve() is Patient)",
        ),
        (
            "http://hl7.org/fhir/SearchParameter/clinical-patient",
            "AllergyIntolerance",
            "AllergyIntolerance.patient",
        ),
        (
            "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated",
            "Patient",
            "Patient.meta.lastUpdated",
        ),
        (
            "http://hl7.org/fhir/SearchParameter/Observation-value-quantity",
            "Observation",
            "(Observation.value as Quantity) | (Observation.value as SampledData)",
        ),
        (
            "http://hl7.org/fhir/SearchParameter/clinical-date",
            "DiagnosticReport",
            "DiagnosticReport.effective",
        ),
        (
            "http://hl7.org/fhir/SearchParameter/InsurancePlan-name",
            "InsurancePlan",
            "InsurancePlan.name | InsurancePlan.alias",
        ),
    ],
)
def test_expression_for_keeps_only_the_branches_of_that_type(
    registry: SearchParamRegistry, url: str, resource_type: str, narrowed: str
) -> None:
    param = registry.by_url(url)
    assert param is not None
    assert param.expression_for(resource_type) == narrowed


def test_composite_components_keep_definition_and_expression(
    registry: SearchParamRegistry,
) -> None:
    param = registry.get("Observation", "code-value-quantity")
    assert param is not None and param.type == "composite"
    assert param.components == (
        Component("http://hl7.org/fhir/SearchParameter/clinical-code", "code"),
        Component(
            "http://hl7.org/fhir/SearchParameter/Observation-value-quantity", "value.as(Quantity)"
        ),
    )


def test_evaluators_are_compiled_once_per_type_and_code(registry: SearchParamRegistry) -> None:
    first = registry.bound("Patient", "birthdate")
    assert first is not None and first is registry.bound("Patient", "birthdate")


def _custom(**overrides: Any) -> dict[str, Any]:
    definition = {
        "resourceType": "SearchParameter",
        "url": "http://example.org/SearchParameter/Patient-nickname",
        "code": "nickname",
        "base": ["Patient"],
        "type": "string",
        "expression": "Patient.name.where(use = 'nickname').given",
    }
    definition.update(overrides)
    return {k: v for k, v in definition.items() if v is not None}


def test_register_adds_a_client_parameter() -> None:
    registry = SearchParamRegistry.load()
    param = registry.register(_custom())
    assert param == SearchParam(
        url="http://example.org/SearchParameter/Patient-nickname",
        code="nickname",
        type="string",
        base=("Patient",),
        expression="Patient.name.where(use = 'nickname').given",
    )
    assert registry.get("Patient", "nickname") is param
    bound = registry.bound("Patient", "nickname")
    assert bound is not None
    patient = {"resourceType": "Patient", "name": [{"use": "nickname", "given": ["Bob"]}]}
    assert [node.data for node in bound.evaluate(patient)] == ["Bob"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"code": None}, "SearchParameter.code is required"),
        ({"base": None}, "SearchParameter.base is required"),
        ({"base": ["Patent"]}, "unknown resource types: ['Patent']"),
        ({"type": None}, "SearchParameter.type is required"),
        ({"type": "text"}, "SearchParameter.type 'text' is not one of"),
        ({"expression": None}, "SearchParameter.expression is required"),
        ({"expression": "Patient.name.where("}, "does not compile"),
        ({"expression": "Observation.code"}, "selects nothing in Patient"),
        ({"code": "resourceType"}, "is reserved by the index"),
        ({"type": "composite"}, "needs SearchParameter.component"),
        ({"resourceType": "Patient"}, "expected a SearchParameter"),
    ],
)
def test_register_rejects_an_invalid_parameter_precisely(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")):
        SearchParamRegistry.load().register(_custom(**overrides))


def test_load_reads_an_explicit_directory(tmp_path: Path) -> None:
    (tmp_path / "local.json").write_text(json.dumps([_custom()]))
    registry = SearchParamRegistry.load(tmp_path)
    assert len(registry) == 1
    assert set(registry.for_type("Patient")) == {"nickname"}


def test_load_names_the_file_of_a_bad_definition(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text(json.dumps([_custom(type="text")]))
    with pytest.raises(ValueError, match=r"bad.json \[0\]"):
        SearchParamRegistry.load(tmp_path)


def test_a_later_directory_overrides_r4_for_the_same_base_and_code(tmp_path: Path) -> None:
    (tmp_path / "r4").mkdir()
    (tmp_path / "ig").mkdir()
    (tmp_path / "r4" / "core.json").write_text(json.dumps([_custom(url="urn:core")]))
    (tmp_path / "ig" / "local.json").write_text(json.dumps([_custom(url="urn:ig")]))
    param = SearchParamRegistry.load(tmp_path).get("Patient", "nickname")
    assert param is not None and param.url == "urn:ig"
