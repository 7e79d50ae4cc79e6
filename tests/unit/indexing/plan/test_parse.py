"""parse_search: FHIR R4 search URL -> SearchPlan (R4 search.html; Ontario MI IG R32-R46).

Every table row is `query -> the exact plan` (or the exact error). Queries are written as a
client sends them (percent-encoded where a browser would encode) and decoded with parse_qsl,
as the HTTP layer does.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import pytest

from indexing.plan.errors import InvalidSearch
from indexing.plan.parse import parse_search
from indexing.plan.plan import (
    Chain,
    Clause,
    CompositeMatch,
    DateMatch,
    Has,
    IdIn,
    Include,
    Missing,
    NumberMatch,
    Predicate,
    RefMatch,
    SearchPlan,
    SortKey,
    StringMatch,
    TokenMatch,
    UriMatch,
)
from indexing.registry import SearchParamRegistry

HCN = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn"
UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")


def parse(registry: SearchParamRegistry, url: str, **options: Any) -> SearchPlan:
    resource_type, _, query = url.partition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    return parse_search(registry, resource_type or None, pairs, **options)


def pairs(url: str) -> tuple[tuple[str, str], ...]:
    return tuple(parse_qsl(url.partition("?")[2], keep_blank_values=True))


def one_clause(url: str, *predicates: Predicate) -> SearchPlan:
    """The plan of a one-parameter search whose canonical form is the query as written."""
    return SearchPlan(
        types=(url.partition("?")[0],), clauses=(Clause(predicates),), self_params=pairs(url)
    )


def d(param: str, prefix: str, gte: str, lte: str) -> DateMatch:
    return DateMatch(param, prefix, gte, lte)  # type: ignore[arg-type]


def chain(param: str, target: str, *inner: Predicate) -> Chain:
    return Chain(param, (target,), Clause(inner))


# -- strings ------------------------------------------------------------------------------

STRINGS = [
    ("Patient?name=Peter", StringMatch("name", "peter")),
    ("Patient?name=ZO%C3%8B", StringMatch("name", "zoe")),
    ("Patient?family=%20%C3%85STR%C3%96M%20%20Lee", StringMatch("family", "astrom lee")),
    ("Patient?name:exact=Zo%C3%AB", StringMatch("name", "Zoë", "exact")),
    ("Patient?name:exact=zo%C3%AB", StringMatch("name", "zoë", "exact")),
    ("Patient?name:contains=%C3%85str", StringMatch("name", "astr", "contains")),
    ("Patient?address-city=Toronto", StringMatch("address-city", "toronto")),
    (r"Patient?name=Smith\,%20John", StringMatch("name", "smith, john")),
    (r"Patient?name:exact=a\|b\$c\\d", StringMatch("name", "a|b$c\\d", "exact")),
    ("Patient?name=ge2020", StringMatch("name", "ge2020")),  # strings take no prefix
]


@pytest.mark.parametrize(("url", "predicate"), STRINGS)
def test_string_modes(registry: SearchParamRegistry, url: str, predicate: Predicate) -> None:
    assert parse(registry, url) == one_clause(url, predicate)


# -- tokens -------------------------------------------------------------------------------

TOKENS = [
    ("Observation?code=1234-5", TokenMatch("code", "1234-5")),
    (f"Observation?code={LOINC}|1234-5", TokenMatch("code", f"{LOINC}|1234-5")),
    (f"Observation?code={LOINC}|", TokenMatch("code", f"{LOINC}|")),
    ("Observation?code=|1234-5", TokenMatch("code", "|1234-5")),
    (r"Observation?code=a\|b", TokenMatch("code", r"a\|b")),
    (r"Observation?code=http://x|a\|b", TokenMatch("code", r"http://x|a\|b")),
    (r"Observation?code=a\\b", TokenMatch("code", r"a\\b")),
    (r"Observation?code=a\,b", TokenMatch("code", "a,b")),
    ("Observation?code:text=H%C3%A9art%20RATE", TokenMatch("code", "heart rate", text=True)),
    (
        f"Observation?code:not={LOINC}|1234-5",
        TokenMatch("code", f"{LOINC}|1234-5", negate=True),
    ),
    ("Patient?gender:not=male", TokenMatch("gender", "male", negate=True)),
    (
        "Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|446053",
        TokenMatch(
            "identifier", "http://terminology.hl7.org/CodeSystem/v2-0203|MR|446053", of_type=True
        ),
    ),
    ("Patient?identifier:of-type=|MR|446053", TokenMatch("identifier", "|MR|446053", of_type=True)),
    (f"Patient?identifier={HCN}|5566009041", TokenMatch("identifier", f"{HCN}|5566009041")),
    ("Patient?gender:missing=true", Missing("gender", True)),
    ("Patient?gender:missing=false", Missing("gender", False)),
    ("Patient?_tag=http://example.org/tags|vip", TokenMatch("_tag", "http://example.org/tags|vip")),
    ("Patient?_security=|R", TokenMatch("_security", "|R")),
    (
        "Patient?_profile=http://x/StructureDefinition/p",
        UriMatch("_profile", "http://x/StructureDefinition/p"),
    ),
    (
        "Patient?_source=http://contributor.example",
        UriMatch("_source", "http://contributor.example"),
    ),
]


@pytest.mark.parametrize(("url", "predicate"), TOKENS)
def test_token_forms_and_modifiers(
    registry: SearchParamRegistry, url: str, predicate: Predicate
) -> None:
    assert parse(registry, url) == one_clause(url, predicate)


def test_comma_is_or_within_one_clause_and_repeats_are_and(registry: SearchParamRegistry) -> None:
    url = "Observation?code=a,b&code=c&status=final"
    assert parse(registry, url) == SearchPlan(
        types=("Observation",),
        clauses=(
            Clause((TokenMatch("code", "a"), TokenMatch("code", "b"))),
            Clause((TokenMatch("code", "c"),)),
            Clause((TokenMatch("status", "final"),)),
        ),
        self_params=(("code", "a,b"), ("code", "c"), ("status", "final")),
    )


def test_id_is_an_id_set(registry: SearchParamRegistry) -> None:
    assert parse(registry, "Patient?_id=a,b.c") == one_clause(
        "Patient?_id=a,b.c", IdIn(("a", "b.c"))
    )


# -- dates --------------------------------------------------------------------------------

# value as written (percent-encoded) -> the interval its precision covers, in UTC.
DATE_PRECISIONS = [
    ("2024", "2024-01-01T00:00:00.000Z", "2024-12-31T23:59:59.999Z"),
    ("2024-02", "2024-02-01T00:00:00.000Z", "2024-02-29T23:59:59.999Z"),
    ("2023-02", "2023-02-01T00:00:00.000Z", "2023-02-28T23:59:59.999Z"),
    ("2024-02-29", "2024-02-29T00:00:00.000Z", "2024-02-29T23:59:59.999Z"),
    ("2024-02-29T10:30", "2024-02-29T10:30:00.000Z", "2024-02-29T10:30:59.999Z"),
    ("2024-02-29T10:30Z", "2024-02-29T10:30:00.000Z", "2024-02-29T10:30:59.999Z"),
    ("2024-02-29T10:30:15", "2024-02-29T10:30:15.000Z", "2024-02-29T10:30:15.999Z"),
    ("2024-02-29T10:30:15Z", "2024-02-29T10:30:15.000Z", "2024-02-29T10:30:15.999Z"),
    ("2024-02-29T10:30:15%2B05:00", "2024-02-29T05:30:15.000Z", "2024-02-29T05:30:15.999Z"),
    ("2024-02-29T10:30:15-05:00", "2024-02-29T15:30:15.000Z", "2024-02-29T15:30:15.999Z"),
    ("2024-03-01T02:00:00%2B05:00", "2024-02-29T21:00:00.000Z", "2024-02-29T21:00:00.999Z"),
    ("2024-02-29T10:30:15.5Z", "2024-02-29T10:30:15.500Z", "2024-02-29T10:30:15.599Z"),
    ("2024-02-29T10:30:15.123-05:00", "2024-02-29T15:30:15.123Z", "2024-02-29T15:30:15.123Z"),
    # An unencoded `+` arrives as a space: read as the zone it obviously was.
    ("2024-02-29T10:30:15+05:00", "2024-02-29T05:30:15.000Z", "2024-02-29T05:30:15.999Z"),
]


@pytest.mark.parametrize("prefix", ["", *PREFIXES])
@pytest.mark.parametrize(("value", "gte", "lte"), DATE_PRECISIONS)
def test_date_prefix_and_precision(
    registry: SearchParamRegistry, prefix: str, value: str, gte: str, lte: str
) -> None:
    url = f"Patient?birthdate={prefix}{value}"
    assert parse(registry, url) == one_clause(url, d("birthdate", prefix or "eq", gte, lte))


def test_last_updated_is_a_date_on_its_own_field(registry: SearchParamRegistry) -> None:
    url = "Patient?_lastUpdated=gt2024-01-01T00:00:00Z&_lastUpdated=lt2024-02"
    assert parse(registry, url) == SearchPlan(
        types=("Patient",),
        clauses=(
            Clause(
                (d("_lastUpdated", "gt", "2024-01-01T00:00:00.000Z", "2024-01-01T00:00:00.999Z"),)
            ),
            Clause(
                (d("_lastUpdated", "lt", "2024-02-01T00:00:00.000Z", "2024-02-29T23:59:59.999Z"),)
            ),
        ),
        self_params=pairs(url),
    )


# -- numbers and quantities ---------------------------------------------------------------

NUMBERS = [
    ("RiskAssessment?probability=100", NumberMatch("probability", "eq", 100.0, 99.5, 100.5)),
    ("RiskAssessment?probability=100.00", NumberMatch("probability", "eq", 100.0, 99.995, 100.005)),
    # exponent notation: the precision of the significant digits written
    ("RiskAssessment?probability=1e2", NumberMatch("probability", "eq", 100.0, 50.0, 150.0)),
    ("RiskAssessment?probability=1.00e2", NumberMatch("probability", "eq", 100.0, 99.5, 100.5)),
    # an unencoded `+` decodes to a space; the exponent's sign is meant
    ("RiskAssessment?probability=1.00e+2", NumberMatch("probability", "eq", 100.0, 99.5, 100.5)),
    (
        "Observation?value-quantity=gt1.0E+1||mg",
        NumberMatch("value-quantity", "gt", 10.0, 9.5, 10.5, None, "mg", quantity=True),
    ),
    ("RiskAssessment?probability=4.0E1", NumberMatch("probability", "eq", 40.0, 39.5, 40.5)),
    ("RiskAssessment?probability=8.5e-1", NumberMatch("probability", "eq", 0.85, 0.845, 0.855)),
    (
        "RiskAssessment?probability=-2.50E%2B3",
        NumberMatch("probability", "eq", -2500.0, -2505.0, -2495.0),
    ),
    *[
        (f"RiskAssessment?probability={p}8.5e-1", NumberMatch("probability", p, 0.85, 0.845, 0.855))  # type: ignore[arg-type]
        for p in PREFIXES
    ],
    (
        f"Observation?value-quantity=ne1.00e2|{UCUM}|mg",
        NumberMatch("value-quantity", "ne", 100.0, 99.5, 100.5, UCUM, "mg", quantity=True),
    ),
    ("RiskAssessment?probability=0.8", NumberMatch("probability", "eq", 0.8, 0.75, 0.85)),
    ("RiskAssessment?probability=-1.5", NumberMatch("probability", "eq", -1.5, -1.55, -1.45)),
    *[
        (f"RiskAssessment?probability={p}0.8", NumberMatch("probability", p, 0.8, 0.75, 0.85))  # type: ignore[arg-type]
        for p in PREFIXES
    ],
    (
        f"Observation?value-quantity=5.4|{UCUM}|mg",
        NumberMatch("value-quantity", "eq", 5.4, 5.35, 5.45, UCUM, "mg", quantity=True),
    ),
    (
        "Observation?value-quantity=5.4||mg",
        NumberMatch("value-quantity", "eq", 5.4, 5.35, 5.45, None, "mg", quantity=True),
    ),
    (
        "Observation?value-quantity=lt5.4",
        NumberMatch("value-quantity", "lt", 5.4, 5.35, 5.45, quantity=True),
    ),
    (
        f"Observation?value-quantity=ge5.4|{UCUM}|",
        NumberMatch("value-quantity", "ge", 5.4, 5.35, 5.45, UCUM, None, quantity=True),
    ),
    (
        f"Observation?value-quantity=ap5.40e-3|{UCUM}|g",  # three significant digits
        NumberMatch("value-quantity", "ap", 0.0054, 0.005395, 0.005405, UCUM, "g", quantity=True),
    ),
    (
        r"Observation?value-quantity=5|http://x|mm\|Hg",
        NumberMatch("value-quantity", "eq", 5.0, 4.5, 5.5, "http://x", "mm|Hg", quantity=True),
    ),
]


@pytest.mark.parametrize(("url", "predicate"), NUMBERS)
def test_numbers_and_quantities(
    registry: SearchParamRegistry, url: str, predicate: Predicate
) -> None:
    assert parse(registry, url) == one_clause(url, predicate)


# -- references ---------------------------------------------------------------------------

REFERENCES = [
    ("Observation?subject=Patient/123", [RefMatch("subject", "Patient/123", type="Patient")]),
    (
        "Observation?subject=Patient/123/_history/2",
        [RefMatch("subject", "Patient/123", type="Patient")],
    ),
    ("Observation?patient=123", [RefMatch("patient", "Patient/123", type="Patient")]),
    ("Observation?subject:Patient=123", [RefMatch("subject", "Patient/123", type="Patient")]),
    (
        "Observation?subject:Patient=Patient/123",
        [RefMatch("subject", "Patient/123", type="Patient")],
    ),
    (
        "Observation?subject=123",  # every target type the parameter allows, in its order
        [
            RefMatch("subject", "Group/123", type="Group"),
            RefMatch("subject", "Device/123", type="Device"),
            RefMatch("subject", "Patient/123", type="Patient"),
            RefMatch("subject", "Location/123", type="Location"),
        ],
    ),
    (
        "Observation?subject=http://example.org/fhir/Patient/123",
        [
            RefMatch("subject", "http://example.org/fhir/Patient/123", type="Patient"),
            RefMatch("subject", "Patient/123", type="Patient"),
        ],
    ),
    (
        "Observation?subject:Patient=https://example.org/fhir/Patient/123/_history/4",
        [
            RefMatch("subject", "https://example.org/fhir/Patient/123/_history/4", type="Patient"),
            RefMatch("subject", "Patient/123", type="Patient"),
        ],
    ),
    (
        "Observation?subject=urn:uuid:6f0b2ad6-0e2a-4a57-9b3c-2b6e8e3f2c11",
        [RefMatch("subject", "urn:uuid:6f0b2ad6-0e2a-4a57-9b3c-2b6e8e3f2c11")],
    ),
    (
        "Observation?subject=http://example.org/not-fhir",
        [RefMatch("subject", "http://example.org/not-fhir")],
    ),
    (
        f"Observation?subject:identifier={HCN}|5566009041",
        [RefMatch("subject", f"{HCN}|5566009041", identifier=True)],
    ),
    (
        "ServiceRequest?instantiates-canonical=http://x.org/PlanDefinition/ct|1.0",
        [RefMatch("instantiates-canonical", "http://x.org/PlanDefinition/ct|1.0")],
    ),
    (
        "ServiceRequest?instantiates-canonical=http://x.org/PlanDefinition/ct",
        [
            RefMatch(
                "instantiates-canonical", "http://x.org/PlanDefinition/ct", type="PlanDefinition"
            ),
            RefMatch("instantiates-canonical", "PlanDefinition/ct", type="PlanDefinition"),
        ],
    ),
    ("Observation?subject:identifier=MRN1", [RefMatch("subject", "MRN1", identifier=True)]),
    ("Patient?general-practitioner:missing=false", [Missing("general-practitioner", False)]),
    (
        "Patient?organization=1,Organization/2",
        [
            RefMatch("organization", "Organization/1", type="Organization"),
            RefMatch("organization", "Organization/2", type="Organization"),
        ],
    ),
    (
        "ImagingStudy?endpoint=http://pacs.example/fhir/Endpoint/e1",
        [
            RefMatch("endpoint", "http://pacs.example/fhir/Endpoint/e1", type="Endpoint"),
            RefMatch("endpoint", "Endpoint/e1", type="Endpoint"),
        ],
    ),
]


@pytest.mark.parametrize(("url", "predicates"), REFERENCES)
def test_references_in_every_form(
    registry: SearchParamRegistry, url: str, predicates: list[Predicate]
) -> None:
    assert parse(registry, url) == one_clause(url, *predicates)


# -- uri and composite --------------------------------------------------------------------

OTHERS = [
    ("ValueSet?url=http://x.org/ValueSet/a", UriMatch("url", "http://x.org/ValueSet/a")),
    ("ValueSet?url:below=http://x.org/ValueSet", UriMatch("url", "http://x.org/ValueSet", "below")),
    (
        "ValueSet?url:above=http://x.org/ValueSet/a/b",
        UriMatch("url", "http://x.org/ValueSet/a/b", "above"),
    ),
    (
        f"Observation?code-value-quantity={LOINC}|8480-6$gt150|{UCUM}|mm[Hg]",
        CompositeMatch(
            "code-value-quantity",
            (
                TokenMatch("code", f"{LOINC}|8480-6"),
                NumberMatch("value-quantity", "gt", 150.0, 149.5, 150.5, UCUM, "mm[Hg]", True),
            ),
        ),
    ),
    (
        "Observation?code-value-date=8480-6$ge2024-01",
        CompositeMatch(
            "code-value-date",
            (
                TokenMatch("code", "8480-6"),
                d("value-date", "ge", "2024-01-01T00:00:00.000Z", "2024-01-31T23:59:59.999Z"),
            ),
        ),
    ),
    (
        r"Observation?code-value-concept=a\$b$http://snomed.info/sct|123",
        CompositeMatch(
            "code-value-concept",
            (TokenMatch("code", "a$b"), TokenMatch("value-concept", "http://snomed.info/sct|123")),
        ),
    ),
    ("Observation?code-value-quantity:missing=true", Missing("code-value-quantity", True)),
]


@pytest.mark.parametrize(("url", "predicate"), OTHERS)
def test_uris_and_composites(registry: SearchParamRegistry, url: str, predicate: Predicate) -> None:
    assert parse(registry, url) == one_clause(url, predicate)


# -- chains and _has ----------------------------------------------------------------------

CHAINS = [
    (
        f"DiagnosticReport?patient.identifier={HCN}|5566009041",
        chain("patient", "Patient", TokenMatch("identifier", f"{HCN}|5566009041")),
    ),
    (
        "DiagnosticReport?subject:Patient.identifier=s|v",
        chain("subject", "Patient", TokenMatch("identifier", "s|v")),
    ),
    (  # several targets, but only Patient has `gender`
        "DiagnosticReport?subject.gender=male",
        chain("subject", "Patient", TokenMatch("gender", "male")),
    ),
    (  # every target has `identifier`: one chain over them all
        "DiagnosticReport?subject.identifier=s|v",
        Chain(
            "subject",
            ("Group", "Device", "Patient", "Location"),
            Clause((TokenMatch("identifier", "s|v"),)),
        ),
    ),
    (  # `name` on Patient and Location only
        "Observation?subject.name=alma,bo",
        Chain(
            "subject",
            ("Patient", "Location"),
            Clause((StringMatch("name", "alma"), StringMatch("name", "bo"))),
        ),
    ),
    (
        "Observation?encounter.status=finished",
        Chain(
            "encounter", ("Encounter", "EpisodeOfCare"), Clause((TokenMatch("status", "finished"),))
        ),
    ),
    (  # a level through several types inside one with a single type
        "Observation?encounter:Encounter.subject.identifier=s|v",
        chain(
            "encounter",
            "Encounter",
            Chain("subject", ("Group", "Patient"), Clause((TokenMatch("identifier", "s|v"),))),
        ),
    ),
    (  # a bare id, typed by each type's own `organization` targets (alike here)
        "Observation?subject.organization=o1",
        Chain(
            "subject",
            ("Device", "Patient", "Location"),
            Clause((RefMatch("organization", "Organization/o1", type="Organization"),)),
        ),
    ),
    (
        "Patient?_has:Observation:patient:code=1234-5",
        Has("Observation", "patient", Clause((TokenMatch("code", "1234-5"),))),
    ),
    (
        "Patient?_has:Observation:subject:code=1234-5,9-9",
        Has(
            "Observation",
            "subject",
            Clause((TokenMatch("code", "1234-5"), TokenMatch("code", "9-9"))),
        ),
    ),
    (
        "Patient?_has:Observation:patient:_has:AuditEvent:entity:agent=Practitioner/1",
        Has(
            "Observation",
            "patient",
            Clause(
                (
                    Has(
                        "AuditEvent",
                        "entity",
                        Clause((RefMatch("agent", "Practitioner/1", type="Practitioner"),)),
                    ),
                )
            ),
        ),
    ),
    (
        "Encounter?_has:Observation:encounter:patient.gender=female",
        Has(
            "Observation",
            "encounter",
            Clause((chain("patient", "Patient", TokenMatch("gender", "female")),)),
        ),
    ),
]


@pytest.mark.parametrize(("url", "predicate"), CHAINS)
def test_chains_and_reverse_chains(
    registry: SearchParamRegistry, url: str, predicate: Predicate
) -> None:
    assert parse(registry, url) == one_clause(url, predicate)


def test_a_chain_splits_where_the_criterion_differs_by_target(
    registry: SearchParamRegistry,
) -> None:
    # `_has` is resolved on the one type it points at, so each target gets its own chain.
    url = "Observation?subject._has:Observation:subject:code=x"
    has = Clause((Has("Observation", "subject", Clause((TokenMatch("code", "x"),))),))
    expected = [Chain("subject", (t,), has) for t in ("Group", "Device", "Patient", "Location")]
    assert parse(registry, url) == one_clause(url, *expected)
    # a nested level through a parameter each type defines with its own targets
    url = "Task?focus.based-on.identifier=x"
    plan = parse(registry, url)
    groups = {c.targets: c.inner for c in plan.clauses[0].any_of if isinstance(c, Chain)}
    identifier = Clause((TokenMatch("identifier", "x"),))
    assert groups[("CarePlan",)] == Clause((Chain("based-on", ("CarePlan",), identifier),))
    assert groups[("Media", "Procedure", "QuestionnaireResponse")] == Clause(
        (Chain("based-on", ("CarePlan", "ServiceRequest"), identifier),)
    )
    assert groups[("ServiceRequest",)] == Clause(
        (Chain("based-on", ("CarePlan", "MedicationRequest", "ServiceRequest"), identifier),)
    )
    assert len(groups) == 7


def test_a_chain_no_target_defines_names_the_types_considered(
    registry: SearchParamRegistry,
) -> None:
    with pytest.raises(InvalidSearch) as raised:
        parse(registry, "Observation?subject.foo=x", strict=True)
    assert raised.value.diagnostics == (
        "subject.foo: no target type of 'subject' (Group, Device, Patient, Location) has a"
        " parameter 'foo'"
    )


def test_ig_birth_date_spelling_is_an_alias_with_the_r4_code_in_self(
    registry: SearchParamRegistry,
) -> None:
    plan = parse(registry, "ServiceRequest?patient.birthDate=ge1980&birthDate=2000")
    assert plan.clauses[0] == Clause(
        (
            chain(
                "patient",
                "Patient",
                d("birthdate", "ge", "1980-01-01T00:00:00.000Z", "1980-12-31T23:59:59.999Z"),
            ),
        )
    )
    assert plan.self_params == (("patient.birthdate", "ge1980"),)  # ServiceRequest has none


# -- result parameters --------------------------------------------------------------------

RESULTS = [
    (
        "ServiceRequest?_sort=identifier,-authored",
        SearchPlan(
            types=("ServiceRequest",),
            sort=(SortKey("identifier"), SortKey("authored", descending=True)),
            self_params=(("_sort", "identifier,-authored"),),
        ),
    ),
    (
        "Patient?_sort=-_lastUpdated,_id&_count=0",
        SearchPlan(
            types=("Patient",),
            sort=(SortKey("_lastUpdated", True), SortKey("_id")),
            count=0,
            self_params=(("_sort", "-_lastUpdated,_id"), ("_count", "0")),
        ),
    ),
    (
        "Patient?_sort=birthDate,unknown,-name",  # lenient: the unknown key is dropped
        SearchPlan(
            types=("Patient",),
            sort=(SortKey("birthdate"), SortKey("name", True)),
            self_params=(("_sort", "birthdate,-name"),),
        ),
    ),
    ("Patient?_count=5", SearchPlan(types=("Patient",), count=5, self_params=(("_count", "5"),))),
    (
        "Patient?_count=5000",
        SearchPlan(types=("Patient",), count=1000, self_params=(("_count", "1000"),)),
    ),
    (
        "Patient?_total=accurate&_summary=count",
        SearchPlan(
            types=("Patient",),
            total="accurate",
            summary="count",
            self_params=(("_total", "accurate"), ("_summary", "count")),
        ),
    ),
    (
        "Patient?_elements=identifier,name&_format=json&_pretty=true",
        SearchPlan(
            types=("Patient",),
            elements=("identifier", "name"),
            self_params=(("_elements", "identifier,name"),),
        ),
    ),
    (
        "DiagnosticReport?_include=DiagnosticReport:subject:Patient"
        "&_include:iterate=Patient:organization&_revinclude=Provenance:target"
        "&_include=*&_include:recurse=Patient:general-practitioner",
        SearchPlan(
            types=("DiagnosticReport",),
            includes=(
                Include("DiagnosticReport", "subject", "Patient"),
                Include("Patient", "organization", iterate=True),
                Include("Provenance", "target", reverse=True),
                Include("DiagnosticReport", "*"),
                Include("Patient", "general-practitioner", iterate=True),
            ),
            self_params=(
                ("_include", "DiagnosticReport:subject:Patient"),
                ("_include:iterate", "Patient:organization"),
                ("_revinclude", "Provenance:target"),
                ("_include", "*"),
                ("_include:iterate", "Patient:general-practitioner"),
            ),
        ),
    ),
    (
        "DiagnosticReport?_include=DiagnosticReport:*&_revinclude:iterate=Observation:patient",
        SearchPlan(
            types=("DiagnosticReport",),
            includes=(
                Include("DiagnosticReport", "*"),
                Include("Observation", "patient", reverse=True, iterate=True),
            ),
            self_params=(
                ("_include", "DiagnosticReport:*"),
                ("_revinclude:iterate", "Observation:patient"),
            ),
        ),
    ),
    (
        "?_type=Patient,Observation&_lastUpdated=ge2024",
        SearchPlan(
            types=("Patient", "Observation"),
            clauses=(
                Clause(
                    (
                        d(
                            "_lastUpdated",
                            "ge",
                            "2024-01-01T00:00:00.000Z",
                            "2024-12-31T23:59:59.999Z",
                        ),
                    )
                ),
            ),
            self_params=(("_type", "Patient,Observation"), ("_lastUpdated", "ge2024")),
        ),
    ),
    (
        "?_id=a&_type=Patient",  # _type applies whatever its position
        SearchPlan(
            types=("Patient",),
            clauses=(Clause((IdIn(("a",)),)),),
            self_params=(("_id", "a"), ("_type", "Patient")),
        ),
    ),
    (
        "?_tag=a|b",
        SearchPlan(
            types=(),
            clauses=(Clause((TokenMatch("_tag", "a|b"),)),),
            self_params=(("_tag", "a|b"),),
        ),
    ),
]


@pytest.mark.parametrize(("url", "plan"), RESULTS)
def test_result_parameters(registry: SearchParamRegistry, url: str, plan: SearchPlan) -> None:
    assert parse(registry, url) == plan


def test_count_defaults_and_caps_are_configurable(registry: SearchParamRegistry) -> None:
    assert parse(registry, "Patient?", default_count=50).count == 50
    assert parse(registry, "Patient?", default_count=50, max_count=10).count == 10
    assert parse(registry, "Patient?_count=30", max_count=25).count == 25


# -- errors -------------------------------------------------------------------------------

# Always 400 `invalid`, strict or not: the value is wrong, not unknown.
INVALID = [
    "Patient?name=",
    "Observation?code=a,,b",
    "Observation?code=|",
    "Observation?code=a|b|c",
    "Patient?identifier:of-type=MR|1",
    "Patient?gender:missing=maybe",
    "Patient?birthdate=2024-13",
    "Patient?birthdate=2024-02-30",
    "Patient?birthdate=2024-01-01T10",
    "Patient?birthdate=xx2024",
    "Patient?birthdate=ge",
    "Patient?birthdate=yesterday",
    "RiskAssessment?probability=abc",
    "RiskAssessment?probability=1_000",
    "RiskAssessment?probability=NaN",
    "RiskAssessment?probability=1|x|y",
    "Observation?value-quantity=5.4|mg",
    "Observation?value-quantity=gt|x|y",
    "Observation?subject=Foo/1",
    "Observation?subject=Patient/1|2",
    "Observation?subject=http://x/a|1|2",
    "Observation?subject=http://x/a|",
    "Observation?subject=a b",
    "Observation?subject:Patient=Group/1",
    "Observation?subject:Practitioner=1",
    "Observation?code-value-quantity=8480-6",
    "Observation?code-value-quantity=8480-6$",
    "DiagnosticReport?subject:Practitioner.name=x",
    "DiagnosticReport?subject:missing.name=x",
    "Patient?name.family=x",
    "Encounter?_has:Observation:patient:code=x",
    "Patient?_has:Foo:patient:code=x",
    "Patient?_has:Observation:code:code=x",
    "Patient?_has:Observation:patient=x",
    "Patient?_count=-1",
    "Patient?_count=ten",
    "Patient?_count=1&_count=2",
    "Patient?_sort=",
    "Patient?_sort=name,",
    "Patient?_total=some",
    "Patient?_summary=yes",
    "Patient?_elements=name,,id",
    "DiagnosticReport?_include=DiagnosticReport",
    "DiagnosticReport?_include=DiagnosticReport:code",
    "DiagnosticReport?_include=Foo:subject",
    "DiagnosticReport?_include=DiagnosticReport:subject:Medication",
    "?_type=Patient,Nope",
    "?_type=",
]


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("url", INVALID)
def test_malformed_values_are_always_invalid(
    registry: SearchParamRegistry, url: str, strict: bool
) -> None:
    with pytest.raises(InvalidSearch) as raised:
        parse(registry, url, strict=strict)
    assert (raised.value.status, raised.value.code) == (400, "invalid")
    assert raised.value.expression and raised.value.diagnostics


# Unknown parameters and unsupported modifiers: 400 `not-supported` when strict, else left out.
UNSUPPORTED = [
    "Patient?foo=bar",
    "Patient?Name=x",  # codes are case-sensitive
    "Observation?code:in=http://x/ValueSet/v",
    "Observation?code:not-in=http://x/ValueSet/v",
    "Observation?code:below=http://snomed.info/sct|123",
    "Observation?code:above=http://snomed.info/sct|123",
    "Observation?code:exact=x",
    "Patient?name:text=x",
    "Patient?name:nope=x",
    "Patient?birthdate:exact=2024",
    "Observation?subject:above=Patient/1",
    "ValueSet?url:contains=x",
    "Patient?_id:not=1",
    "Patient?_text=x",
    "Patient?_content=x",
    "Patient?_list=42",
    "Patient?_query=everything",
    "Patient?_contained=true",
    "Location?near=42.2|-71.1|10|km",
    "DiagnosticReport?patient.foo=x",
    "DiagnosticReport?subject.foo=x",  # no target type (Group, Device, Patient, Location) has it
    "Observation?subject.organization.foo=x",  # Patient and Device have organization, not foo
    "Patient?_has:Observation:foo:code=x",
    "Patient?_sort=foo",
    "Observation?_sort=code-value-quantity",
    "Patient?_sort:asc=name",
    "Patient?_count:x=1",
    "Patient?_type=Patient",
    "DiagnosticReport?_include=Patient:organization",
    "DiagnosticReport?_include:foo=DiagnosticReport:subject",
    "DiagnosticReport?_include=DiagnosticReport:nope",
    "DiagnosticReport?_revinclude=Observation:performer",
    "DiagnosticReport?_revinclude=*",
    "?_type=Patient,Observation&name=x",  # `name` exists on Patient only
]


@pytest.mark.parametrize("url", UNSUPPORTED)
def test_unknown_or_unsupported_is_rejected_when_strict(
    registry: SearchParamRegistry, url: str
) -> None:
    with pytest.raises(InvalidSearch) as raised:
        parse(registry, url, strict=True)
    assert (raised.value.status, raised.value.code) == (400, "not-supported")
    assert raised.value.diagnostics


@pytest.mark.parametrize("url", UNSUPPORTED)
def test_unknown_or_unsupported_is_left_out_when_lenient(
    registry: SearchParamRegistry, url: str
) -> None:
    plan = parse(registry, url)
    assert plan.clauses == plan.sort == plan.includes == ()
    assert all(key == "_type" for key, _ in plan.self_params)


def test_lenient_keeps_the_understood_parameters(registry: SearchParamRegistry) -> None:
    url = "Observation?foo=1&code=a&code:in=http://x/vs&_sort=nope,date"
    assert parse(registry, url) == SearchPlan(
        types=("Observation",),
        clauses=(Clause((TokenMatch("code", "a"),)),),
        sort=(SortKey("date"),),
        self_params=(("code", "a"), ("_sort", "date")),
    )


def test_unknown_resource_type_is_invalid(registry: SearchParamRegistry) -> None:
    with pytest.raises(InvalidSearch):
        parse_search(registry, "Nope", [])


# -- the Ontario MI IG's searches (docs/ig-requirements.md R32-R46) --------------------------

PATIENT_HCN = chain("patient", "Patient", TokenMatch("identifier", f"{HCN}|5566009041"))
HCN_QUERY = f"patient.identifier={HCN}|5566009041"
JAN_2024 = ("2024-01-01T00:00:00.000Z", "2024-01-31T23:59:59.999Z")

IG_SEARCHES = [
    (  # R32
        f"DocumentReference?{HCN_QUERY}",
        SearchPlan(
            types=("DocumentReference",),
            clauses=(Clause((PATIENT_HCN,)),),
            self_params=(("patient.identifier", f"{HCN}|5566009041"),),
        ),
    ),
    (  # R33 + R38 (an MRN system) + R39 + R40 + R41
        "ServiceRequest?patient.identifier=urn:oid:2.16.840.1.113883.3.239.18.1|MRN42"
        "&patient.gender=female&patient.birthDate=1980-05-17&occurrence=ge2024-01"
        "&authored=lt2024-02-01&status=active&code=http://x/proc|CTHD"
        "&category=http://x/modality|CT&identifier=http://x/accession|A1"
        "&_sort=identifier,-authored&_count=10",
        SearchPlan(
            types=("ServiceRequest",),
            clauses=(
                Clause(
                    (
                        chain(
                            "patient",
                            "Patient",
                            TokenMatch("identifier", "urn:oid:2.16.840.1.113883.3.239.18.1|MRN42"),
                        ),
                    )
                ),
                Clause((chain("patient", "Patient", TokenMatch("gender", "female")),)),
                Clause(
                    (
                        chain(
                            "patient",
                            "Patient",
                            d(
                                "birthdate",
                                "eq",
                                "1980-05-17T00:00:00.000Z",
                                "1980-05-17T23:59:59.999Z",
                            ),
                        ),
                    )
                ),
                Clause((d("occurrence", "ge", *JAN_2024),)),
                Clause(
                    (d("authored", "lt", "2024-02-01T00:00:00.000Z", "2024-02-01T23:59:59.999Z"),)
                ),
                Clause((TokenMatch("status", "active"),)),
                Clause((TokenMatch("code", "http://x/proc|CTHD"),)),
                Clause((TokenMatch("category", "http://x/modality|CT"),)),
                Clause((TokenMatch("identifier", "http://x/accession|A1"),)),
            ),
            sort=(SortKey("identifier"), SortKey("authored", True)),
            count=10,
            self_params=(
                ("patient.identifier", "urn:oid:2.16.840.1.113883.3.239.18.1|MRN42"),
                ("patient.gender", "female"),
                ("patient.birthdate", "1980-05-17"),
                ("occurrence", "ge2024-01"),
                ("authored", "lt2024-02-01"),
                ("status", "active"),
                ("code", "http://x/proc|CTHD"),
                ("category", "http://x/modality|CT"),
                ("identifier", "http://x/accession|A1"),
                ("_sort", "identifier,-authored"),
                ("_count", "10"),
            ),
        ),
    ),
    (  # R34 + R42 + R46 (the brief's example first)
        f"DiagnosticReport?{HCN_QUERY}&issued=ge2024-01&_include=DiagnosticReport:subject"
        f"&status=final,amended&based-on:ServiceRequest.code=http://x/proc|CTHD"
        f"&based-on:ServiceRequest.category=http://x/modality|CT",
        SearchPlan(
            types=("DiagnosticReport",),
            clauses=(
                Clause((PATIENT_HCN,)),
                Clause((d("issued", "ge", *JAN_2024),)),
                Clause((TokenMatch("status", "final"), TokenMatch("status", "amended"))),
                Clause(
                    (chain("based-on", "ServiceRequest", TokenMatch("code", "http://x/proc|CTHD")),)
                ),
                Clause(
                    (
                        chain(
                            "based-on",
                            "ServiceRequest",
                            TokenMatch("category", "http://x/modality|CT"),
                        ),
                    )
                ),
            ),
            includes=(Include("DiagnosticReport", "subject"),),
            self_params=(
                ("patient.identifier", f"{HCN}|5566009041"),
                ("issued", "ge2024-01"),
                ("_include", "DiagnosticReport:subject"),
                ("status", "final,amended"),
                ("based-on:ServiceRequest.code", "http://x/proc|CTHD"),
                ("based-on:ServiceRequest.category", "http://x/modality|CT"),
            ),
        ),
    ),
    (  # R35 + R43 + R49
        f"ImagingStudy?{HCN_QUERY}&started=gt2024-01-01&started=le2024-01-31"
        f"&identifier=urn:dicom:uid|urn:oid:1.2.840.113619.2.1&based-on.code=CTHD"
        f"&_include=ImagingStudy:endpoint",
        SearchPlan(
            types=("ImagingStudy",),
            clauses=(
                Clause((PATIENT_HCN,)),
                Clause(
                    (d("started", "gt", "2024-01-01T00:00:00.000Z", "2024-01-01T23:59:59.999Z"),)
                ),
                Clause(
                    (d("started", "le", "2024-01-31T00:00:00.000Z", "2024-01-31T23:59:59.999Z"),)
                ),
                Clause((TokenMatch("identifier", "urn:dicom:uid|urn:oid:1.2.840.113619.2.1"),)),
                Clause((chain("based-on", "ServiceRequest", TokenMatch("code", "CTHD")),)),
            ),
            includes=(Include("ImagingStudy", "endpoint"),),
            self_params=(
                ("patient.identifier", f"{HCN}|5566009041"),
                ("started", "gt2024-01-01"),
                ("started", "le2024-01-31"),
                ("identifier", "urn:dicom:uid|urn:oid:1.2.840.113619.2.1"),
                ("based-on.code", "CTHD"),
                ("_include", "ImagingStudy:endpoint"),
            ),
        ),
    ),
    (  # R44 + R45 (+ R51: an open start is just `le`)
        f"DocumentReference?{HCN_QUERY}&identifier=http://x/doc|D1&date=le2024-06-30"
        f"&period=ge2024-01&_count=2000",
        SearchPlan(
            types=("DocumentReference",),
            clauses=(
                Clause((PATIENT_HCN,)),
                Clause((TokenMatch("identifier", "http://x/doc|D1"),)),
                Clause((d("date", "le", "2024-06-30T00:00:00.000Z", "2024-06-30T23:59:59.999Z"),)),
                Clause((d("period", "ge", *JAN_2024),)),
            ),
            count=1000,
            self_params=(
                ("patient.identifier", f"{HCN}|5566009041"),
                ("identifier", "http://x/doc|D1"),
                ("date", "le2024-06-30"),
                ("period", "ge2024-01"),
                ("_count", "1000"),
            ),
        ),
    ),
]


@pytest.mark.parametrize(("url", "plan"), IG_SEARCHES)
def test_ig_searches(registry: SearchParamRegistry, url: str, plan: SearchPlan) -> None:
    assert parse(registry, url) == plan
    assert parse(registry, url, strict=True) == plan


def test_patient_identifier_without_system_still_parses_the_ig_rule_is_the_apps(
    registry: SearchParamRegistry,
) -> None:
    # R37 (system AND value required) is an IG rule enforced in app/ig, not a FHIR syntax error.
    plan = parse(registry, "DiagnosticReport?patient.identifier=5566009041")
    assert plan.clauses == (
        Clause((chain("patient", "Patient", TokenMatch("identifier", "5566009041")),)),
    )
