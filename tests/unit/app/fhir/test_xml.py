"""FHIR XML <-> JSON (app/fhir/xml.py): https://hl7.org/fhir/R4/xml.html and json.html;
security per https://hl7.org/fhir/R4/security.html#xml (no DTDs, no external entities)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.fhir.outcome import FhirError
from app.fhir.validate import validate_resource
from app.fhir.xml import parse_xml, to_xml
from tests._data import IG_EPISODES as EPISODES
from tests._data import SYNTHEA

NS = 'xmlns="http://hl7.org/fhir"'
XHTML = 'xmlns="http://www.w3.org/1999/xhtml"'
EXT = "http://example.org/ext"


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return data


PARSED: list[tuple[str, str, dict[str, Any]]] = [
    (
        "primitives typed from the element table",
        f"""<?xml version="1.0" encoding="UTF-8"?>
        <Patient {NS}>
          <!-- comments are not content -->
          <id value="p1"/>
          <active value="true"/>
          <name><family value="Tremblay"/><given value="Luc"/><given value="Marie"/></name>
          <gender value="female"/>
          <birthDate value="1987-08-21"/>
          <multipleBirthInteger value="2"/>
        </Patient>""",
        {
            "resourceType": "Patient",
            "id": "p1",
            "active": True,
            "name": [{"family": "Tremblay", "given": ["Luc", "Marie"]}],
            "gender": "female",
            "birthDate": "1987-08-21",
            "multipleBirthInteger": 2,
        },
    ),
    (
        "primitive ids and extensions go to _name, aligned with nulls",
        f"""<Patient {NS}>
          <name>
            <given value="A"/>
            <given id="g2"><extension url="{EXT}"><valueString value="x"/></extension></given>
          </name>
          <birthDate id="b"><extension url="{EXT}"><valueCode value="unknown"/></extension>
          </birthDate>
        </Patient>""",
        {
            "resourceType": "Patient",
            "name": [
                {
                    "given": ["A", None],
                    "_given": [None, {"id": "g2", "extension": [{"url": EXT, "valueString": "x"}]}],
                }
            ],
            "_birthDate": {"id": "b", "extension": [{"url": EXT, "valueCode": "unknown"}]},
        },
    ),
    (
        "narrative, contained resource, element id, decimals",
        f"""<Patient {NS}>
          <text><status value="generated"/><div {XHTML}><p>Luc &amp; <b>Marie</b></p><br/></div>
          </text>
          <contained>
            <Observation>
              <id value="o1"/>
              <status value="final"/>
              <code id="c1"><text value="weight"/></code>
              <valueQuantity><value value="72.50"/><unit value="kg"/></valueQuantity>
            </Observation>
          </contained>
          <contained><Observation><status value="final"/><code><text value="n"/></code>
            <valueQuantity><value value="3"/></valueQuantity></Observation></contained>
        </Patient>""",
        {
            "resourceType": "Patient",
            "text": {
                "status": "generated",
                "div": f"<div {XHTML}><p>Luc &amp; <b>Marie</b></p><br/></div>",
            },
            "contained": [
                {
                    "resourceType": "Observation",
                    "id": "o1",
                    "status": "final",
                    "code": {"id": "c1", "text": "weight"},
                    "valueQuantity": {"value": 72.5, "unit": "kg"},
                },
                {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "n"},
                    "valueQuantity": {"value": 3},
                },
            ],
        },
    ),
    (
        "bundle entries nest their resources",
        f"""<Bundle {NS}>
          <type value="transaction"/>
          <entry>
            <fullUrl value="urn:uuid:98ba56f9-ce3f-49fa-85de-53dda51a8b77"/>
            <resource><Patient><gender value="male"/></Patient></resource>
            <request><method value="PUT"/><url value="Patient?identifier=a|b"/></request>
          </entry>
        </Bundle>""",
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": "urn:uuid:98ba56f9-ce3f-49fa-85de-53dda51a8b77",
                    "resource": {"resourceType": "Patient", "gender": "male"},
                    "request": {"method": "PUT", "url": "Patient?identifier=a|b"},
                }
            ],
        },
    ),
    (
        "elements out of definition order are accepted",
        f'<Patient {NS}><gender value="male"/><id value="x"/></Patient>',
        {"resourceType": "Patient", "gender": "male", "id": "x"},
    ),
    (
        "lexically bad values stay strings for validation to report",
        f'<Patient {NS}><active value="yes"/><multipleBirthInteger value="2.5"/></Patient>',
        {"resourceType": "Patient", "active": "yes", "multipleBirthInteger": "2.5"},
    ),
]


@pytest.mark.parametrize(("xml", "expected"), [pytest.param(x, e, id=i) for i, x, e in PARSED])
def test_parse_xml_gives_the_json_form(xml: str, expected: dict[str, Any]) -> None:
    assert parse_xml(xml.encode()) == expected


def test_bad_values_from_xml_are_reported_by_validation_with_their_location() -> None:
    parsed = parse_xml(PARSED[-1][1].encode())
    with pytest.raises(FhirError) as caught:
        validate_resource(parsed)
    assert [(i.code, i.expression) for i in caught.value.issues] == [
        ("value", ("Patient.active",)),
        ("value", ("Patient.multipleBirthInteger",)),
    ]


def test_to_xml_writes_definition_order_and_escapes() -> None:
    resource = {
        "gender": "male",
        "name": [{"given": ["A&B", None], "_given": [None, {"id": "g"}], "family": 'O"<x>'}],
        "resourceType": "Patient",
        "id": "1",
        "extension": [{"valueDecimal": 0.1, "url": EXT}],
        "active": False,
        "text": {"div": f"<div {XHTML}>a\nb</div>", "status": "generated"},
    }
    assert to_xml(resource).decode() == (
        f'<Patient {NS}><id value="1"/>'
        f'<text><status value="generated"/><div {XHTML}>a\nb</div></text>'
        f'<extension url="{EXT}"><valueDecimal value="0.1"/></extension>'
        '<active value="false"/>'
        '<name><family value="O&quot;&lt;x&gt;"/><given value="A&amp;B"/><given id="g"/></name>'
        '<gender value="male"/></Patient>'
    )
    assert parse_xml(to_xml(resource)) == resource


def test_multiline_attribute_values_survive_the_round_trip() -> None:
    resource = {"resourceType": "Patient", "name": [{"text": "line 1\nline 2\ttab\r\n"}]}
    assert parse_xml(to_xml(resource)) == resource


def _ig_resources() -> list[Any]:
    params = []
    for path in EPISODES:
        bundle = _load(path)
        params.append(pytest.param(bundle, id=f"{path.stem}:Bundle"))
        for i, entry in enumerate(bundle["entry"]):
            res = entry["resource"]
            params.append(pytest.param(res, id=f"{path.stem}:{i}:{res['resourceType']}"))
    return params


@pytest.mark.parametrize("resource", _ig_resources())
def test_ig_examples_round_trip_json_xml_json(resource: dict[str, Any]) -> None:
    assert parse_xml(to_xml(resource)) == resource


@pytest.mark.parametrize("path", SYNTHEA, ids=[p.stem.split("_")[0] for p in SYNTHEA])
def test_synthea_bundles_round_trip_json_xml_json(path: Path) -> None:
    # Each whole Bundle (about 120 resources of 18 types, narratives included) round-trips.
    bundle = _load(path)
    assert parse_xml(to_xml(bundle)) == bundle


def test_synthea_resources_round_trip_one_by_one() -> None:
    for entry in _load(SYNTHEA[0])["entry"]:
        assert parse_xml(to_xml(entry["resource"])) == entry["resource"]


HOSTILE: list[tuple[str, bytes]] = [
    (
        "XXE file entity",
        f"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>
<Patient {NS}><name><family value="&e;"/></name></Patient>""".encode(),
    ),
    (
        "billion laughs",
        f"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Patient {NS}><name><family value="&lol9;"/></name></Patient>""".encode(),
    ),
    (
        "external DTD",
        f"""<!DOCTYPE Patient SYSTEM "http://127.0.0.1:1/x.dtd">
<Patient {NS}/>""".encode(),
    ),
    (
        "parameter entity",
        f"""<!DOCTYPE x [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>
<Patient {NS}/>""".encode(),
    ),
    (
        "DOCTYPE in UTF-16",
        (
            f'<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY e "x">]><Patient {NS}/>'
        ).encode("utf-16"),
    ),
    ("malformed", f"<Patient {NS}><name></Patient>".encode()),
    ("not XML", b'{"resourceType": "Patient"}'),
    ("empty body", b""),
]


@pytest.mark.parametrize("body", [pytest.param(b, id=i) for i, b in HOSTILE])
def test_malformed_or_hostile_xml_is_refused_with_400_structure(body: bytes) -> None:
    with pytest.raises(FhirError) as caught:
        parse_xml(body)
    assert caught.value.status == 400
    assert [i.code for i in caught.value.issues] == ["structure"]


MISFIT: list[tuple[str, str, tuple[str, ...]]] = [
    ("no FHIR namespace", "<Patient/>", ()),
    ("unknown resource type", f"<Foo {NS}/>", ()),
    ("unknown element", f'<Patient {NS}><foo value="1"/></Patient>', ("Patient.foo",)),
    (
        "non-repeating element twice",
        f'<Patient {NS}><gender value="male"/><gender value="female"/></Patient>',
        ("Patient.gender",),
    ),
    ("text content", f"<Patient {NS}><name>Luc</name></Patient>", ("Patient.name[0]",)),
    (
        "primitive without value or extension",
        f"<Patient {NS}><gender/></Patient>",
        ("Patient.gender",),
    ),
    (
        "unexpected attribute",
        f'<Patient {NS}><gender value="male" code="x"/></Patient>',
        ("Patient.gender",),
    ),
    (
        "resource property with two resources",
        f"<Bundle {NS}><entry><resource><Patient/><Patient/></resource></entry></Bundle>",
        ("Bundle.entry[0].resource",),
    ),
    (
        "narrative not XHTML",
        f'<Patient {NS}><text><status value="generated"/><div/></text></Patient>',
        ("Patient.text.div",),
    ),
    (
        "element in a foreign namespace",
        f'<Patient {NS}><x:gender xmlns:x="urn:x" value="male"/></Patient>',
        ("Patient",),
    ),
]


@pytest.mark.parametrize(("xml", "expression"), [pytest.param(x, e, id=i) for i, x, e in MISFIT])
def test_xml_that_does_not_fit_r4_is_refused_with_its_location(
    xml: str, expression: tuple[str, ...]
) -> None:
    with pytest.raises(FhirError) as caught:
        parse_xml(xml.encode())
    assert caught.value.status == 400
    assert [(i.code, i.expression) for i in caught.value.issues] == [("structure", expression)]
