"""The dict-walking fast path answers exactly what fhirpathpy answers, on every example."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import R4_FIXTURES, bundle_resources, load_json

from indexing._fastpath import compile_fast_path, first_keys
from indexing._fhirpath import Evaluator, Node, compile_fhirpath
from indexing.extract import extract_values
from indexing.registry import SearchParamRegistry
from tests._data import IG_EPISODES as EPISODES
from tests._data import SYNTHEA

SOURCES = [*EPISODES, *SYNTHEA, *sorted(R4_FIXTURES.glob("*.json"))]
_VALUE_TYPES = (
    "Quantity",
    "CodeableConcept",
    "String",
    "Boolean",
    "Integer",
    "Range",
    "Ratio",
    "SampledData",
    "Time",
    "DateTime",
    "Period",
)  # Observation.value[x], in the order R4 lists them


def _resources(path: Path) -> list[dict[str, Any]]:
    content = load_json(path)
    return bundle_resources(path) if content.get("resourceType") == "Bundle" else [content]


def _canonical(nodes: list[Node]) -> list[str]:
    return sorted(json.dumps([n.type, n.data], sort_keys=True, default=str) for n in nodes)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_fast_path_matches_fhirpathpy(registry: SearchParamRegistry, path: Path) -> None:
    pairs: dict[str, tuple[Evaluator, Evaluator]] = {}
    compared = 0
    for resource in _resources(path):
        resource_type = resource["resourceType"]
        for param in registry.for_type(resource_type).values():
            expressions = [param.expression_for(resource_type)]
            expressions += [component.expression for component in param.components]
            for expression in filter(None, expressions):
                if expression not in pairs:
                    fast = compile_fast_path(expression)
                    if fast is None:
                        continue
                    pairs[expression] = (fast, compile_fhirpath(expression))
                fast, reference = pairs[expression]
                try:
                    expected = reference(resource)
                except Exception:  # fhirpathpy's `as` refuses several items
                    continue
                assert _canonical(fast(resource)) == _canonical(expected), expression
                compared += 1
    assert compared > 0


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_extraction_is_the_same_with_and_without_fast_path(
    registry: SearchParamRegistry, path: Path
) -> None:
    reference = SearchParamRegistry.load(fast_path=False)
    for resource in _resources(path):
        fast = extract_values(registry, resource)
        slow = extract_values(reference, resource)
        # fhirpathpy fails `x as T` on several items; the fast path filters (see _fastpath).
        for code in set(fast) - set(slow):
            assert code.endswith(("value-concept", "value-quantity")), code
        assert {code: fast[code] for code in slow} == slow


@pytest.mark.parametrize(
    ("expression", "keys"),
    [
        ("DiagnosticReport.subject", ("subject",)),
        ("DiagnosticReport.effective", ("effectiveDateTime", "effectivePeriod")),
        ("ImagingStudy.endpoint | ImagingStudy.series.endpoint", ("endpoint", "series")),
        ("(Observation.value as Quantity).value", tuple(f"value{t}" for t in _VALUE_TYPES)),
        ("Patient.extension.where(url = 'x').value", ("extension",)),
        ("Patient.deceased.exists() and Patient.deceased != false", None),
        ("identifier", None),  # relative to a node (a composite's component): no resource
    ],
)
def test_first_keys_name_what_the_resource_must_have(
    expression: str, keys: tuple[str, ...] | None
) -> None:
    assert first_keys(expression) == keys
