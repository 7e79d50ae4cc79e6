"""extract_values on real examples: one row per (resource, parameter) with the exact values."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from conftest import bundle_resources, episode_resource, r4_example

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
from tests._data import SYNTHEA

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
ACCESSION = "https://example.org/fhir/NamingSystem/hospital-a-accession"
HCN = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn"


def day(date: str) -> DateValue:
    return DateValue(f"{date}T00:00:00.000Z", f"{date}T23:59:59.999Z")


def second(instant: str) -> DateValue:
    return DateValue(f"{instant}.000Z", f"{instant}.999Z")


def ref(type_: str, id_: str, **extra: Any) -> ReferenceValue:
    return ReferenceValue(ref=f"{type_}/{id_}", type=type_, id=id_, **extra)


def mm_hg(value: int) -> QuantityValue:
    return QuantityValue(
        Decimal(value),
        Decimal(value) - Decimal("0.5"),
        Decimal(value) + Decimal("0.5"),
        UCUM,
        "mm[Hg]",
        "mmHg",
    )


def ig(resource_type: str) -> dict[str, Any]:
    return episode_resource(1, resource_type)


# Inline resources for cases the examples do not show.
ZOE = {
    "resourceType": "Patient",
    "id": "zoe",
    "name": [{"family": "Lefèvre", "given": ["Zoë", "Anaïs"], "text": "Zoë  Lefèvre"}],
    "address": [{"line": ["1 Rue Hélène"], "city": "Montréal", "country": "CA"}],
    "telecom": [{"system": "email", "value": "zoe@example.org"}],
    "birthDate": "1990-07",
    "deceasedDateTime": "2024-03-01T10:00:00+05:00",
    "managingOrganization": {"reference": "http://other.example/fhir/Organization/7/_history/3"},
    "generalPractitioner": [
        {"reference": "Practitioner/p1/_history/2"},
        {"type": "Practitioner", "identifier": {"system": "urn:lic", "value": "L-9"}},
        {"reference": "#gp"},
    ],
    "meta": {
        "lastUpdated": "2024-03-01T10:00:00.123+05:00",
        "tag": [{"code": "no-system"}],
        "profile": ["http://example.org/StructureDefinition/p|1.0"],
    },
}
OPEN_ENCOUNTER = {
    "resourceType": "Encounter",
    "id": "open",
    "status": "in-progress",
    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
    "subject": {"reference": "Patient/zoe"},
    "period": {"start": "2024-03-01T08:00:00-05:00"},
    "length": {"value": 1.5, "unit": "h", "system": UCUM, "code": "h"},
}
OBSERVATIONS = {
    "resourceType": "Observation",
    "id": "glucose",
    "status": "final",
    "code": {"coding": [{"system": LOINC, "code": "15074-8"}], "text": "Glucose"},
    "subject": {"reference": "Group/g1"},
    "effectivePeriod": {"end": "2013-04-02"},
    "valueQuantity": {"value": 6.30, "unit": "mmol/l", "system": UCUM, "code": "mmol/L"},
}
RISK = {
    "resourceType": "RiskAssessment",
    "id": "r",
    "status": "final",
    "subject": {"reference": "Patient/zoe"},
    "prediction": [{"probabilityDecimal": 0.02}, {"probabilityDecimal": 100}],
}
TIMED = {
    "resourceType": "MedicationRequest",
    "id": "m",
    "status": "active",
    "intent": "order",
    "medicationCodeableConcept": {"text": "aspirin"},
    "subject": {"reference": "Patient/zoe"},
    "authoredOn": "2024-01-05",
    "dosageInstruction": [{"timing": {"event": ["2024-01-06T08:00:00Z", "2024-01-07"]}}],
}
ADDENDUM = {
    "resourceType": "DiagnosticReport",
    "id": "add",
    "status": "amended",
    "code": {"text": "XR chest addendum"},
    "extension": [
        {
            "url": "http://ontariohealth.ca/fhir/StructureDefinition/ext-di-addendum-of",
            "valueReference": {"reference": "DiagnosticReport/orig"},
        },
        {"url": "http://example.org/other", "valueString": "ignored"},
    ],
}


CASES: list[tuple[str, Any, str, list[Value]]] = [
    # -- IG episode 1 (transaction entries as submitted, urn:uuid references not yet rewritten)
    (
        "ig patient identifiers with types",
        lambda: ig("Patient"),
        "identifier",
        [
            TokenValue(
                "https://example.org/fhir/NamingSystem/hospital-a-mrn",
                "MRN1978347",
                type_codings=((V2_0203, "MR"),),
            ),
            TokenValue(HCN, "5566009041", type_codings=((V2_0203, "JHN"),)),
        ],
    ),
    ("ig patient gender", lambda: ig("Patient"), "gender", [TokenValue(None, "female")]),
    ("ig patient birthdate", lambda: ig("Patient"), "birthdate", [day("1987-08-21")]),
    ("ig patient family", lambda: ig("Patient"), "family", [StringValue("tremblay", "Tremblay")]),
    (
        "ig order authored in -05:00",
        lambda: ig("ServiceRequest"),
        "authored",
        [second("2021-02-16T13:00:00")],
    ),
    (
        "ig order category",
        lambda: ig("ServiceRequest"),
        "category",
        [TokenValue("http://dicom.nema.org/resources/ontology/DCM", "DX")],
    ),
    (
        "ig order code with display",
        lambda: ig("ServiceRequest"),
        "code",
        [TokenValue("urn:oid:2.16.840.1.113883.3.239.99.1", "XR-CHEST", "XR chest 2 views")],
    ),
    (
        "ig order urn subject",
        lambda: ig("ServiceRequest"),
        "subject",
        [
            ReferenceValue(
                ref="urn:uuid:98ba56f9-ce3f-49fa-85de-53dda51a8b77",
                url="urn:uuid:98ba56f9-ce3f-49fa-85de-53dda51a8b77",
            ),
        ],
    ),
    ("ig urn subject is not known to be a Patient", lambda: ig("ServiceRequest"), "patient", []),
    ("ig study started", lambda: ig("ImagingStudy"), "started", [second("2021-02-16T14:30:00")]),
    (
        "ig study based-on",
        lambda: ig("ImagingStudy"),
        "based-on",
        [
            ReferenceValue(
                ref="urn:uuid:1b09f9b9-4dbf-4356-9109-aaa8d2bc3884",
                url="urn:uuid:1b09f9b9-4dbf-4356-9109-aaa8d2bc3884",
            ),
        ],
    ),
    (
        "ig study identifiers",
        lambda: ig("ImagingStudy"),
        "identifier",
        [
            TokenValue("urn:dicom:uid", "urn:oid:1.2.840.99.144272509"),
            TokenValue(ACCESSION, "ACC144272509", type_codings=((V2_0203, "ACSN"),)),
        ],
    ),
    ("ig report issued", lambda: ig("DiagnosticReport"), "issued", [second("2021-02-16T20:00:00")]),
    ("ig report status", lambda: ig("DiagnosticReport"), "status", [TokenValue(None, "final")]),
    (
        "ig report date from effectiveDateTime",
        lambda: ig("DiagnosticReport"),
        "date",
        [second("2021-02-16T14:30:00")],
    ),
    (
        "ig addendum-of extension",
        lambda: ADDENDUM,
        "addendum-of",
        [ref("DiagnosticReport", "orig")],
    ),
    # -- R4 examples
    (
        "r4 patient names",
        lambda: r4_example("Patient-example"),
        "given",
        [
            StringValue("peter", "Peter"),
            StringValue("james", "James"),
            StringValue("jim", "Jim"),
        ],
    ),
    (
        "r4 patient address parts",
        lambda: r4_example("Patient-example"),
        "address",
        [
            StringValue(
                "534 erewhon st peasantville, rainbow, vic 3999",
                "534 Erewhon St PeasantVille, Rainbow, Vic  3999",
            ),
            StringValue("534 erewhon st", "534 Erewhon St"),
            StringValue("pleasantville", "PleasantVille"),
            StringValue("rainbow", "Rainbow"),
            StringValue("vic", "Vic"),
            StringValue("3999", "3999"),
        ],
    ),
    (
        "r4 patient phone: value and use",
        lambda: r4_example("Patient-example"),
        "phone",
        [
            TokenValue("work", "(03) 5555 6473"),
            TokenValue("mobile", "(03) 3410 5613"),
            TokenValue("old", "(03) 5555 8834"),
        ],
    ),
    (
        "r4 patient boolean active",
        lambda: r4_example("Patient-example"),
        "active",
        [TokenValue(None, "true")],
    ),
    ("r4 patient _id", lambda: r4_example("Patient-example"), "_id", [TokenValue(None, "example")]),
    (
        "r4 study started +03:00",
        lambda: r4_example("ImagingStudy-example"),
        "started",
        [second("2011-01-01T08:01:20")],
    ),
    (
        "r4 study patient via resolve()",
        lambda: r4_example("ImagingStudy-example"),
        "patient",
        [ref("Patient", "dicom")],
    ),
    (
        "r4 study modality from series",
        lambda: r4_example("ImagingStudy-example"),
        "modality",
        [TokenValue("http://dicom.nema.org/resources/ontology/DCM", "CT")],
    ),
    (
        "r4 document period",
        lambda: r4_example("DocumentReference-example"),
        "period",
        [DateValue("2004-12-22T21:00:00.000Z", "2004-12-22T21:01:00.999Z")],
    ),
    (
        "r4 document contained author",
        lambda: r4_example("DocumentReference-example"),
        "author",
        [ref("Practitioner", "xcda1"), ReferenceValue(ref="#a2")],
    ),
    (
        "r4 document related: reference and identifier",
        lambda: r4_example("DocumentReference-example"),
        "related",
        [
            ref(
                "Patient",
                "xcda",
                identifier=TokenValue(
                    "urn:ietf:rfc:3986", "urn:oid:1.3.6.1.4.1.21367.2005.3.7.2345"
                ),
            ),
        ],
    ),
    (
        "r4 document location uri",
        lambda: r4_example("DocumentReference-example"),
        "location",
        [UriValue("http://example.org/xds/mhd/Binary/07a6483f-732b-461e-86b6-edb665c45510")],
    ),
    (
        "r4 condition code text apart",
        lambda: r4_example("Condition-example"),
        "code",
        [
            TokenValue("http://snomed.info/sct", "39065001", "Burn of ear"),
            TokenValue(None, None, "Burnt Ear"),
        ],
    ),
    (
        "r4 condition onset choice type",
        lambda: r4_example("Condition-example"),
        "onset-date",
        [day("2012-05-24")],
    ),
    (
        "r4 observation logical based-on",
        lambda: r4_example("Observation-blood-pressure"),
        "based-on",
        [ReferenceValue(ref=None, identifier=TokenValue("https://acme.org/identifiers", "1234"))],
    ),
    (
        "r4 observation profile uri",
        lambda: r4_example("Observation-blood-pressure"),
        "_profile",
        [UriValue("http://hl7.org/fhir/StructureDefinition/vitalsigns")],
    ),
    (
        "r4 observation component values",
        lambda: r4_example("Observation-blood-pressure"),
        "component-value-quantity",
        [mm_hg(107), mm_hg(60)],
    ),
    (
        "r4 observation composite pairs each component's own code and value",
        lambda: r4_example("Observation-blood-pressure"),
        "component-code-value-quantity",
        [
            CompositeValue(
                (
                    ("component-code", TokenValue(LOINC, "8480-6", "Systolic blood pressure")),
                    ("component-value-quantity", mm_hg(107)),
                )
            ),
            CompositeValue(
                (
                    (
                        "component-code",
                        TokenValue(
                            "http://snomed.info/sct", "271649006", "Systolic blood pressure"
                        ),
                    ),
                    ("component-value-quantity", mm_hg(107)),
                )
            ),
            CompositeValue(
                (
                    (
                        "component-code",
                        TokenValue(
                            "http://acme.org/devices/clinical-codes",
                            "bp-s",
                            "Systolic Blood pressure",
                        ),
                    ),
                    ("component-value-quantity", mm_hg(107)),
                )
            ),
            CompositeValue(
                (
                    ("component-code", TokenValue(LOINC, "8462-4", "Diastolic blood pressure")),
                    ("component-value-quantity", mm_hg(60)),
                )
            ),
        ],
    ),
    # -- inline: accents, zones, partial dates, reference forms, open periods, numbers
    (
        "accents folded, exact kept",
        lambda: ZOE,
        "given",
        [StringValue("zoe", "Zoë"), StringValue("anais", "Anaïs")],
    ),
    (
        "name text collapses whitespace",
        lambda: ZOE,
        "name",
        [
            StringValue("zoe lefevre", "Zoë  Lefèvre"),
            StringValue("lefevre", "Lefèvre"),
            StringValue("zoe", "Zoë"),
            StringValue("anais", "Anaïs"),
        ],
    ),
    ("address city accent", lambda: ZOE, "address-city", [StringValue("montreal", "Montréal")]),
    (
        "email via where(system='email')",
        lambda: ZOE,
        "email",
        [TokenValue(None, "zoe@example.org")],
    ),
    (
        "partial birth date widens to the month",
        lambda: ZOE,
        "birthdate",
        [DateValue("1990-07-01T00:00:00.000Z", "1990-07-31T23:59:59.999Z")],
    ),
    ("deceased dateTime +05:00 to UTC", lambda: ZOE, "death-date", [second("2024-03-01T05:00:00")]),
    (
        "_lastUpdated with milliseconds",
        lambda: ZOE,
        "_lastUpdated",
        [DateValue("2024-03-01T05:00:00.123Z", "2024-03-01T05:00:00.123Z")],
    ),
    ("tag without system keeps None", lambda: ZOE, "_tag", [TokenValue(None, "no-system")]),
    (
        "absolute versioned reference",
        lambda: ZOE,
        "organization",
        [
            ref(
                "Organization",
                "7",
                url="http://other.example/fhir/Organization/7/_history/3",
                version="3",
            ),
        ],
    ),
    (
        "versioned, logical and contained references",
        lambda: ZOE,
        "general-practitioner",
        [
            ref("Practitioner", "p1", version="2"),
            ReferenceValue(ref=None, type="Practitioner", identifier=TokenValue("urn:lic", "L-9")),
            ReferenceValue(ref="#gp"),
        ],
    ),
    (
        "open-ended period reaches the end of time",
        lambda: OPEN_ENCOUNTER,
        "date",
        [DateValue("2024-03-01T13:00:00.000Z", "9999-12-31T23:59:59.999Z")],
    ),
    (
        "period with only an end starts at the beginning of time",
        lambda: OBSERVATIONS,
        "date",
        [DateValue("0001-01-01T00:00:00.000Z", "2013-04-02T23:59:59.999Z")],
    ),
    (
        "encounter length quantity",
        lambda: OPEN_ENCOUNTER,
        "length",
        [QuantityValue(Decimal("1.5"), Decimal("1.45"), Decimal("1.55"), UCUM, "h", "h")],
    ),
    (
        "value[x] quantity",
        lambda: OBSERVATIONS,
        "value-quantity",
        [QuantityValue(Decimal("6.3"), Decimal("6.25"), Decimal("6.35"), UCUM, "mmol/L", "mmol/l")],
    ),
    (
        "code-value-quantity composite",
        lambda: OBSERVATIONS,
        "code-value-quantity",
        [
            CompositeValue(
                (
                    ("code", TokenValue(LOINC, "15074-8")),
                    (
                        "value-quantity",
                        QuantityValue(
                            Decimal("6.3"),
                            Decimal("6.25"),
                            Decimal("6.35"),
                            UCUM,
                            "mmol/L",
                            "mmol/l",
                        ),
                    ),
                )
            ),
        ],
    ),
    ("subject to a Group is not a patient", lambda: OBSERVATIONS, "patient", []),
    (
        "numbers with implicit precision",
        lambda: RISK,
        "probability",
        [
            NumberValue(Decimal("0.02"), Decimal("0.015"), Decimal("0.025")),
            NumberValue(Decimal("100"), Decimal("99.5"), Decimal("100.5")),
        ],
    ),
    (
        "timing events",
        lambda: TIMED,
        "date",
        [
            second("2024-01-06T08:00:00"),
            day("2024-01-07"),
        ],
    ),
    ("medication code text only", lambda: TIMED, "code", [TokenValue(None, None, "aspirin")]),
]


@pytest.mark.parametrize(
    ("resource", "code", "expected"), [pytest.param(r, c, e, id=name) for name, r, c, e in CASES]
)
def test_extract_values(
    registry: SearchParamRegistry, resource: Any, code: str, expected: list[Value]
) -> None:
    assert extract_values(registry, resource()).get(code, []) == expected


def test_parameters_without_values_are_left_out(registry: SearchParamRegistry) -> None:
    values = extract_values(registry, {"resourceType": "Patient", "gender": "other"})
    # R4's `deceased` expression is `deceased.exists() and deceased != false`: false when absent.
    assert values == {
        "gender": [TokenValue(None, "other")],
        "deceased": [TokenValue(None, "false")],
    }


def test_a_resource_without_resource_type_is_rejected(registry: SearchParamRegistry) -> None:
    with pytest.raises(ValueError, match="no resourceType"):
        extract_values(registry, {"id": "x"})


def test_malformed_data_drops_only_the_failing_parameter(registry: SearchParamRegistry) -> None:
    patient = {
        "resourceType": "Patient",
        "gender": "male",
        "birthDate": "not a date",
        "deceasedBoolean": "maybe",
    }
    values = extract_values(registry, patient)
    assert values["gender"] == [TokenValue(None, "male")]
    assert "birthdate" not in values


def test_every_synthea_resource_extracts(registry: SearchParamRegistry) -> None:
    for path in SYNTHEA:
        for resource in bundle_resources(path):
            values = extract_values(registry, resource)
            assert values["_id"] == [TokenValue(None, resource["id"])]
