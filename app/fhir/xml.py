"""FHIR R4 XML <-> the FHIR JSON object, per https://hl7.org/fhir/R4/xml.html and json.html.

The mapping needs the element table (`_elements.py`): which elements repeat (JSON arrays even for
one item), which are primitives (`value` attribute; `id` attribute and `extension` children go to
the JSON `_name` companion, aligned with `null`s for repeating primitives) and their types (JSON
booleans and numbers are typed from them), where resources nest (`contained`,
`Bundle.entry.resource`: the resource's element inside the property's element) and the
definition order XML requires, which `to_xml` produces whatever the JSON key order.

`parse_xml` reads through `_xhtml.parse` (no DTDs, hence no XXE or entity bombs) and accepts
elements in any order (being liberal in what it reads); lexically bad primitive values stay
strings so `validate_resource` reports them with their location. Narrative `div` becomes the
XHTML string with its namespace declared on the div (a canonical serialisation, so attribute
quoting and character references may differ from the input's).
"""

from __future__ import annotations

import re
from typing import Any
from xml.etree.ElementTree import Element as XmlElement

from app.fhir._elements import COMPLEX, PRIMITIVE, RESOURCE, Element, Node, table
from app.fhir._xhtml import XHTML_NS, escape_attribute, parse, serialize_div
from app.fhir.outcome import FhirError

__all__ = ["parse_xml", "to_xml"]

FHIR_NS = "http://hl7.org/fhir"
_FHIR = f"{{{FHIR_NS}}}"
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_INTEGER = re.compile(r"-?[0-9]+")
_INTEGERS = frozenset({"integer", "positiveInt", "unsignedInt"})
_MAX_DEPTH = 128  # far deeper than any real resource; bounds recursion on hostile input


def parse_xml(body: bytes) -> dict[str, Any]:
    """The FHIR JSON object for a FHIR XML resource; FhirError(400, structure) when the XML is
    malformed, hostile (DTD, entities) or does not fit the R4 element definitions."""
    return _Reader().resource(parse(body), "", 0)


def to_xml(resource: dict[str, Any]) -> bytes:
    """The FHIR XML (UTF-8, `xmlns="http://hl7.org/fhir"`, definition order) of a valid resource.

    Raises FhirError(400) for content that has no XML form (unknown elements, a malformed div):
    callers pass resources that passed `validate_resource`.
    """
    out: list[str] = []
    _Writer(out).resource(resource, root=True)
    return "".join(out).encode()


def _fail(diagnostics: str, path: str) -> FhirError:
    return FhirError.of(400, "structure", diagnostics, *((path,) if path else ()))


def _local(el: XmlElement, path: str) -> str:
    if not el.tag.startswith(_FHIR):
        raise _fail(f"element {el.tag!r} is not in the FHIR namespace {FHIR_NS}", path)
    return el.tag[len(_FHIR) :]


def _no_text(el: XmlElement, path: str) -> None:
    if el.text and el.text.strip():
        raise _fail("text content is not allowed in FHIR elements (use value attributes)", path)
    for child in el:
        if child.tail and child.tail.strip():
            raise _fail("text content is not allowed in FHIR elements", path)


def _typed(type_code: str, text: str) -> Any:
    # A value that does not fit its type stays a string: validation reports it with its path.
    if type_code == "boolean":
        return {"true": True, "false": False}.get(text, text)
    if type_code in _INTEGERS:
        return int(text) if _INTEGER.fullmatch(text) else text
    if type_code == "decimal":
        if not _DECIMAL.fullmatch(text):
            return text
        # Integral literals stay ints so JSON -> XML -> JSON gives back what the client sent.
        return float(text) if any(c in text for c in ".eE") else int(text)
    return text


class _Reader:
    def __init__(self) -> None:
        t = table()
        self.nodes = t.nodes
        self.types = t.resource_types

    def resource(self, el: XmlElement, path: str, depth: int) -> dict[str, Any]:
        rtype = _local(el, path)
        if rtype not in self.types:
            raise _fail(f"unknown resource type {rtype!r}", path)
        if el.attrib:
            raise _fail(f"unexpected attributes on {rtype}: {sorted(el.attrib)}", path)
        out: dict[str, Any] = {"resourceType": rtype}
        self.children(el, self.nodes[rtype], path or rtype, out, depth)
        return out

    def children(
        self, el: XmlElement, node: Node, path: str, out: dict[str, Any], depth: int
    ) -> None:
        if depth > _MAX_DEPTH:
            raise _fail("elements nested too deeply", path)
        _no_text(el, path)
        values: dict[str, list[Any]] = {}
        companions: dict[str, list[dict[str, Any] | None]] = {}
        for child in el:
            name = _local(child, path) if child.tag != f"{{{XHTML_NS}}}div" else "div"
            spec = node.elements.get(name)
            seen = values.setdefault(name, [])
            where = f"{path}.{name}" + (f"[{len(seen)}]" if spec and spec.repeats else "")
            if spec is None:
                raise _fail(f"unknown element {name!r}", f"{path}.{name}")
            if seen and not spec.repeats:
                raise _fail(f"element {name!r} does not repeat", where)
            if spec.kind == PRIMITIVE:
                value, companion = self.primitive(child, spec, where, depth)
                seen.append(value)
                companions.setdefault(name, []).append(companion)
            elif spec.kind == COMPLEX:
                seen.append(self.complex(child, spec, where, depth))
            else:
                seen.append(self.nested(child, where, depth))
        for name, items in values.items():
            spec = node.elements[name]
            comps = companions.get(name, [])
            if any(v is not None for v in items):
                out[name] = items if spec.repeats else items[0]
            if any(c is not None for c in comps):
                out["_" + name] = comps if spec.repeats else comps[0]

    def primitive(
        self, el: XmlElement, spec: Element, path: str, depth: int
    ) -> tuple[Any, dict[str, Any] | None]:
        if spec.type == "xhtml":
            try:
                return serialize_div(el), None
            except FhirError as exc:
                raise _fail(str(exc), path) from None
        extra = set(el.attrib) - {"value", "id"}
        if extra:
            raise _fail(f"unexpected attributes {sorted(extra)}", path)
        text = el.attrib.get("value")
        value = None if text is None else _typed(spec.type, text)
        companion: dict[str, Any] = {}
        if "id" in el.attrib:
            companion["id"] = el.attrib["id"]
        self.children(el, self.nodes["Element"], path, companion, depth + 1)
        if value is None and not companion:
            raise _fail("a primitive element needs a value attribute or extensions", path)
        return value, companion or None

    def complex(self, el: XmlElement, spec: Element, path: str, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        allowed = {"id", "url"} if spec.type == "Extension" else {"id"}
        extra = set(el.attrib) - allowed
        if extra:
            raise _fail(f"unexpected attributes {sorted(extra)}", path)
        out.update(el.attrib)
        self.children(el, self.nodes[spec.node], path, out, depth + 1)  # type: ignore[index]
        return out

    def nested(self, el: XmlElement, path: str, depth: int) -> dict[str, Any]:
        _no_text(el, path)
        if el.attrib or len(el) != 1:
            raise _fail("a resource property must hold exactly one resource element", path)
        return self.resource(el[0], path, depth + 1)


class _Writer:
    def __init__(self, out: list[str]) -> None:
        t = table()
        self.nodes = t.nodes
        self.types = t.resource_types
        self.out = out

    def resource(self, res: dict[str, Any], root: bool = False) -> None:
        rtype = res.get("resourceType")
        if not isinstance(rtype, str) or rtype not in self.types:
            raise _fail(f"unknown resourceType {rtype!r}", "")
        self.out.append(f'<{rtype} xmlns="{FHIR_NS}">' if root else f"<{rtype}>")
        self.children(res, self.nodes[rtype], rtype, skip=("resourceType",))
        self.out.append(f"</{rtype}>")

    def children(
        self, obj: dict[str, Any], node: Node, path: str, skip: tuple[str, ...] = ()
    ) -> None:
        elements = node.elements
        names: dict[str, Element] = {}
        for key in obj:
            name = key[1:] if key[:1] == "_" else key
            if name in skip or name in names:
                continue
            spec = elements.get(name)
            if spec is None:
                raise _fail(f"unknown element {key!r}", f"{path}.{key}")
            names[name] = spec
        for name, spec in sorted(names.items(), key=lambda item: item[1].order):
            value = obj.get(name)
            companion = obj.get("_" + name)
            if spec.repeats:
                values = value if isinstance(value, list) else [None] * len(companion or ())
                comps = companion if isinstance(companion, list) else [None] * len(values)
                for item, comp in zip(values, comps, strict=False):
                    self.element(name, spec, item, comp, path)
            else:
                self.element(name, spec, value, companion, path)

    def element(self, name: str, spec: Element, value: Any, companion: Any, path: str) -> None:
        out = self.out
        where = f"{path}.{name}"
        if spec.kind == PRIMITIVE:
            if spec.type == "xhtml":
                out.append(serialize_div(parse(value)))
                return
            attrs = ""
            if isinstance(companion, dict) and "id" in companion:
                attrs += f' id="{escape_attribute(str(companion["id"]))}"'
            if value is not None:
                attrs += f' value="{escape_attribute(_lexical(value))}"'
            if isinstance(companion, dict) and "extension" in companion:
                out.append(f"<{name}{attrs}>")
                self.children(companion, self.nodes["Element"], where, skip=("id",))
                out.append(f"</{name}>")
            else:
                out.append(f"<{name}{attrs}/>")
        elif spec.kind == COMPLEX:
            attributes = ("id", "url") if spec.type == "Extension" else ("id",)
            attrs = "".join(
                f' {a}="{escape_attribute(str(value[a]))}"' for a in attributes if a in value
            )
            out.append(f"<{name}{attrs}>")
            self.children(value, self.nodes[spec.node], where, skip=attributes)  # type: ignore[index]
            out.append(f"</{name}>")
        elif spec.kind == RESOURCE:
            out.append(f"<{name}>")
            self.resource(value)
            out.append(f"</{name}>")


def _lexical(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        # repr is the shortest string that reads back as the same float.
        return repr(value)
    return str(value)
