"""Hypothesis on the parsers a hostile client reaches (docs/security.md, "Fuzzing"): search query
strings -> parse_search, JSON bodies -> validate_resource, XML -> parse_xml, Bundles -> entry
parsing and transaction planning. Each may refuse its input only with its documented error
(InvalidSearch, FhirError); anything else, or a hang, is a bug.

Default run: a few hundred examples per parser. Long run (README):
`MICDR_FUZZ_EXAMPLES=20000 .venv/bin/pytest tests/fuzz -p no:cacheprovider`."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import string
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.fhir.meta import new_id
from app.fhir.outcome import FhirError
from app.fhir.patch import apply_patch
from app.fhir.validate import resource_types, validate_resource
from app.fhir.xml import parse_xml
from app.http.negotiation import parse_body
from app.tx.entry import entry_from_bundle
from app.tx.plan import PlanOptions, Resolution, plan_transaction
from indexing.plan.errors import InvalidSearch
from indexing.plan.parse import parse_search
from indexing.registry import SearchParamRegistry

EXAMPLES = int(os.environ.get("MICDR_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
REGISTRY = SearchParamRegistry.load()
TYPES = sorted(resource_types())

_NAMES = [
    "_id", "_count", "_sort", "_total", "_include", "_revinclude", "_include:iterate",
    "_summary", "_elements", "_has:Observation:subject:code", "_type", "_lastUpdated",
    "name", "family:exact", "name:contains", "identifier", "identifier:of-type", "code:text",
    "code:not", "subject", "subject:Patient.name", "patient.identifier", "date", "birthdate",
    "value-quantity", "component-code-value-quantity", "url:below", "gender:missing", "_tag",
]  # fmt: skip
_TEXT = st.text(alphabet=string.printable + "éñ\u2211|$,:\\", max_size=40)
names = st.one_of(st.sampled_from(_NAMES), _TEXT)
values = st.one_of(
    _TEXT,
    st.sampled_from(["eq2020", "ge2020-01-01T00:00:00Z", "ap5.4|http://unitsofmeasure.org|mg",
                     "Patient/1", "s|c", "ImagingStudy:patient", "-date,_id", "*", "true"]),
)  # fmt: skip
queries = st.lists(st.tuples(names, values), max_size=8)


@FUZZ
@given(st.one_of(st.none(), st.sampled_from(["Patient", "Observation", "ImagingStudy"])), queries,
       st.booleans())  # fmt: skip
def test_parse_search_refuses_only_with_invalid_search(
    type_: str | None, query: list[tuple[str, str]], strict: bool
) -> None:
    with contextlib.suppress(InvalidSearch):
        parse_search(REGISTRY, type_, query, strict=strict)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), _TEXT),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(_TEXT, children, max_size=4)
    ),
    max_leaves=30,
)
resource_like = st.builds(
    lambda rtype, fields: {"resourceType": rtype, **fields},
    st.sampled_from(["Patient", "Observation", "ImagingStudy", "Bundle", "Nope"]),
    st.dictionaries(
        st.sampled_from(["id", "meta", "name", "status", "subject", "code", "extension",
                         "identifier", "entry", "text", "_birthDate", "birthDate", "gender"]),
        json_values,
        max_size=6,
    ),
)  # fmt: skip


@FUZZ
@given(st.one_of(resource_like, json_values))
def test_validate_resource_refuses_only_with_fhir_error(body: Any) -> None:
    try:
        validate_resource(body)
    except FhirError as err:
        assert 400 <= err.status < 500


@FUZZ
@given(st.binary(max_size=300) | st.builds(lambda r: json.dumps(r).encode(), resource_like))
def test_json_bodies_refuse_only_with_fhir_error(raw: bytes) -> None:
    try:
        parse_body(raw, "application/fhir+json")
    except FhirError as err:
        assert err.status == 400


_XML_BITS = [
    '<Patient xmlns="http://hl7.org/fhir">', "</Patient>", '<id value="x"/>',
    '<name><family value="A"/></name>', '<!DOCTYPE a [<!ENTITY e "x">]>', "&e;",
    '<?xml version="1.0"?>', "<div xmlns=\"http://www.w3.org/1999/xhtml\">", "</div>",
    '<extension url="u"><valueString value="v"/></extension>', "<", ">", '"', "&amp;",
]  # fmt: skip


@FUZZ
@given(st.lists(st.one_of(st.sampled_from(_XML_BITS), _TEXT), max_size=12))
def test_parse_xml_refuses_only_with_fhir_error(parts: list[str]) -> None:
    try:
        parse_xml("".join(parts).encode())
    except FhirError as err:
        assert err.status in (400, 415, 422)


entries = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "fullUrl": st.sampled_from(["urn:uuid:1", "urn:uuid:2", "Patient/1", "x"]),
            "resource": resource_like,
            "request": st.fixed_dictionaries(
                {},
                optional={
                    "method": st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "X"]),
                    "url": st.sampled_from(["Patient", "Patient/1", "Patient?identifier=a|b",
                                            "Observation/2", "", "Nope/1", "Patient/1/_history"]),
                    "ifNoneExist": st.sampled_from(["identifier=a|b", "x=y", ""]),
                    "ifMatch": st.sampled_from(['W/"1"', "bad"]),
                },
            ),
        },
    )
    | json_values,
    max_size=6,
)  # fmt: skip


@FUZZ
@given(entries)
def test_bundle_entries_plan_or_refuse_with_fhir_error(raw: list[Any]) -> None:
    known = frozenset(TYPES)
    try:
        parsed = [entry_from_bundle(i, e, known) for i, e in enumerate(raw)]
        opts = PlanOptions(
            now="2025-01-01T00:00:00Z",
            new_ids=(new_id() for _ in itertools.count()),
            validate=validate_resource,
            apply_patch=apply_patch,
        )
        plan_transaction(parsed, Resolution({}, {}), opts)
    except FhirError as err:
        assert 400 <= err.status < 500
