"""FHIRPath Patch (fhirpatch.html, http.html#patch): a `Parameters` resource of operations.

Supported: `add`, `insert`, `delete`, `replace` and `move`, with `path` evaluated by fhirpathpy on
the R4 model. Values come as `value[x]` (any type, complex ones as their JSON object) or composed
from `part`s named for the element's children. A malformed patch document is a 400 (`invalid`);
a well-formed one that does not apply to this resource is a 422 (`processing`). Operations apply
in order; the input resource is never modified.

How a path is located: fhirpathpy (with `returnRawData`) answers the very dict objects of the
resource for complex elements, found again by identity; primitives carry their concrete path
(`Patient.name[0].given[1]`), matched against the same walk. `insert` and `move` name a list by
its parent path and last element name, since an empty list evaluates to nothing.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fhirpathpy import evaluate
from fhirpathpy.models import models

from app.fhir._elements import COMPLEX, RESOURCE, Element, table
from app.fhir.outcome import FhirError

__all__ = ["apply_fhirpath_patch"]

_TYPES = ("add", "insert", "delete", "replace", "move")
_LAST_NAME = re.compile(r"^(?P<parent>.+)\.(?P<name>[A-Za-z][A-Za-z0-9_]*)$")


@dataclass(frozen=True)
class _Value:
    json: Any  # a value[x] as given, or None when composed from parts
    suffix: str | None  # `String` of `valueString`; None for a part-composed value
    parts: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class _Operation:
    where: str  # Parameters.parameter[i], for diagnostics
    type: str
    path: str
    name: str | None = None
    value: _Value | None = None
    index: int | None = None
    source: int | None = None
    destination: int | None = None


@dataclass(frozen=True)
class _Loc:
    """Where one element lives: `parent[key]` or `parent[key][index]`."""

    parent: dict[str, Any]
    key: str
    index: int | None
    element: Element | None
    path: str  # concrete FHIRPath, choice elements by their base name (as fhirpathpy names them)
    value: Any
    node: str | None  # element-table node of `value` when it is an object


def apply_fhirpath_patch(resource: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """The patched copy of `resource`."""
    operations = _parse(parameters)
    result = copy.deepcopy(resource)
    for op in operations:
        _APPLY[op.type](result, op)
    return result


# --- parsing the Parameters --------------------------------------------------------------------


def _bad(diagnostics: str, where: str) -> FhirError:
    return FhirError.of(400, "invalid", diagnostics, where)


def _parse(parameters: dict[str, Any]) -> list[_Operation]:
    params = parameters.get("parameter")
    if not isinstance(params, list) or not params:
        raise _bad("a FHIRPath Patch needs at least one operation parameter", "Parameters")
    return [_operation(p, f"Parameters.parameter[{i}]") for i, p in enumerate(params)]


def _operation(param: Any, where: str) -> _Operation:
    if not isinstance(param, dict) or param.get("name") != "operation":
        raise _bad("every parameter of a FHIRPath Patch must be named 'operation'", where)
    parts: dict[str, dict[str, Any]] = {}
    for j, part in enumerate(param.get("part") or []):
        name = part.get("name") if isinstance(part, dict) else None
        if not isinstance(name, str) or name in parts:
            raise _bad(f"operation part {j} is unnamed or repeated", f"{where}.part[{j}]")
        parts[name] = part
    type_ = _primitive(parts, "type", where)
    if type_ not in _TYPES:
        raise _bad(f"operation type must be one of {', '.join(_TYPES)}, not {type_!r}", where)
    path = _primitive(parts, "path", where)
    if not isinstance(path, str) or not path.strip():
        raise _bad(f"{type_} needs a path", where)
    needed = {
        "add": ("name", "value"),
        "insert": ("index", "value"),
        "delete": (),
        "replace": ("value",),
        "move": ("source", "destination"),
    }[type_]
    for name in needed:
        if name not in parts:
            raise _bad(f"{type_} needs the {name} part", where)
    name = _primitive(parts, "name", where) if "name" in parts else None
    if name is not None and not isinstance(name, str):
        raise _bad("the name part must be a string", where)
    return _Operation(
        where=where,
        type=type_,
        path=path,
        name=name,
        value=_value(parts["value"], where) if "value" in parts else None,
        index=_integer(parts, "index", where),
        source=_integer(parts, "source", where),
        destination=_integer(parts, "destination", where),
    )


def _primitive(parts: dict[str, dict[str, Any]], name: str, where: str) -> Any:
    part = parts.get(name)
    if part is None:
        raise _bad(f"the operation has no {name} part", where)
    values = [v for k, v in part.items() if k.startswith("value")]
    if len(values) != 1:
        raise _bad(f"the {name} part needs exactly one value[x]", where)
    return values[0]


def _integer(parts: dict[str, dict[str, Any]], name: str, where: str) -> int | None:
    if name not in parts:
        return None
    value = _primitive(parts, name, where)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _bad(f"the {name} part must be a non-negative integer, not {value!r}", where)
    return value


def _value(part: dict[str, Any], where: str) -> _Value:
    typed = [(k, v) for k, v in part.items() if k.startswith("value") and len(k) > 5]
    subparts = part.get("part")
    if len(typed) == 1 and subparts is None:
        key, value = typed[0]
        return _Value(value, key[5:])
    if not typed and isinstance(subparts, list) and subparts:
        if not all(isinstance(p, dict) and isinstance(p.get("name"), str) for p in subparts):
            raise _bad("every part of a composed value needs a name", f"{where}.value")
        return _Value(None, None, tuple(subparts))
    raise _bad("the value part needs exactly one value[x], or parts", f"{where}.value")


def _materialize(value: _Value, node: str | None) -> Any:
    """The JSON of `value`; parts are typed through the element table of `node`."""
    if value.suffix is not None:
        return copy.deepcopy(value.json)
    elements = table().nodes[node].elements if node in table().nodes else {}
    out: dict[str, Any] = {}
    for part in value.parts:
        name = part["name"]
        inner = _value(part, f"value.part({name})")
        key = _json_name(elements, name, inner.suffix) if elements else name
        element = elements.get(key)
        item = _materialize(inner, element.node if element else None)
        if element is not None and element.repeats:
            out.setdefault(key, []).append(item)
        elif key in out:
            out[key] = [*out[key], item] if isinstance(out[key], list) else [out[key], item]
        else:
            out[key] = item
    return out


def _json_name(elements: dict[str, Element], name: str, suffix: str | None) -> str:
    """`value` + `String` -> `valueString` for a choice element; `name` otherwise."""
    if name not in elements and suffix is not None and name + suffix in elements:
        return name + suffix
    return name


# --- locating elements -------------------------------------------------------------------------


def _walk(resource: dict[str, Any]) -> Iterator[_Loc]:
    """Every element of `resource` (not the resource itself), depth first."""
    root = resource.get("resourceType", "")
    yield from _children(resource, root, root)


def _children(obj: dict[str, Any], node: str | None, path: str) -> Iterator[_Loc]:
    nodes = table().nodes
    elements = nodes[node].elements if node in nodes else {}
    for key, value in obj.items():
        if key == "resourceType":
            continue
        companion = key.startswith("_")
        element = None if companion else elements.get(key)
        name = key[1:] if companion else (element.base if element else key)
        child_node = "Element" if companion else _child_node(element)
        items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
        for index, item in items:
            item_path = f"{path}.{name}" + ("" if index is None else f"[{index}]")
            own = (
                item.get("resourceType")
                if isinstance(item, dict) and (element is not None and element.kind == RESOURCE)
                else child_node
            )
            loc = _Loc(obj, key, index, element, item_path, item, own)
            if not companion:
                yield loc
            if isinstance(item, dict):
                yield from _children(item, own, item_path)


def _child_node(element: Element | None) -> str | None:
    if element is None or element.kind != COMPLEX:
        return None
    return element.node


def _evaluate(resource: dict[str, Any], path: str, op: _Operation) -> list[Any]:
    try:
        found = evaluate(resource, path, {}, models["r4"], {"returnRawData": True})
    except Exception as exc:  # fhirpathpy raises bare Exceptions for unknown functions etc.
        raise _bad(
            f"path {path!r} is not a FHIRPath expression this server evaluates: {exc}", op.where
        ) from None
    return list(found)


def _targets(resource: dict[str, Any], path: str, op: _Operation) -> list[_Loc]:
    """The located elements `path` selects (the resource itself as a parentless location)."""
    nodes = _evaluate(resource, path, op)
    if not nodes:
        return []
    locs = list(_walk(resource))
    root = _Loc(
        {}, "", None, None, resource.get("resourceType", ""), resource, resource.get("resourceType")
    )
    found: list[_Loc] = []
    for node in nodes:
        data = getattr(node, "data", node)
        if data is resource:
            found.append(root)
            continue
        if isinstance(data, dict):
            match = next((loc for loc in locs if loc.value is data), None)
        else:
            prop = getattr(node, "propName", None)
            match = next(
                (loc for loc in locs if loc.path == prop and not isinstance(loc.value, dict)),
                None,
            )
        if match is None:
            if isinstance(data, dict) and _is_companion(resource, data):
                continue  # the `_name` extension holder fhirpathpy adds beside a primitive
            raise _unapplicable(f"path {path!r} selects an element this patch cannot change", op)
        if match not in found:
            found.append(match)
    return found


def _is_companion(resource: dict[str, Any], data: dict[str, Any]) -> bool:
    def seek(obj: Any) -> bool:
        if isinstance(obj, dict):
            return any(
                (
                    k.startswith("_")
                    and (v is data or (isinstance(v, list) and any(x is data for x in v)))
                )
                or seek(v)
                for k, v in obj.items()
            )
        return isinstance(obj, list) and any(seek(x) for x in obj)

    return seek(resource)


def _single(resource: dict[str, Any], op: _Operation, allow_none: bool = False) -> _Loc | None:
    locs = _targets(resource, op.path, op)
    if len(locs) > 1:
        raise _unapplicable(
            f"path {op.path!r} selects {len(locs)} elements; it must select one", op
        )
    if not locs:
        if allow_none:
            return None
        raise _unapplicable(f"path {op.path!r} selects nothing in this resource", op)
    return locs[0]


def _unapplicable(diagnostics: str, op: _Operation) -> FhirError:
    return FhirError.of(422, "processing", f"{op.type}: {diagnostics}", op.where)


def _list_target(resource: dict[str, Any], op: _Operation) -> tuple[dict[str, Any], str]:
    """The object holding the list `op.path` names, and the list's key."""
    match = _LAST_NAME.match(op.path.strip())
    if match is None:
        raise _bad(f"{op.type} needs a path ending in an element name, not {op.path!r}", op.where)
    holder = _single(resource, _Operation(op.where, op.type, match["parent"]))
    assert holder is not None
    if not isinstance(holder.value, dict):
        raise _unapplicable(f"{match['parent']!r} is not an element with children", op)
    name = match["name"]
    nodes = table().nodes
    element = nodes[holder.node].elements.get(name) if holder.node in nodes else None
    if holder.node in nodes and (element is None or not element.repeats):
        raise _unapplicable(f"{holder.node}.{name} is not a repeating element", op)
    return holder.value, name


# --- the operations ----------------------------------------------------------------------------


def _add(resource: dict[str, Any], op: _Operation) -> None:
    loc = _single(resource, op)
    assert loc is not None and op.name is not None and op.value is not None
    if not isinstance(loc.value, dict):
        raise _unapplicable(f"path {op.path!r} is a primitive; add needs an element to add to", op)
    nodes = table().nodes
    elements = nodes[loc.node].elements if loc.node in nodes else {}
    key = _json_name(elements, op.name, op.value.suffix)
    element = elements.get(key)
    if elements and element is None:
        raise _unapplicable(f"{loc.node} has no element {op.name!r}", op)
    value = _materialize(op.value, element.node if element else None)
    existing = loc.value.get(key)
    if element is not None and element.repeats:
        loc.value[key] = [*(existing or []), value]
    elif existing is not None:
        raise _unapplicable(f"{loc.path}.{op.name} already has a value; use replace", op)
    else:
        loc.value[key] = value


def _insert(resource: dict[str, Any], op: _Operation) -> None:
    holder, key = _list_target(resource, op)
    assert op.index is not None and op.value is not None
    items = holder.get(key) or []
    if op.index > len(items):
        raise _unapplicable(f"index {op.index} is beyond the {len(items)} elements of {key}", op)
    element = _element_of(resource, holder, key)
    value = _materialize(op.value, element.node if element else None)
    holder[key] = [*items[: op.index], value, *items[op.index :]]
    _mirror(holder, key, lambda c: c.insert(op.index or 0, None))


def _move(resource: dict[str, Any], op: _Operation) -> None:
    holder, key = _list_target(resource, op)
    assert op.source is not None and op.destination is not None
    items = list(holder.get(key) or [])
    for what, i in (("source", op.source), ("destination", op.destination)):
        if i >= len(items):
            raise _unapplicable(f"{what} {i} is beyond the {len(items)} elements of {key}", op)
    source, destination = op.source, op.destination
    items.insert(destination, items.pop(source))
    holder[key] = items
    _mirror(holder, key, lambda c: c.insert(destination, c.pop(source)))


def _delete(resource: dict[str, Any], op: _Operation) -> None:
    loc = _single(resource, op, allow_none=True)
    if loc is None:
        return  # nothing to delete: the patch succeeds with no change
    if not loc.key:
        raise _unapplicable("the resource itself cannot be deleted by a patch", op)
    if loc.index is None:
        del loc.parent[loc.key]
        loc.parent.pop("_" + loc.key, None)
        return
    index = loc.index
    items = loc.parent[loc.key]
    del items[index]
    _mirror(loc.parent, loc.key, lambda c: c.pop(index))
    if not items:
        del loc.parent[loc.key]
        loc.parent.pop("_" + loc.key, None)


def _replace(resource: dict[str, Any], op: _Operation) -> None:
    loc = _single(resource, op)
    assert loc is not None and op.value is not None
    if not loc.key:
        raise _unapplicable("the resource itself cannot be replaced by a patch", op)
    element = loc.element
    value = _materialize(op.value, loc.node if isinstance(loc.value, dict) else None)
    if loc.index is not None:
        loc.parent[loc.key][loc.index] = value
        return
    key = loc.key
    if element is not None and element.base != element.name and op.value.suffix is not None:
        key = element.base + op.value.suffix  # a choice element may change type
        del loc.parent[loc.key]
        loc.parent.pop("_" + loc.key, None)
    loc.parent[key] = value


def _element_of(resource: dict[str, Any], holder: dict[str, Any], key: str) -> Element | None:
    if holder is resource:
        node: str | None = resource.get("resourceType")
    else:
        node = next((loc.node for loc in _walk(resource) if loc.value is holder), None)
    nodes = table().nodes
    return nodes[node].elements.get(key) if node in nodes else None


def _mirror(holder: dict[str, Any], key: str, change: Any) -> None:
    """Keep a primitive list's `_key` extension list aligned with it."""
    companion = holder.get("_" + key)
    if isinstance(companion, list):
        change(companion)
        if all(c is None for c in companion):
            del holder["_" + key]


_APPLY = {"add": _add, "insert": _insert, "delete": _delete, "replace": _replace, "move": _move}
