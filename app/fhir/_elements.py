"""The R4 element table: per type, the JSON properties it may carry and how each is typed.

Built once, lazily, from `data/r4-elements.json.gz` (generated from the official R4 4.0.1
StructureDefinitions by `scripts/import_fhir_definitions.py`; see
`docs/decisions/0001-r4b-models-for-r4.md` for why not the fhir.resources R4B models).
Shared by `validate.py` (structure, cardinality, primitive types, required bindings) and `xml.py`
(which elements repeat, which are primitives, their definition order).

A `Node` is what can appear inside one JSON object: a type (`HumanName`, `Patient`) or an inline
backbone element (`Patient.contact`). Choice elements are expanded to their JSON names
(`Observation.value[x]` -> `valueQuantity`, `valueString`, ...).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

PRIMITIVE = 0
COMPLEX = 1
RESOURCE = 2  # a nested resource (contained, Bundle.entry.resource, Parameters...resource)


@dataclass(frozen=True, slots=True)
class Element:
    name: str  # JSON property name, choice suffix applied (`valueQuantity`)
    base: str  # definition name without `[x]` (`value`); equals `name` for non-choice elements
    type: str  # FHIR type code (`string`, `HumanName`, `BackboneElement`, `Resource`)
    kind: int  # PRIMITIVE, COMPLEX or RESOURCE
    repeats: bool
    min: int
    codes: frozenset[str] | None  # allowed codes of a REQUIRED binding, when enumerable
    node: str | None  # key of the Node describing this element's children (complex only)
    order: int  # position in definition order (XML must follow it)


@dataclass(frozen=True, slots=True)
class Node:
    key: str
    elements: dict[str, Element]
    # (definition name, JSON names satisfying it) for every element with min >= 1
    required: tuple[tuple[str, tuple[str, ...]], ...]


def _upper_first(s: str) -> str:
    return s[:1].upper() + s[1:]


@dataclass(frozen=True, slots=True)
class Table:
    nodes: dict[str, Node]
    resource_types: frozenset[str]
    primitive_types: frozenset[str]

    def node(self, key: str) -> Node:
        return self.nodes[key]


def _build(data: dict[str, Any]) -> Table:
    types: dict[str, Any] = data["types"]
    value_sets = {url: frozenset(codes) for url, codes in data["valueSets"].items()}
    primitives = frozenset(k for k, v in types.items() if v["kind"] == "primitive-type")
    resource_types = frozenset(
        k for k, v in types.items() if v["kind"] == "resource" and not v["abstract"]
    )
    nodes: dict[str, Node] = {}
    for type_name, spec in types.items():
        rows = spec["elements"]
        # A path with children listed under it is an inline (backbone) node; other complex
        # elements take their children from their type's own definition.
        parents = {row[0].rsplit(".", 1)[0] for row in rows}
        by_parent: dict[str, list[Element]] = {type_name: []}
        for order, (path, min_, max_, type_codes, vs, ref) in enumerate(rows):
            parent, name = path.rsplit(".", 1)
            if path in parents:
                by_parent.setdefault(path, [])
            siblings = by_parent.setdefault(parent, [])
            choice = name.endswith("[x]")
            base = name[:-3] if choice else name
            codes = value_sets.get(vs) if vs else None
            for code in type_codes or ["Element"]:
                if ref:
                    kind, child = COMPLEX, ref
                elif code in primitives:
                    kind, child = PRIMITIVE, None
                elif code == "Resource":
                    kind, child = RESOURCE, None
                else:
                    kind, child = COMPLEX, path if path in parents else code
                siblings.append(
                    Element(
                        name=base + _upper_first(code) if choice else base,
                        base=base,
                        type=code,
                        kind=kind,
                        repeats=max_ != "1" and max_ != "0",
                        min=min_,
                        codes=codes,
                        node=child,
                        order=order,
                    )
                )
        for key, elements in by_parent.items():
            table = {e.name: e for e in elements}
            required: dict[str, list[str]] = {}
            for e in elements:
                if e.min >= 1:
                    required.setdefault(e.base, []).append(e.name)
            nodes[key] = Node(key, table, tuple((b, tuple(n)) for b, n in required.items()))
    return Table(nodes, resource_types, primitives)


@cache
def table() -> Table:
    """The element table, loaded on first use (about 60 KB compressed)."""
    blob = resources.files("app.fhir").joinpath("data/r4-elements.json.gz").read_bytes()
    return _build(json.loads(gzip.decompress(blob)))
