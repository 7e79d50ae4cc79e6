"""Search oracle: random searches over real data, each engine's answer against an independent one.

The corpus is every Synthea bundle (`tests/data/synthea-r4`) and the IG episodes
(`tests/data/ig-episodes`), with ids, `meta` and `urn:uuid:` references rewritten to
`Type/id`, indexed through the production path (`extract_values` -> `index_document` ->
`SearchIndex.write`). A few resources get `meta.profile`/`source`/`security`, and copies of a
Patient and an Observation carry strings and codes that need escaping (`,` `|` `$` `\\`) or have
accents. Queries come from a seeded RNG over Observation, Condition, Encounter, Procedure, Patient,
Immunization, DiagnosticReport and ImagingStudy: token (plain, `system|code`, `system|`, `|code`,
`:not`, `:text`), string (default, `:exact`, `:contains`), date (every prefix; year to millisecond
precision; `Z`, offsets or no zone), reference (`Type/id`, id, `:Type`), quantity (every prefix,
`|system|code`, `||unit`), uri (`:above`, `:below`), `:missing`, `_id`, comma-OR and repeated-AND,
with values picked from the data so most of them match something. Each is parsed by
`parse_search` (strict) and run on the engine.

The expected ids come from this module alone: the parameter's FHIRPath expression (its
published definition) is evaluated by fhirpathpy with the R4 model on every stored resource,
and the FHIR search rules are applied in plain Python below (R4 search.html §3.1.1.4 parameter
types, §3.1.1.4.1 prefixes, §3.1.1.5 modifiers): nothing from `indexing.extract`,
`indexing.normalize`, `indexing._fastpath` or the compilers is used to decide a match.

Where search.html leaves a choice, the oracle follows the one indexing/plan/plan.py documents:
dates without a zone are UTC; ranges on both sides (the query's and the value's implicit
precision), compared as in the prefix table; `:not` matches a resource none of whose values
satisfies the positive form (so also one without any value); `ap` widens by 10% of the number, or
for a date by 10% of the time between now and the query's middle. What search.html states, the
oracle states the same way: `ne` is a prefix like the others, held by one value of the resource
that is not equal ("the value for the parameter in the resource is not equal to the provided
value"), in the unit asked for; a number in exponent notation (`1.20e2`, also generated here)
has the precision of its significant digits.

SQLite always runs; Elasticsearch when MICDR_TEST_ELASTICSEARCH_URL is set (mandatory with
MICDR_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import json
import random
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import fhirpathpy
import pytest
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models

from indexing.document import IndexOp, index_document
from indexing.extract import extract_values
from indexing.plan.errors import InvalidSearch
from indexing.plan.parse import parse_search
from indexing.registry import SearchParamRegistry
from tests._data import IG_EPISODES, SYNTHEA
from tests.contract.test_search_index import open_index

ENGINES = ["sqlite", "elasticsearch"]
SEED = 20240601
QUERIES_PER_TYPE = 100
TYPES = (
    "Observation",
    "Condition",
    "Encounter",
    "Procedure",
    "Patient",
    "Immunization",
    "DiagnosticReport",
    "ImagingStudy",
)
KINDS = ("token", "string", "date", "reference", "quantity", "number", "uri")
# Parameters the oracle does not judge: ContactPoint tokens (their system/use mapping is an
# implementation choice), full-text ones (no expression), and `_id` (generated apart).
SKIPPED = frozenset({"phone", "email", "telecom", "_id", "_text", "_content"})
MAX_HITS = 5000

Interval = tuple[Any, Any]  # [low, high): datetimes (dates) or [low, high] Decimals (numbers)


# -- corpus -------------------------------------------------------------------------------------


def load_corpus() -> list[dict[str, Any]]:
    """Every Synthea and IG-episode resource, with an id, `meta` and `Type/id` references."""
    bundles = SYNTHEA + IG_EPISODES
    entries: list[tuple[str | None, dict[str, Any]]] = []
    for path in bundles:
        bundle = json.loads(path.read_text("utf-8"), parse_float=Decimal)
        for n, entry in enumerate(bundle["entry"]):
            resource = entry["resource"]
            resource.setdefault("id", f"{path.stem}-{n}")
            entries.append((entry.get("fullUrl"), resource))
    urls = {url: f"{r['resourceType']}/{r['id']}" for url, r in entries if url}
    start = datetime(2024, 1, 1, tzinfo=UTC)
    resources = []
    for n, (_, resource) in enumerate(entries):
        rewritten = _rewrite(resource, urls)
        updated = start + timedelta(minutes=97 * n, seconds=n % 60)
        meta = {**rewritten.get("meta", {}), "versionId": "1"}
        meta["lastUpdated"] = updated.strftime("%Y-%m-%dT%H:%M:%SZ")
        if n % 7 == 0:  # something for _profile, _source and _security to find
            kind = rewritten["resourceType"]
            meta["profile"] = [f"http://example.org/fhir/StructureDefinition/{kind}-{n % 3}"]
            meta["source"] = f"http://example.org/source/{n % 4}#{n}"
            meta["security"] = [{"system": CONFIDENTIALITY, "code": "RN"[n % 2]}]
        rewritten["meta"] = meta
        resources.append(rewritten)
    return resources + _awkward(resources)


CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
AWKWARD = ["O'Brien, Jr.", "Smith|Jones", "Dollar$Sign", "Back\\Slash", "Ångström", "Zoë"]


def _awkward(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of a few resources whose strings and codes need escaping (`\\,` `\\|` `\\$`
    `\\\\`) or carry accents: Synthea has none."""
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    observation = next(r for r in resources if r["resourceType"] == "Observation")
    out = []
    for n, text in enumerate(AWKWARD):
        copy = deepcopy(patient)
        copy["id"] = f"awkward-p{n}"
        copy["name"] = [{"family": text, "given": [f"{text} {n}"]}]
        copy["identifier"] = [{"system": "http://example.org/ids", "value": f"{text}-{n}"}]
        out.append(copy)
        copy = deepcopy(observation)
        copy["id"] = f"awkward-o{n}"
        copy["code"] = {"coding": [{"system": "http://example.org/codes", "code": text}]}
        copy["valueString"] = text
        copy.pop("valueQuantity", None)
        copy.pop("valueCodeableConcept", None)
        out.append(copy)
    return out


def _rewrite(node: Any, urls: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            key: urls.get(value, value)
            if key == "reference" and isinstance(value, str)
            else _rewrite(value, urls)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rewrite(item, urls) for item in node]
    return node


# -- FHIRPath (fhirpathpy, R4 model) ---------------------------------------------------------

_LITERAL_REFERENCE = re.compile(r"(?:.*/)?([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/.*)?")


def _resolve(inputs: list[Any]) -> list[Any]:
    """`resolve()` without I/O: a stand-in resource of the type the reference names."""
    out = []
    for item in inputs:
        data = item.data if isinstance(item, ResourceNode) else item
        if isinstance(data, Mapping) and isinstance(data.get("reference"), str):
            match = _LITERAL_REFERENCE.fullmatch(data["reference"])
            if match:
                out.append(ResourceNode({"resourceType": match[1]}, match[1]))
    return out


_OPTIONS = {"userInvocationTable": {"resolve": {"fn": _resolve, "arity": {0: []}}}}


def evaluator(expression: str, resource_type: str) -> Callable[[dict[str, Any]], list[Any]]:
    """The parameter's published expression, `Resource.`/`DomainResource.` read as the concrete
    type (FHIRPath would otherwise look for a resource whose type is `Resource`), and `x as T`
    read as `x.ofType(T)`, the filter R4's expressions mean by it (fhirpathpy refuses `as` on a
    collection of several items, e.g. `Observation.component.value as Quantity`)."""
    concrete = re.sub(r"(?<![\w.])(?:Domain)?Resource\.", f"{resource_type}.", expression)
    concrete = re.sub(r"\(([^()|]+?) as (\w+)\)", r"(\1.ofType(\2))", concrete)
    compiled = fhirpathpy.compile(concrete, models["r4"], _OPTIONS)
    return lambda resource: list(compiled(resource, {}))


# -- values, per parameter type (R4 search.html §3.1.1.4) -------------------------------------


def norm(text: str) -> str:
    """Case- and accent-insensitive form of a string (search.html string: "case and accent
    insensitive"); runs of whitespace count as one space."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(plain.casefold().split())


def strings_of(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if not isinstance(node, Mapping):
        return []
    address = any(key in node for key in ("line", "city", "postalCode", "country", "state"))
    parts = (
        ("text", "line", "city", "district", "state", "postalCode", "country")
        if address
        else ("text", "family", "given", "prefix", "suffix")
    )
    out: list[str] = []
    for part in parts:
        value = node.get(part)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                out.append(item)
    return out


def tokens_of(node: Any) -> list[tuple[str | None, str | None]]:
    """(system, code) pairs: a code, Coding, CodeableConcept's codings, Identifier, boolean."""
    if isinstance(node, bool):
        return [(None, "true" if node else "false")]
    if isinstance(node, str):
        return [(None, node)]
    if not isinstance(node, Mapping):
        return []
    if "coding" in node:
        return [(c.get("system"), c.get("code")) for c in node["coding"] if "code" in c]
    if "value" in node and "code" not in node:  # Identifier
        return [(node.get("system"), node["value"])]
    if "code" in node:
        return [(node.get("system"), node["code"])]
    return []


def references_of(node: Any) -> list[tuple[str, str]]:
    """(type, id) of a literal relative reference."""
    if isinstance(node, Mapping) and isinstance(node.get("reference"), str):
        match = _LITERAL_REFERENCE.fullmatch(node["reference"])
        if match:
            return [(match[1], match[2])]
    return []


def precision_interval(text: str) -> Interval:
    """[start, end) in UTC of a FHIR date/dateTime/instant at its written precision; no zone
    means UTC."""
    match = re.fullmatch(
        r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?"
        r"(Z|[+-]\d{2}:\d{2})?)?)?)?",
        text,
    )
    if match is None:
        raise ValueError(text)
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    tz = UTC
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    if month is None:
        start = datetime(int(year), 1, 1, tzinfo=tz)
        return start, start.replace(year=start.year + 1)
    if day is None:
        start = datetime(int(year), int(month), 1, tzinfo=tz)
        following = (start + timedelta(days=32)).replace(day=1)
        return start, following
    if hour is None:
        start = datetime(int(year), int(month), int(day), tzinfo=tz)
        return start, start + timedelta(days=1)
    start = datetime(int(year), int(month), int(day), int(hour), int(minute), tzinfo=tz)
    if second is None:
        return start, start + timedelta(minutes=1)
    start += timedelta(seconds=int(second))
    if fraction is None:
        return start, start + timedelta(seconds=1)
    digits = fraction[1:7]
    start += timedelta(microseconds=int(digits.ljust(6, "0")))
    return start, start + timedelta(microseconds=10 ** (6 - len(digits)))


EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def dates_of(node: Any) -> list[Interval]:
    try:
        if isinstance(node, str):
            return [precision_interval(node)]
        if isinstance(node, Mapping) and ("start" in node or "end" in node):  # Period
            low = precision_interval(node["start"])[0] if "start" in node else EARLIEST
            high = precision_interval(node["end"])[1] if "end" in node else LATEST
            return [(low, high)]
    except ValueError:
        return []
    return []


def number_range(number: Decimal) -> Interval:
    """[low, high]: half a unit of the last written digit either side (search.html number)."""
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)
    half = Decimal(5).scaleb(exponent - 1)
    return number - half, number + half


@dataclass(frozen=True)
class Quantity:
    value: Decimal
    system: str | None
    code: str | None
    unit: str | None


def quantities_of(node: Any) -> list[Quantity]:
    if isinstance(node, Mapping) and isinstance(node.get("value"), int | Decimal):
        value = Decimal(node["value"])
        return [Quantity(value, node.get("system"), node.get("code"), node.get("unit"))]
    if isinstance(node, int | Decimal) and not isinstance(node, bool):
        return [Quantity(Decimal(node), None, None, None)]
    return []


def uris_of(node: Any) -> list[str]:
    return [node] if isinstance(node, str) and node else []


def texts_of(node: Any) -> list[str]:
    """The text `:text` searches: CodeableConcept.text, Coding.display, Identifier.type.text."""
    if not isinstance(node, Mapping):
        return []
    texts = [node.get("text"), node.get("display")]
    texts += [c.get("display") for c in node.get("coding", []) if isinstance(c, Mapping)]
    if isinstance(node.get("type"), Mapping):
        texts.append(node["type"].get("text"))
    return [t for t in texts if isinstance(t, str) and t]


CONVERT: dict[str, Callable[[Any], list[Any]]] = {
    "uri": uris_of,
    "token": tokens_of,
    "string": strings_of,
    "date": dates_of,
    "reference": references_of,
    "quantity": quantities_of,
    "number": quantities_of,
}


# -- the prefix table (R4 search.html §3.1.1.4.1) --------------------------------------------


def compare(prefix: str, value: Interval, query: Interval, closed: bool) -> bool:
    """Does a value's range satisfy `prefix` against the query's range? Dates are half-open
    [low, high), numbers closed [low, high]."""
    v_low, v_high = value
    q_low, q_high = query
    eq = q_low <= v_low and v_high <= q_high
    if prefix == "eq":
        return eq
    if prefix == "ne":
        return not eq
    if prefix == "gt":  # the range above the query intersects the value
        return v_high > q_high
    if prefix == "lt":
        return v_low < q_low
    if prefix == "ge":
        return v_high > q_high or eq
    if prefix == "le":
        return v_low < q_low or eq
    if prefix == "sa":  # starts after the query's end
        return v_low > q_high if closed else v_low >= q_high
    if prefix == "eb":
        return v_high < q_low if closed else v_high <= q_low
    if prefix == "ap":  # overlaps
        return (
            (v_low <= q_high and v_high >= q_low) if closed else v_low < q_high and v_high > q_low
        )
    raise ValueError(prefix)


def approximate_dates(query: Interval, now: datetime) -> Interval:
    low, high = query
    width = abs(now - (low + (high - low) / 2)) / 10
    return max(EARLIEST, low - width), min(LATEST, high + width)


def approximate_number(value: Decimal, query: Interval) -> Interval:
    width = abs(value) / 10
    return min(query[0], value - width), max(query[1], value + width)


# -- query values (search.html §3.1.1.5 escaping) ---------------------------------------------


def escape(text: str) -> str:
    return re.sub(r"([\\,|$])", r"\\\1", text)


def split_escaped(text: str, separator: str) -> list[str]:
    parts, current, index = [], "", 0
    while index < len(text):
        if text[index] == "\\" and index + 1 < len(text):
            current += text[index + 1]
            index += 2
            continue
        if text[index] == separator:
            parts.append(current)
            current = ""
        else:
            current += text[index]
        index += 1
    return [*parts, current]


def unescape(text: str) -> str:
    return split_escaped(text, "\0")[0]


def split_top(text: str, separator: str) -> list[str]:
    """Split on unescaped `separator`, keeping escapes (for a second split)."""
    parts, current, index = [], "", 0
    while index < len(text):
        if text[index] == "\\" and index + 1 < len(text):
            current += text[index : index + 2]
            index += 2
            continue
        if text[index] == separator:
            parts.append(current)
            current = ""
        else:
            current += text[index]
        index += 1
    return [*parts, current]


def split_prefix(value: str) -> tuple[str, str]:
    if value[:2] in ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"):
        return value[:2], value[2:]
    return "eq", value


# -- the oracle -----------------------------------------------------------------------------


@dataclass
class Oracle:
    registry: SearchParamRegistry
    resources: list[dict[str, Any]]
    by_type: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _nodes: dict[tuple[str, str], dict[str, list[Any]]] = field(default_factory=dict)
    _values: dict[tuple[str, str], dict[str, list[Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for resource in self.resources:
            self.by_type.setdefault(resource["resourceType"], []).append(resource)

    def kind(self, resource_type: str, code: str) -> str:
        param = self.registry.get(resource_type, code)
        assert param is not None, (resource_type, code)
        return param.type

    def nodes(self, resource_type: str, code: str) -> dict[str, list[Any]]:
        """id -> the FHIRPath results of the parameter that are values of its type."""
        key = (resource_type, code)
        if key not in self._nodes:
            param = self.registry.get(resource_type, code)
            assert param is not None and param.expression
            evaluate = evaluator(param.expression, resource_type)
            convert = CONVERT[param.type]
            self._nodes[key] = {
                r["id"]: [node for node in evaluate(r) if convert(node)]
                for r in self.by_type.get(resource_type, [])
            }
        return self._nodes[key]

    def values(self, resource_type: str, code: str) -> dict[str, list[Any]]:
        """id -> the parameter's values (converted per its type) on every resource of the type."""
        key = (resource_type, code)
        if key not in self._values:
            convert = CONVERT[self.kind(resource_type, code)]
            self._values[key] = {
                i: [v for node in nodes for v in convert(node)]
                for i, nodes in self.nodes(resource_type, code).items()
            }
        return self._values[key]

    def matches(self, resource_type: str, query: Sequence[tuple[str, str]]) -> set[str]:
        """Ids of the resources of `resource_type` satisfying every (key, value) pair."""
        ids = {r["id"] for r in self.by_type.get(resource_type, [])}
        now = datetime.now(UTC)
        for key, raw in query:
            ids &= self._criterion(resource_type, key, raw, now)
        return ids

    def _criterion(self, resource_type: str, key: str, raw: str, now: datetime) -> set[str]:
        code, _, modifier = key.partition(":")
        alternatives = split_top(raw, ",")
        if code == "_id":
            wanted = {unescape(a) for a in alternatives}
            return {r["id"] for r in self.by_type[resource_type] if r["id"] in wanted}
        values = self.values(resource_type, code)
        if modifier == "missing":
            return {i for i, found in values.items() if bool(found) == (raw == "false")}
        kind = self.kind(resource_type, code)
        if modifier == "text":  # a string search on the text of the codes (search.html token)
            kind = "string"
            values = {
                i: [t for node in nodes for t in texts_of(node)]
                for i, nodes in self.nodes(resource_type, code).items()
            }
            modifier = ""
        out: set[str] = set()
        for alternative in alternatives:
            test, negate = self._test(resource_type, code, kind, modifier, alternative, now)
            for resource_id, found in values.items():
                if any(test(v) for v in found) != negate:
                    out.add(resource_id)
        return out

    def _test(
        self, resource_type: str, code: str, kind: str, modifier: str, raw: str, now: datetime
    ) -> tuple[Callable[[Any], bool], bool]:
        """(a test of one value, whether the resource matches when NO value passes it)."""
        if kind == "string":
            text = unescape(raw)
            if modifier == "exact":
                return (lambda v: v == text), False
            wanted = norm(text)
            if modifier == "contains":
                return (lambda v: wanted in norm(v)), False
            return (lambda v: norm(v).startswith(wanted)), False
        if kind == "token":
            parts = split_top(raw, "|")
            negate = modifier == "not"
            if len(parts) == 1:
                token = unescape(parts[0])
                return (lambda v: v[1] == token), negate
            system, token = (unescape(p) for p in parts)
            if not token:
                return (lambda v: v[0] == system), negate
            if not system:
                return (lambda v: not v[0] and v[1] == token), negate
            return (lambda v: v[0] == system and v[1] == token), negate
        if kind == "uri":
            text = unescape(raw)
            if modifier == "below":  # at or below: the value starts with the query
                return (lambda v: v.startswith(text)), False
            if modifier == "above":  # at or above: the query starts with the value
                return (lambda v: text.startswith(v)), False
            return (lambda v: v == text), False
        if kind == "reference":
            text = unescape(raw)
            if "/" in text:
                target, _, wanted_id = text.partition("/")
                return (lambda v: v == (target, wanted_id)), False
            if modifier:
                return (lambda v: v == (modifier, text)), False
            return (lambda v: v[1] == text), False
        if kind == "date":
            prefix, text = split_prefix(unescape(raw))
            query = precision_interval(text)
            if prefix == "ap":
                query = approximate_dates(query, now)
            return (lambda v: compare(prefix, v, query, closed=False)), False
        # number / quantity
        parts = split_top(raw, "|")
        prefix, text = split_prefix(unescape(parts[0]))
        number = Decimal(text)
        query = number_range(number)
        if prefix == "ap":
            query = approximate_number(number, query)
        system = unescape(parts[1]) if len(parts) == 3 else ""
        unit = unescape(parts[2]) if len(parts) == 3 else ""

        def test(v: Quantity) -> bool:
            if system and v.system != system:
                return False
            if unit and system and v.code != unit:
                return False
            if unit and not system and unit not in (v.code, v.unit):
                return False
            return compare(prefix, number_range(v.value), query, closed=True)

        return test, False


# -- query generation -------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    resource_type: str
    query: tuple[tuple[str, str], ...]
    expected: frozenset[str]

    def url(self) -> str:
        return f"{self.resource_type}?" + "&".join(f"{k}={v}" for k, v in self.query)


class Generator:
    def __init__(self, oracle: Oracle, rng: random.Random) -> None:
        self.oracle = oracle
        self.rng = rng

    def params(self, resource_type: str) -> list[str]:
        """Codes of the type's parameters the oracle judges that have data."""
        codes = []
        for code, param in sorted(self.oracle.registry.for_type(resource_type).items()):
            if code in SKIPPED or param.type not in KINDS or not param.expression.strip():
                continue
            if any(self.oracle.values(resource_type, code).values()):
                codes.append(code)
        return codes

    def cases(self, resource_type: str, count: int) -> Iterator[Case]:
        codes = self.params(resource_type)
        by_kind: dict[str, list[str]] = {}
        for code in codes:
            by_kind.setdefault(self.oracle.kind(resource_type, code), []).append(code)
        ids = [r["id"] for r in self.oracle.by_type[resource_type]]
        for n in range(count):
            if n % 20 == 19:  # `_id`, comma-OR
                query = [("_id", ",".join(escape(i) for i in self.rng.sample(ids, 2)))]
            else:
                # A kind first, then one of its parameters: each kind gets its share.
                kind = self.rng.choice(sorted(by_kind))
                query = [self.criterion(resource_type, self.rng.choice(by_kind[kind]))]
                if self.rng.random() < 0.3:  # repeated-AND: the same parameter or another one
                    same = self.rng.random() < 0.5
                    other = query[0][0].partition(":")[0] if same else self.rng.choice(codes)
                    query.append(self.criterion(resource_type, other))
            expected = self.oracle.matches(resource_type, query)
            yield Case(resource_type, tuple(query), frozenset(expected))

    def criterion(self, resource_type: str, code: str) -> tuple[str, str]:
        kind = self.oracle.kind(resource_type, code)
        values = self.oracle.values(resource_type, code)
        if self.rng.random() < 0.08:
            return f"{code}:missing", self.rng.choice(["true", "false"])
        with_values = [i for i, found in values.items() if found]
        alternatives: list[str] = []
        modifier = self.modifier(kind)
        # comma-OR; `:not=a,b` is left out (search.html does not say whether it means "not a or
        # not b" or "neither").
        for _ in range(1 if modifier == "not" else self.rng.choice([1, 1, 1, 2, 3])):
            resource_id = self.rng.choice(with_values)
            node = self.pick_raw(resource_type, code, resource_id)
            if kind == "reference" and not alternatives and self.rng.random() < 0.2:
                target, target_id = references_of(node)[0]  # `subject:Patient=id`
                return f"{code}:{target}", target_id
            alternatives.append(self.value(kind, modifier, node))
        return (f"{code}:{modifier}" if modifier else code), ",".join(alternatives)

    def modifier(self, kind: str) -> str:
        r = self.rng.random()
        if kind == "string":
            return "exact" if r < 0.2 else "contains" if r < 0.4 else ""
        if kind == "token":
            return "not" if r < 0.15 else "text" if r < 0.25 else ""
        if kind == "uri":
            return "below" if r < 0.3 else "above" if r < 0.6 else ""
        return ""

    def pick_raw(self, resource_type: str, code: str, resource_id: str) -> Any:
        """One raw FHIRPath result of the parameter on that resource (not yet converted)."""
        return self.rng.choice(self.oracle.nodes(resource_type, code)[resource_id])

    def value(self, kind: str, modifier: str, node: Any) -> str:
        rng = self.rng
        if kind == "string":
            text = rng.choice(strings_of(node))
            if modifier == "exact":
                return escape(text if rng.random() < 0.8 else text.upper())
            if modifier == "contains":
                start = rng.randrange(len(text))
                return escape(text[start : rng.randint(start + 1, len(text))].strip() or text)
            prefix = text[: rng.randint(1, len(text))].strip() or text
            return escape(prefix.upper() if rng.random() < 0.3 else prefix)
        if kind == "token" and modifier == "text":
            texts = texts_of(node) or ["x"]
            text = rng.choice(texts)
            return escape(text[: rng.randint(1, len(text))].strip() or text)
        if kind == "uri":
            if modifier == "below":
                return escape(node[: rng.randint(1, len(node))])
            if modifier == "above":
                return escape(node + rng.choice(["", "/more", "#x"]))
            return escape(node)
        if kind == "token":
            system, code = rng.choice(tokens_of(node))
            form = rng.random()
            if system and form < 0.4:
                return f"{escape(system)}|{escape(code or '')}"
            if system and form < 0.5:
                return f"{escape(system)}|"
            if form < 0.6:
                return f"|{escape(code or '')}"
            return escape(code or "")
        if kind == "reference":
            target, target_id = references_of(node)[0]
            return f"{target}/{target_id}" if rng.random() < 0.7 else target_id
        if kind == "date":
            return self.date_value(node)
        return self.number_value(node)

    def date_value(self, node: Any) -> str:
        rng = self.rng
        low, high = dates_of(node)[0]
        # An edge of the value or a point inside it, sometimes nudged across a boundary: the
        # cases where "within", "intersects", "after" and "before" part ways.
        edges = [d for d in (low, high) if EARLIEST < d < LATEST] or [low]
        if low > EARLIEST and high < LATEST and high - low > timedelta(seconds=1):
            edges.append(low + (high - low) * rng.random())
        moment = rng.choice(edges)
        moment += timedelta(seconds=rng.choice([0, 0, 0, -1, 1, -60, 60, -86400, 86400 * 40]))
        zone = rng.choice(
            [UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))]
        )
        local = moment.astimezone(zone)
        precision = rng.choice(["year", "month", "day", "minute", "second", "millisecond"])
        text = {
            "year": f"{local.year:04d}",
            "month": f"{local.year:04d}-{local.month:02d}",
            "day": f"{local.year:04d}-{local.month:02d}-{local.day:02d}",
            "minute": local.strftime("%Y-%m-%dT%H:%M"),
            "second": local.strftime("%Y-%m-%dT%H:%M:%S"),
            "millisecond": local.strftime("%Y-%m-%dT%H:%M:%S.")
            + f"{local.microsecond // 1000:03d}",
        }[precision]
        if precision in ("minute", "second", "millisecond"):
            offset = local.strftime("%z")
            written = "Z" if offset == "+0000" else f"{offset[:3]}:{offset[3:]}"
            # Without a zone the server reads UTC: only drop it when the clock is UTC's.
            if not (written == "Z" and rng.random() < 0.5):
                text += written
        prefix = rng.choice(["", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"])
        return prefix + text

    def number_value(self, node: Any) -> str:
        rng = self.rng
        quantity = quantities_of(node)[0]
        number = quantity.value
        places = rng.choice([None, 0, 1, 2])
        if places is not None:
            number = round(number, places)
        text = exponent_notation(number) if rng.random() < 0.3 else str(number)
        prefix = rng.choice(["", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"])
        written = prefix + text
        units = rng.random()
        if quantity.system and quantity.code and units < 0.3:
            written += f"|{escape(quantity.system)}|{escape(quantity.code)}"
        elif (quantity.code or quantity.unit) and units < 0.45:
            written += f"||{escape(rng.choice([u for u in (quantity.code, quantity.unit) if u]))}"
        return written


def exponent_notation(number: Decimal) -> str:
    """`number` as `d.ddde<n>` with the same significant digits (`120` -> `1.20e2`, `0.85` ->
    `8.5e-1`), so it means the same range."""
    sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    mantissa = "".join(map(str, digits))
    head, tail = mantissa[0], mantissa[1:]
    return f"{'-' if sign else ''}{head}{'.' if tail else ''}{tail}e{exponent + len(tail)}"


# -- fixtures and the test --------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry() -> SearchParamRegistry:
    return SearchParamRegistry.load()


@pytest.fixture(scope="module")
def corpus() -> list[dict[str, Any]]:
    return load_corpus()


@pytest.fixture(scope="module")
def cases(registry: SearchParamRegistry, corpus: list[dict[str, Any]]) -> list[Case]:
    oracle = Oracle(registry, corpus)
    generator = Generator(oracle, random.Random(SEED))
    return [case for t in TYPES for case in generator.cases(t, QUERIES_PER_TYPE)]


@pytest.mark.parametrize("engine", ENGINES)
async def test_every_engine_answers_exactly_what_the_oracle_computes(
    engine: str,
    registry: SearchParamRegistry,
    corpus: list[dict[str, Any]],
    cases: list[Case],
    tmp_path: Path,
) -> None:
    index, cleanup = await open_index(engine, tmp_path, registry)
    try:
        ops = [
            IndexOp(
                r["resourceType"],
                r["id"],
                1,
                index_document(registry, r, extract_values(registry, r)),
            )
            for r in corpus
        ]
        for start in range(0, len(ops), 500):
            await index.write(ops[start : start + 500])
        await index.refresh()
        failures = []
        for case in cases:
            try:
                plan = parse_search(registry, case.resource_type, case.query, strict=True)
            except InvalidSearch as error:
                failures.append(f"{case.url()}: refused: {error.diagnostics}")
                continue
            page = await index.search(replace(plan, count=MAX_HITS))
            got = {hit.id for hit in page.hits}
            if got != case.expected:
                extra = sorted(got - case.expected)[:3]
                missing = sorted(case.expected - got)[:3]
                failures.append(
                    f"{case.url()}: {len(got)} hits, expected {len(case.expected)};"
                    f" not expected {extra}, missing {missing}"
                )
    finally:
        await cleanup()
    matched = sum(1 for case in cases if case.expected)
    assert len(cases) >= 400 and matched >= len(cases) // 2, (len(cases), matched)
    assert not failures, f"{len(failures)} of {len(cases)} queries disagree:\n" + "\n".join(
        failures[:40]
    )
