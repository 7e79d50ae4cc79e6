"""Base FHIR R4 validation of a resource in its JSON form.

Checked against the official R4 (4.0.1) element table (`_elements.py`; why not the fhir.resources
R4B models: docs/decisions/0001-r4b-models-for-r4.md):

- the resource is a JSON object with a known `resourceType` (and the expected one, when given);
- every property is an element of its type (choice types by their suffixed names, at most one
  variant per choice), arrays exactly where the element repeats, no empty objects, arrays or
  strings, `null` only inside primitive arrays as a placeholder for a `_name` extension entry;
- primitive values have the right JSON type and lexical form (id, date, dateTime, instant, time,
  code, uri, oid, uuid, base64Binary, integer ranges, finite decimals), `_name` companions are
  well-formed and aligned with their arrays;
- elements with min >= 1 are present;
- `code` elements bound REQUIRED to an enumerable value set hold one of its codes;
- invariants ele-1 (no empty elements), ext-1 (extension has a value or extensions, not both),
  dom-2 and dom-4 (contained resources have no contained resources, versionId or lastUpdated);
- contained resources, Bundle.entry.resource and Parameters.parameter.resource, recursively.

Not checked: other FHIRPath invariants, profiles, non-code required bindings (Coding and
CodeableConcept), extensible/preferred bindings, reference targets and formats, narrative XHTML
content rules (txt-1/txt-2). Every problem found is reported, not just the first.
"""

from __future__ import annotations

from typing import Any

from app.fhir._elements import COMPLEX, PRIMITIVE, RESOURCE, Element, Node, Table, table
from app.fhir._primitives import check, json_kind
from app.fhir.outcome import FhirError, Issue

__all__ = ["resource_types", "validate_resource"]

_MAX_LISTED_CODES = 12
_MAX_DEPTH = 128  # objects within objects; far beyond real resources, short of RecursionError


def resource_types() -> frozenset[str]:
    """The concrete R4 resource types (146 in 4.0.1), for routing unknown types to 404."""
    return table().resource_types


def validate_resource(resource: object, *, expected_type: str | None = None) -> None:
    """Raise `FhirError(400)` listing every way `resource` fails base R4 validation.

    `expected_type` is the type the URL names; a body of another type is invalid. The input is
    never modified.
    """
    issues: list[Issue] = []
    _Walker(table(), issues).resource(resource, "", expected_type, False)
    if issues:
        raise FhirError(400, tuple(issues))


class _Walker:
    __slots__ = ("depth", "element_node", "issues", "nodes", "types")

    def __init__(self, tables: Table, issues: list[Issue]) -> None:
        self.nodes = tables.nodes
        self.types = tables.resource_types
        self.element_node = tables.nodes["Element"]  # the shape of a `_name` companion
        self.issues = issues
        self.depth = 0

    def add(self, code: str, diagnostics: str, path: str) -> None:
        self.issues.append(Issue(code, diagnostics, (path,) if path else ()))

    def resource(self, obj: object, path: str, expected: str | None, contained: bool) -> None:
        if not isinstance(obj, dict):
            self.add("structure", f"a resource must be a JSON object, not {json_kind(obj)}", path)
            return
        rtype = obj.get("resourceType")
        if rtype is None:
            self.add("required", "missing resourceType", path)
            return
        if not isinstance(rtype, str) or rtype not in self.types:
            self.add("code-invalid", f"unknown resourceType {rtype!r}", path)
            return
        if expected is not None and rtype != expected:
            self.add("invalid", f"resourceType {rtype!r} does not match {expected!r}", path)
        root = path or rtype
        self.check_object(obj, self.nodes[rtype], root, resource=True)
        if contained:
            self.contained_rules(obj, root)

    def contained_rules(self, obj: dict[str, Any], path: str) -> None:
        if "contained" in obj:
            self.add("invariant", "dom-2: a contained resource cannot contain resources", path)
        meta = obj.get("meta")
        if isinstance(meta, dict) and ("versionId" in meta or "lastUpdated" in meta):
            self.add(
                "invariant",
                "dom-4: a contained resource cannot have meta.versionId or meta.lastUpdated",
                f"{path}.meta",
            )

    def check_object(
        self, obj: dict[str, Any], node: Node, path: str, resource: bool = False
    ) -> None:
        if self.depth >= _MAX_DEPTH:
            self.add("structure", "elements nested too deeply", path)
            return
        self.depth += 1
        try:
            self.members(obj, node, path, resource)
        finally:
            self.depth -= 1

    def members(self, obj: dict[str, Any], node: Node, path: str, resource: bool) -> None:
        elements = node.elements
        choices: dict[str, str] = {}
        for key, value in obj.items():
            if key[:1] == "_":
                el = elements.get(key[1:])
                if el is None or el.kind != PRIMITIVE:
                    self.add("structure", f"unknown element {key!r}", f"{path}.{key}")
                    continue
                if el.name in obj:
                    continue  # checked together with its value below
                self.choice(choices, el, path)
                self.companion(value, None, el, f"{path}.{el.name}")
                continue
            el = elements.get(key)
            if el is None:
                if not (resource and key == "resourceType"):
                    self.add("structure", f"unknown element {key!r}", f"{path}.{key}")
                continue
            if el.base != key:
                self.choice(choices, el, path)
            where = f"{path}.{key}"
            if el.kind == PRIMITIVE:
                companion = obj.get("_" + key)
                if companion is not None:
                    self.companion(companion, value, el, where)
            if el.repeats:
                if type(value) is not list:
                    self.add("structure", f"{key!r} repeats and must be a JSON array", where)
                elif not value:
                    self.add("structure", "empty array (FHIR does not allow empty values)", where)
                else:
                    has = obj.get("_" + key)
                    companions = has if type(has) is list else ()
                    for i, item in enumerate(value):
                        if item is None and i < len(companions) and companions[i] is not None:
                            continue  # the value is absent; its extensions are in `_key[i]`
                        self.item(item, el, f"{where}[{i}]")
            elif type(value) is list:
                self.add("structure", f"{key!r} does not repeat and must not be an array", where)
            else:
                self.item(value, el, where)
        for base, names in node.required:
            if not any(n in obj or "_" + n in obj for n in names):
                shown = base if len(names) == 1 and names[0] == base else base + "[x]"
                self.add("required", f"missing required element {shown!r}", f"{path}.{shown}")

    def choice(self, choices: dict[str, str], el: Element, path: str) -> None:
        other = choices.setdefault(el.base, el.name)
        if other != el.name:
            self.add(
                "structure",
                f"{other!r} and {el.name!r} are alternatives of {el.base}[x]: at most one",
                f"{path}.{el.name}",
            )

    def item(self, value: object, el: Element, path: str) -> None:
        kind = el.kind
        if kind == PRIMITIVE:
            problem = check(el.type, value)
            if problem is not None:
                self.add("structure" if value is None else "value", problem, path)
            elif el.codes is not None and value not in el.codes:
                self.add("code-invalid", _bad_code(value, el.codes), path)
        elif kind == COMPLEX:
            if type(value) is not dict:
                self.add("structure", f"expected a JSON object, got {json_kind(value)}", path)
            elif not value:
                self.add("structure", "empty object (FHIR does not allow empty values)", path)
            else:
                self.check_object(value, self.nodes[el.node], path)  # type: ignore[index]
                if el.type == "Extension":
                    self.extension_rule(value, path)
        elif kind == RESOURCE:
            self.resource(value, path, None, el.name == "contained")

    def extension_rule(self, ext: dict[str, Any], path: str) -> None:
        has_value = any(k.startswith(("value", "_value")) for k in ext)
        if has_value == ("extension" in ext):
            self.add(
                "invariant",
                "ext-1: an extension must have either extensions or a value[x], not both",
                path,
            )

    def companion(self, companion: object, value: object, el: Element, path: str) -> None:
        """Check `_name`, the id/extensions of a primitive (one object, or an aligned array)."""
        if not el.repeats:
            self.extension_holder(companion, path)
            return
        if type(companion) is not list:
            self.add("structure", f"'_{el.name}' must be a JSON array", path)
            return
        if type(value) is list and len(value) != len(companion):
            self.add("structure", f"'_{el.name}' and {el.name!r} differ in length", path)
            return
        if value is None and not companion:
            self.add("structure", "empty array (FHIR does not allow empty values)", path)
        for i, item in enumerate(companion):
            if item is not None:
                self.extension_holder(item, f"{path}[{i}]")
            elif value is None or (type(value) is list and value[i] is None):
                self.add("structure", "null value without extensions", f"{path}[{i}]")

    def extension_holder(self, holder: object, path: str) -> None:
        if type(holder) is not dict:
            self.add("structure", f"expected a JSON object, got {json_kind(holder)}", path)
        elif not holder:
            self.add("structure", "empty object (FHIR does not allow empty values)", path)
        else:
            self.check_object(holder, self.element_node, path)


def _bad_code(value: object, codes: frozenset[str]) -> str:
    if len(codes) <= _MAX_LISTED_CODES:
        return f"invalid code {value!r}: expected one of {', '.join(sorted(codes))}"
    return f"invalid code {value!r}: not in the required value set"
