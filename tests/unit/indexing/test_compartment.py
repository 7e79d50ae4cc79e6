"""The Patient compartment from its R4 CompartmentDefinition (indexing/compartment.py)."""

from __future__ import annotations

import pytest

from indexing.compartment import Compartment
from indexing.registry import SearchParamRegistry


@pytest.fixture(scope="module")
def registry() -> SearchParamRegistry:
    return SearchParamRegistry.load()


def test_the_definition_loads_with_its_member_types() -> None:
    compartment = Compartment.load()
    assert compartment.code == "Patient"
    assert compartment.url == "http://hl7.org/fhir/CompartmentDefinition/patient"
    assert compartment.params["Observation"] == ("subject", "performer")
    assert compartment.params["Patient"] == ("link",)
    assert "Organization" not in compartment.params  # listed without parameters: no member
    assert compartment.types[0] == "Patient"
    assert len(compartment.types) == 66


def test_owners_are_the_patients_a_resource_points_at(registry: SearchParamRegistry) -> None:
    compartment = Compartment.load()
    obs = {
        "resourceType": "Observation",
        "id": "o",
        "subject": {"reference": "Patient/p1"},
        "performer": [{"reference": "Patient/p2"}, {"reference": "Practitioner/d"}],
        "focus": [{"reference": "Patient/p3"}],  # not a compartment parameter of Observation
    }
    assert compartment.owners(registry, "Observation", obs) == {"p1", "p2"}
    patient = {
        "resourceType": "Patient",
        "id": "p4",
        "link": [{"other": {"reference": "Patient/p5"}, "type": "seealso"}],
    }
    assert compartment.owners(registry, "Patient", patient) == {"p4", "p5"}
    org = {"resourceType": "Organization", "id": "x"}
    assert compartment.owners(registry, "Organization", org) == set()


def test_a_definition_of_something_else_is_refused() -> None:
    with pytest.raises(ValueError):
        Compartment.parse({"resourceType": "SearchParameter"})
