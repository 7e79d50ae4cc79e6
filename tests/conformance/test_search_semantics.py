"""Search semantics a generic FHIR client relies on (R4 search.html), through the HTTP API on
every deployment: `ne` needs a value, and on a quantity with a unit a value in that unit
(§3.1.1.4.1 prefixes); numbers in exponent notation carry the precision of their significant
digits (§3.1.1.4.2 number); a chain through a reference with several target types runs over every
target type that defines the chained parameter (§3.1.1.6.4).

A plain FHIR server (IG mode off), seeded with one transaction of PUTs:

| id | resource |
|---|---|
| pa1 | Patient Alma, identifier mrn 111 |
| loc1 | Location "Alma ward", identifier mrn 111 |
| g1 | Group, identifier mrn 222 |
| enc1 | Encounter finished, of pa1 |
| x1 | Observation of pa1 in enc1, 2024-01-02, 100 mg |
| x2 | Observation of loc1, 2024-01-03, no value, focus pa1 |
| x3 | Observation of g1, no date, no value |
| x4 | Observation of pa1, 2024-01-02, 100 g |
| x5 | Observation of pa1, 2024-01-04, 0.85 mg |
| x6 | Observation of pa1, 2024-01-05, 40 mg |
| ra1, ra3, ra4 | RiskAssessment, probability 0.85, 0.5, 0.95 |
| ra2 | RiskAssessment without a probability |
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from litestar.testing import AsyncTestClient

from tests.conformance._clients import DEPLOYMENTS, PLAIN_FHIR, client_with
from tests.conformance.test_search_features import ids, search, seed, self_params

Client = AsyncTestClient[Any]
MRN = "http://example.org/mrn"
UCUM = "http://unitsofmeasure.org"


def observation(
    id_: str, subject: str, day: str | None, value: tuple[float, str] | None, **extra: Any
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": id_,
        "status": "final",
        "code": {"text": "test"},
        "subject": {"reference": subject},
        **extra,
    }
    if day is not None:
        resource["effectiveDateTime"] = day
    if value is not None:
        number, unit = value
        resource["valueQuantity"] = {"value": number, "unit": unit, "system": UCUM, "code": unit}
    return resource


def risk(id_: str, probability: float | None) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "RiskAssessment",
        "id": id_,
        "status": "final",
        "subject": {"reference": "Patient/pa1"},
    }
    if probability is not None:
        resource["prediction"] = [{"probabilityDecimal": probability}]
    return resource


RESOURCES: list[dict[str, Any]] = [
    {
        "resourceType": "Patient",
        "id": "pa1",
        "identifier": [{"system": MRN, "value": "111"}],
        "name": [{"family": "Alma"}],
    },
    {
        "resourceType": "Location",
        "id": "loc1",
        "identifier": [{"system": MRN, "value": "111"}],
        "name": "Alma ward",
    },
    {
        "resourceType": "Group",
        "id": "g1",
        "type": "person",
        "actual": True,
        "identifier": [{"system": MRN, "value": "222"}],
    },
    {
        "resourceType": "Encounter",
        "id": "enc1",
        "status": "finished",
        "class": {"code": "AMB"},
        "subject": {"reference": "Patient/pa1"},
    },
    observation(
        "x1", "Patient/pa1", "2024-01-02", (100, "mg"), encounter={"reference": "Encounter/enc1"}
    ),
    observation("x2", "Location/loc1", "2024-01-03", None, focus=[{"reference": "Patient/pa1"}]),
    observation("x3", "Group/g1", None, None),
    observation("x4", "Patient/pa1", "2024-01-02", (100, "g")),
    observation("x5", "Patient/pa1", "2024-01-04", (0.85, "mg")),
    observation("x6", "Patient/pa1", "2024-01-05", (40, "mg")),
    risk("ra1", 0.85),
    risk("ra2", None),
    risk("ra3", 0.5),
    risk("ra4", 0.95),
]


@pytest.fixture(params=DEPLOYMENTS)
async def server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Client]:
    async with client_with(PLAIN_FHIR, request.param, tmp_path) as client:
        await seed(client, RESOURCES)
        yield client


async def answers(server: Client, cases: list[tuple[str, list[str]]]) -> dict[str, list[str]]:
    """Each query's sorted match ids, keyed by the query (one server for the whole table)."""
    found = {}
    for query, _ in cases:
        found[query] = sorted(ids(await search(server, quote(query, safe="?=&|:."))))
    return found


NE = [
    # a date: a resource without a value does not match ne (x3 has no date)
    ("Observation?date=ne2024-01-02", ["x2", "x5", "x6"]),
    # a number: ra2 has no probability
    ("RiskAssessment?probability=ne0.5", ["ra1", "ra4"]),
    # a quantity without a unit: any unit, but a value is needed (x2, x3 have none)
    ("Observation?value-quantity=ne100", ["x5", "x6"]),
    # with a unit: only values in that unit that are not equal (x4 is 100 g: another unit)
    (f"Observation?value-quantity=ne100|{UCUM}|mg", ["x5", "x6"]),
    (f"Observation?value-quantity=ne100|{UCUM}|g", []),
    ("Observation?value-quantity=ne40||mg", ["x1", "x5"]),
]


async def test_ne_matches_a_present_value_that_is_not_equal(server: Client) -> None:
    assert await answers(server, NE) == dict(NE)


EXPONENTS = [
    # 8.5e-1 has two significant digits: [0.845, 0.855]; ra1 0.85, ra3 0.5, ra4 0.95, ra2 none
    ("RiskAssessment?probability=8.5e-1", ["ra1"]),
    ("RiskAssessment?probability=eq8.5e-1", ["ra1"]),
    ("RiskAssessment?probability=ne8.5e-1", ["ra3", "ra4"]),
    ("RiskAssessment?probability=gt8.5e-1", ["ra4"]),
    ("RiskAssessment?probability=lt8.5e-1", ["ra3"]),
    ("RiskAssessment?probability=ge8.5e-1", ["ra1", "ra4"]),
    ("RiskAssessment?probability=le8.5e-1", ["ra1", "ra3"]),
    ("RiskAssessment?probability=sa8.5e-1", ["ra4"]),
    ("RiskAssessment?probability=eb8.5e-1", ["ra3"]),
    ("RiskAssessment?probability=ap8.5e-1", ["ra1"]),
    # 1.00e2 is [99.5, 100.5]; 4.0E1 is [39.5, 40.5]
    ("Observation?value-quantity=1.00e2", ["x1", "x4"]),
    (f"Observation?value-quantity=1.00e2|{UCUM}|mg", ["x1"]),
    ("Observation?value-quantity=4.0E1", ["x6"]),
    ("Observation?value-quantity=8.5e-1||mg", ["x5"]),
    (f"Observation?value-quantity=gt4.0E1|{UCUM}|mg", ["x1"]),
    (f"Observation?value-quantity=lt4.0E1|{UCUM}|mg", ["x5"]),
    (f"Observation?value-quantity=ne1.00e2|{UCUM}|mg", ["x5", "x6"]),
    (f"Observation?value-quantity=le1.00e2|{UCUM}|g", ["x4"]),
    ("Observation?value-quantity=ap4.0E1", ["x6"]),
    ("Observation?value-quantity=4.0E+1", ["x6"]),  # the `+` sent percent-encoded
]


async def test_numbers_in_exponent_notation_keep_their_significant_digits(
    server: Client,
) -> None:
    assert await answers(server, EXPONENTS) == dict(EXPONENTS)
    # and sent as it is, where it decodes to a space
    assert ids(await search(server, "Observation?value-quantity=4.0E+1")) == ["x6"]


CHAINS = [
    # subject: Group, Device, Patient, Location, all with identifier; x1, x4-x6 are pa1's, x2
    # is loc1's, x3 is g1's
    (f"Observation?subject.identifier={MRN}|111", ["x1", "x2", "x4", "x5", "x6"]),
    (f"Observation?subject.identifier={MRN}|222", ["x3"]),
    (
        f"Observation?subject.identifier={MRN}|111,{MRN}|222",
        ["x1", "x2", "x3", "x4", "x5", "x6"],
    ),
    # name: on Patient and Location only
    ("Observation?subject.name=alma", ["x1", "x2", "x4", "x5", "x6"]),
    # encounter: Encounter and EpisodeOfCare, both with status
    ("Observation?encounter.status=finished", ["x1"]),
    ("Observation?encounter.status=planned", []),
    (f"Observation?encounter.subject.identifier={MRN}|111", ["x1"]),
    # focus: any of the 146 types; identifier is on 112 of them
    (f"Observation?focus.identifier={MRN}|111", ["x2"]),
    (f"Observation?focus.identifier={MRN}|222", []),
    # `_has` under every target type: the RiskAssessments point at pa1, a Patient
    ("Observation?subject._has:RiskAssessment:subject:probability=ge0.5", ["x1", "x4", "x5", "x6"]),
    ("Observation?subject._has:RiskAssessment:subject:probability=gt2", []),
    # `:Type` still names one target
    (f"Observation?subject:Patient.identifier={MRN}|111", ["x1", "x4", "x5", "x6"]),
    (f"Observation?subject:Location.identifier={MRN}|111", ["x2"]),
]


async def test_a_chain_runs_over_every_target_type_that_defines_the_parameter(
    server: Client,
) -> None:
    assert await answers(server, CHAINS) == dict(CHAINS)


async def test_a_chain_no_target_type_defines_names_the_types_considered(server: Client) -> None:
    body = await search(server, "Observation?subject.foo=x", 400, Prefer="handling=strict")
    issue = body["issue"][0]
    assert issue["code"] == "not-supported"
    assert "Group, Device, Patient, Location" in issue["diagnostics"]
    # lenient (the default): left out of the search and of the self link, as any unknown one
    body = await search(server, "Observation?subject.foo=x&_id=x1")
    assert ids(body) == ["x1"]
    assert self_params(body) == [("_id", "x1")]
