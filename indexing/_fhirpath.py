"""FHIRPath evaluation for search parameters: fhirpathpy with the R4 model and an offline resolve().

An evaluator returns `Node`s: the FHIR type name of each result (`Quantity`, `dateTime`,
`Reference`, `Observation.component` for a backbone element, ...) next to its JSON data, because
the extractor needs the type of a choice element (`Observation.value[x]`) to convert it.

`resolve()` never fetches anything: search-parameter expressions only use it as
`resolve() is Patient`, to tell which kind of resource a reference points to, and the reference
itself says so (`Patient/123`, `http://other/fhir/Patient/123`, or `Reference.type`). A reference
whose type cannot be read from it (`#contained`, `urn:uuid:...`) resolves to nothing, so it does
not pass a `resolve() is X` filter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, NamedTuple

import fhirpathpy
from antlr4 import CommonTokenStream, InputStream, Token
from antlr4.error.ErrorListener import ErrorListener
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models
from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

__all__ = [
    "R4_MODEL",
    "RESOURCE_TYPES",
    "Evaluator",
    "Node",
    "compile_fhirpath",
    "distinct_nodes",
    "is_subtype",
    "reference_parts",
    "referenced_type",
    "split_union",
]

R4_MODEL: Mapping[str, Any] = models["r4"]


def _resource_types(model: Mapping[str, Any]) -> frozenset[str]:
    parents: Mapping[str, str] = model["type2Parent"]
    found = {"Resource", "DomainResource"}
    changed = True
    while changed:
        changed = False
        for name, parent in parents.items():
            if parent in found and name not in found:
                found.add(name)
                changed = True
    return frozenset(found - {"Resource", "DomainResource"})


RESOURCE_TYPES: frozenset[str] = _resource_types(R4_MODEL)


class Node(NamedTuple):
    """One FHIRPath result: its FHIR type name and its JSON value."""

    type: str
    data: Any


Evaluator = Callable[[Any], list[Node]]
"""Takes a resource (dict) or a `Node` to evaluate relative to; returns the result nodes."""

# Type/id, optionally under a base URL and optionally versioned (R4 §2.1.0.3 literal references).
_REFERENCE = re.compile(
    r"(?P<base>(?:https?|urn):.*?/)?"
    r"(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})"
    r"(?:/_history/(?P<version>[A-Za-z0-9\-.]{1,64}))?"
)


def reference_parts(reference: str) -> tuple[str, str, str | None, str | None] | None:
    """`(type, id, base-url-or-None, version-or-None)` of a literal reference, else None."""
    match = _REFERENCE.fullmatch(reference)
    if match is None or match["type"] not in RESOURCE_TYPES:
        return None
    return match["type"], match["id"], match["base"], match["version"]


def referenced_type(reference: Mapping[str, Any]) -> str | None:
    """The resource type a Reference points to, read from the reference itself (no I/O)."""
    literal = reference.get("reference")
    if isinstance(literal, str):
        parts = reference_parts(literal)
        if parts is not None:
            return parts[0]
    declared = reference.get("type")
    if isinstance(declared, str) and declared in RESOURCE_TYPES:
        return declared
    return None


def _resolve(inputs: list[Any]) -> list[ResourceNode]:
    resolved = []
    for item in inputs:
        if isinstance(item, Mapping):
            target = referenced_type(item)
            if target is not None:
                resolved.append(ResourceNode({"resourceType": target}, target))
    return resolved


_OPTIONS = {
    "userInvocationTable": {"resolve": {"fn": _resolve, "arity": {0: []}}},
    "returnRawData": True,
}


def is_subtype(type_name: str, ancestor: str) -> bool:
    """FHIRPath `is`: the type or one of its parents is `ancestor` (as fhirpathpy decides it)."""
    parents: Mapping[str, str] = R4_MODEL["type2Parent"]
    path_types: Mapping[str, str] = R4_MODEL["path2Type"]
    current: str | None = type_name
    while current:
        if current == ancestor:
            return True
        current = parents.get(current) or path_types.get(current)
    return False


def _node(item: Any) -> Node | None:
    if isinstance(item, ResourceNode):
        data = item.data
        if data is None or (isinstance(data, Mapping) and data.keys() == {"extension"}):
            return None  # the `_element` half of a primitive that has only extensions
        return Node(item.path or _primitive_type(data), data)
    return Node(_primitive_type(item), item)


def _primitive_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float | Decimal):
        return "decimal"
    if isinstance(value, str):
        return "string"
    return "Element"


def split_union(expression: str) -> list[str]:
    """Split on `|` outside parentheses and string literals."""
    branches: list[str] = []
    depth = 0
    quoted = False
    current: list[str] = []
    for char in expression:
        if char == "'":
            quoted = not quoted
        elif not quoted and char in "([":
            depth += 1
        elif not quoted and char in ")]":
            depth -= 1
        elif char == "|" and depth == 0 and not quoted:
            branches.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    branches.append("".join(current).strip())
    return [branch for branch in branches if branch]


def distinct_nodes(nodes: list[Node]) -> list[Node]:
    """`|` is a union: equal values appear once (FHIRPath compares the data, not the type)."""
    kept: list[Node] = []
    for node in nodes:
        if all(node.data != seen.data for seen in kept):
            kept.append(node)
    return kept


def compile_fhirpath(expression: str) -> Evaluator:
    """Parse once; raises ValueError when the expression does not parse.

    Each top-level `|` branch is compiled on its own and the union taken here, because
    fhirpathpy's union drops the type of its operands (a CodeableConcept comes back untyped)."""
    branches = [_compile_branch(branch) for branch in split_union(expression)]
    if not branches:
        raise ValueError("FHIRPath expression is empty")
    if len(branches) == 1:
        return branches[0]
    return lambda target: distinct_nodes([node for branch in branches for node in branch(target)])


class _RaisingErrorListener(ErrorListener):
    # antlr calls `syntaxError` (its name) on every lexer or parser error.
    def syntaxError(
        self, recognizer: Any, offending: Any, line: int, column: int, msg: str, e: Any
    ) -> None:
        raise ValueError(f"column {column + 1}: {msg}")


def check_syntax(expression: str) -> None:
    """Raise ValueError on a syntax error. fhirpathpy's own parse recovers silently (and then
    fails, or worse succeeds, at evaluation), so a client's expression is checked strictly."""
    listener = _RaisingErrorListener()
    lexer = FHIRPathLexer(InputStream(expression))
    lexer.removeErrorListeners()
    lexer.addErrorListener(listener)
    tokens = CommonTokenStream(lexer)
    parser = FHIRPathParser(tokens)
    parser.removeErrorListeners()
    parser.addErrorListener(listener)
    parser.expression()
    if tokens.LA(1) != Token.EOF:
        raise ValueError(f"unexpected {tokens.LT(1).text!r} after a complete expression")


def _compile_branch(expression: str) -> Evaluator:
    try:
        check_syntax(expression)
        compiled = fhirpathpy.compile(expression, dict(R4_MODEL), _OPTIONS)
    except Exception as error:  # the parser raises bare Exceptions
        raise ValueError(f"FHIRPath expression does not compile: {expression!r}: {error}") from None

    def evaluate(target: Any) -> list[Node]:
        root = ResourceNode(target.data, target.type) if isinstance(target, Node) else target
        nodes = (_node(item) for item in compiled(root, {}))  # type: ignore[arg-type]
        return [node for node in nodes if node is not None]

    return evaluate
