"""The search parameters the server knows, loaded from `search-params/` and compiled once.

A `SearchParam` is the definition as published (one SearchParameter may serve many resource
types). The registry narrows each definition to one resource type before compiling it: R4 writes
shared parameters as one union over all bases (`AllergyIntolerance.patient | CarePlan.subject...`),
and evaluating only the branch that can match the resource's type is both correct and much
cheaper. Evaluators are built lazily per (type, code) and cached, so start-up stays fast and each
expression is parsed at most once.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, NamedTuple, cast, get_args

from indexing._fastpath import compile_fast_path, first_keys
from indexing._fhirpath import RESOURCE_TYPES, Evaluator, compile_fhirpath, split_union

__all__ = [
    "RESERVED_DOCUMENT_FIELDS",
    "Component",
    "ParamType",
    "SearchParam",
    "SearchParamRegistry",
    "default_search_params_dir",
]

ParamType = Literal[
    "number", "date", "string", "token", "reference", "composite", "quantity", "uri", "special"
]
PARAM_TYPES: frozenset[str] = frozenset(get_args(ParamType))

# The folder of search-params/ holding CompartmentDefinitions (indexing/compartment.py), not
# SearchParameters.
COMPARTMENTS_DIR = "compartments"

# Index-document keys that are not search parameters (see indexing/document.py); a parameter
# with one of these codes would collide with them.
RESERVED_DOCUMENT_FIELDS = frozenset({"id", "resourceType", "versionId", "lastUpdated"})

# Bases whose parameters apply to every resource type (Resource) or every type but Bundle,
# Binary and Parameters (DomainResource).
_ABSTRACT_BASES = ("Resource", "DomainResource")
_NOT_DOMAIN_RESOURCES = frozenset({"Bundle", "Binary", "Parameters"})


class Component(NamedTuple):
    """One part of a composite parameter: the component's SearchParameter url and its expression
    (relative to each node the composite's own expression selects)."""

    definition: str
    expression: str


@dataclass(frozen=True, slots=True)
class SearchParam:
    """One SearchParameter definition (R4 §SearchParameter), reduced to what the server uses."""

    url: str
    code: str
    type: ParamType
    base: tuple[str, ...]
    expression: str
    target: tuple[str, ...] = ()
    components: tuple[Component, ...] = ()
    multiple_or: bool | None = None
    multiple_and: bool | None = None
    comparators: tuple[str, ...] = ()
    modifiers: tuple[str, ...] = ()
    chains: tuple[str, ...] = ()

    def applies_to(self, resource_type: str) -> bool:
        if resource_type in self.base or "Resource" in self.base:
            return True
        return "DomainResource" in self.base and resource_type not in _NOT_DOMAIN_RESOURCES

    def expression_for(self, resource_type: str) -> str:
        """The branches of the expression that can select something in `resource_type`,
        with a `Resource.`/`DomainResource.` prefix rewritten to the concrete type (FHIRPath
        `Resource.id` on a Patient would otherwise filter on resourceType = 'Resource')."""
        kept = []
        for branch in split_union(self.expression):
            start = len(branch) - len(branch.lstrip("( "))
            head = branch[start:]
            if head[:1].islower() and self.base == (resource_type,):
                # R4 InsurancePlan-name reads `name | alias`: relative to its only base.
                kept.append(f"{branch[:start]}{resource_type}.{head}")
                continue
            for prefix in (resource_type, *_ABSTRACT_BASES):
                if head == prefix or head.startswith((prefix + ".", prefix + " ")):
                    kept.append(branch[:start] + resource_type + head[len(prefix) :])
                    break
        return " | ".join(kept)


def parse_search_parameter(resource: Mapping[str, Any]) -> SearchParam:
    """A SearchParam from SearchParameter JSON (full or the compact form in search-params/).

    Raises ValueError naming the first missing or malformed element."""
    if resource.get("resourceType", "SearchParameter") != "SearchParameter":
        raise ValueError(f"expected a SearchParameter, got {resource.get('resourceType')!r}")
    code = _required_string(resource, "code")
    param_type = _required_string(resource, "type")
    if param_type not in PARAM_TYPES:
        raise ValueError(
            f"SearchParameter.type {param_type!r} is not one of {', '.join(sorted(PARAM_TYPES))}"
        )
    base = _string_list(resource, "base")
    if not base:
        raise ValueError("SearchParameter.base is required (at least one resource type)")
    unknown = [name for name in base if name not in RESOURCE_TYPES and name not in _ABSTRACT_BASES]
    if unknown:
        raise ValueError(f"SearchParameter.base names unknown resource types: {unknown}")
    components = tuple(_components(resource))
    if param_type == "composite" and not components:
        raise ValueError("a composite SearchParameter needs SearchParameter.component")
    url = resource.get("url")
    return SearchParam(
        url=url if isinstance(url, str) and url else f"urn:micdr:search-param:{base[0]}-{code}",
        code=code,
        type=cast(ParamType, param_type),
        base=tuple(base),
        expression=resource.get("expression") or "",
        target=tuple(_string_list(resource, "target")),
        components=components,
        multiple_or=resource.get("multipleOr"),
        multiple_and=resource.get("multipleAnd"),
        comparators=tuple(_string_list(resource, "comparator")),
        modifiers=tuple(_string_list(resource, "modifier")),
        chains=tuple(_string_list(resource, "chain")),
    )


def _required_string(resource: Mapping[str, Any], element: str) -> str:
    value = resource.get(element)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"SearchParameter.{element} is required (a non-empty string)")
    return value


def _string_list(resource: Mapping[str, Any], element: str) -> list[str]:
    value = resource.get(element, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"SearchParameter.{element} must be a list of strings")
    return value


def _components(resource: Mapping[str, Any]) -> Iterator[Component]:
    for index, component in enumerate(resource.get("component", [])):
        definition = component.get("definition") if isinstance(component, Mapping) else None
        expression = component.get("expression") if isinstance(component, Mapping) else None
        if not isinstance(definition, str) or not isinstance(expression, str):
            raise ValueError(
                f"SearchParameter.component[{index}] needs a definition and an expression"
            )
        yield Component(definition, expression)


def default_search_params_dir() -> Path:
    """The source tree's `search-params/`, else the copy an installed wheel puts under
    `sys.prefix/share/micdr/search-params`."""
    in_tree = Path(__file__).resolve().parents[1] / "search-params"
    if in_tree.is_dir():
        return in_tree
    installed = Path(sys.prefix) / "share" / "micdr" / "search-params"
    if installed.is_dir():
        return installed
    raise FileNotFoundError(f"no search-params directory at {in_tree} or {installed}")


@dataclass(frozen=True, slots=True)
class BoundParam:
    """A parameter narrowed to one resource type, with its compiled evaluator."""

    param: SearchParam
    resource_type: str
    expression: str
    evaluate: Evaluator
    keys: tuple[str, ...] | None = None
    """A resource without any of these top-level keys has no value for it (None: unknown)."""

    def selects_nothing_in(self, resource: Mapping[str, Any]) -> bool:
        return self.keys is not None and not any(key in resource for key in self.keys)


@dataclass
class SearchParamRegistry:
    """All known parameters by resource type and code, plus lookup by canonical url."""

    _by_url: dict[str, SearchParam] = field(default_factory=dict)
    _by_base: dict[str, dict[str, SearchParam]] = field(default_factory=dict)
    _for_type: dict[str, Mapping[str, SearchParam]] = field(default_factory=dict)
    _bound: dict[tuple[str, str], BoundParam | None] = field(default_factory=dict)
    _compiled: dict[str, Evaluator] = field(default_factory=dict)
    _sources: dict[str, tuple[int | None, SearchParam]] = field(default_factory=dict)
    fast_path: bool = True
    """False: evaluate everything with fhirpathpy (the reference the fast path is tested on)."""
    synced_changes: int | None = None
    """The store's count of SearchParameter commits when this registry last read them all
    (app/search_parameters.py; None: never)."""

    @classmethod
    def load(cls, directory: Path | None = None, *, fast_path: bool = True) -> SearchParamRegistry:
        """Every `*.json` under `directory` (default: `default_search_params_dir()`), each a list
        of SearchParameter objects. `r4/` loads first and later definitions replace earlier ones
        with the same base and code, so an IG definition overrides the core one."""
        root = directory if directory is not None else default_search_params_dir()
        registry = cls(fast_path=fast_path)
        files = sorted(
            (p for p in root.rglob("*.json") if COMPARTMENTS_DIR not in p.relative_to(root).parts),
            key=lambda p: (p.parent.name != "r4", p),
        )
        if not files:
            raise FileNotFoundError(f"no search parameter files under {root}")
        for path in files:
            registry._add_all(_read_definitions(path), origin=path)
        return registry

    def _add_all(self, definitions: Iterable[Mapping[str, Any]], origin: Path) -> None:
        for index, definition in enumerate(definitions):
            try:
                self._add(parse_search_parameter(definition))
            except ValueError as error:
                raise ValueError(f"{origin} [{index}]: {error}") from None

    def _add(self, param: SearchParam) -> None:
        self._by_url[param.url] = param
        for base in param.base:
            self._by_base.setdefault(base, {})[param.code] = param
        self._for_type.clear()
        self._bound.clear()

    def check(self, search_parameter: Mapping[str, Any]) -> SearchParam:
        """The SearchParam a client's SearchParameter would register, without registering it.
        Raises ValueError saying what is wrong: a missing code/base/type/expression, an
        expression that does not compile, or a code that collides with an index-document field."""
        param = parse_search_parameter(search_parameter)
        if param.type != "special" and not param.expression.strip():
            raise ValueError("SearchParameter.expression is required")
        if param.code in RESERVED_DOCUMENT_FIELDS:
            raise ValueError(f"SearchParameter.code {param.code!r} is reserved by the index")
        for base in param.base:
            for resource_type in self._types_of(base):
                narrowed = param.expression_for(resource_type)
                if param.type != "special" and not narrowed:
                    raise ValueError(
                        f"SearchParameter.expression {param.expression!r} selects nothing in"
                        f" {resource_type}: each branch must start with the resource type"
                    )
                if narrowed:
                    self._compile(narrowed)
        for component in param.components:
            self._compile(component.expression)
        return param

    def register(
        self,
        search_parameter: Mapping[str, Any],
        *,
        source: str | None = None,
        version: int | None = None,
    ) -> SearchParam:
        """Add a client's SearchParameter (e.g. POSTed); raises ValueError as `check` does.

        `source` (e.g. `SearchParameter/<id>`) and its `version` name where the definition came
        from: registering a source again replaces its earlier definition, and `unregister`
        removes it (a retired or deleted SearchParameter)."""
        param = self.check(search_parameter)
        if source is not None:
            self.unregister(source)
            self._sources[source] = (version, param)
        self._add(param)
        return param

    def unregister(self, source: str) -> SearchParam | None:
        """Remove the definition registered from `source`; a definition it had replaced (same
        base and code, e.g. the core one) applies again. Answers the removed definition."""
        entry = self._sources.pop(source, None)
        if entry is None:
            return None
        param = entry[1]
        if self._by_url.get(param.url) is param:
            del self._by_url[param.url]
        for base in param.base:
            by_code = self._by_base.get(base, {})
            if by_code.get(param.code) is param:
                replacement = [
                    p for p in self._by_url.values() if base in p.base and p.code == param.code
                ]
                if replacement:
                    by_code[param.code] = replacement[-1]
                else:
                    del by_code[param.code]
        self._for_type.clear()
        self._bound.clear()
        return param

    def source_version(self, source: str) -> int | None:
        """The version registered from `source`, None when nothing is."""
        entry = self._sources.get(source)
        return entry[0] if entry is not None else None

    def _types_of(self, base: str) -> Iterable[str]:
        # An abstract base's branches differ per type only in their first name: check one.
        return ("Patient",) if base in _ABSTRACT_BASES else (base,)

    def get(self, resource_type: str, code: str) -> SearchParam | None:
        return self.for_type(resource_type).get(code)

    def by_url(self, url: str) -> SearchParam | None:
        return self._by_url.get(url)

    def for_type(self, resource_type: str) -> Mapping[str, SearchParam]:
        """Every parameter usable on `resource_type`, by code: its own plus Resource-level ones."""
        cached = self._for_type.get(resource_type)
        if cached is None:
            merged: dict[str, SearchParam] = {}
            if resource_type not in _NOT_DOMAIN_RESOURCES:
                merged.update(self._by_base.get("DomainResource", {}))
            merged.update(self._by_base.get("Resource", {}))
            merged.update(self._by_base.get(resource_type, {}))
            cached = MappingProxyType(merged)
            self._for_type[resource_type] = cached
        return cached

    def bound(self, resource_type: str, code: str) -> BoundParam | None:
        """The compiled form of one parameter for one type; None when it selects nothing there
        (no expression, as for `_text`, `_content`, `_query`)."""
        key = (resource_type, code)
        if key not in self._bound:
            param = self.get(resource_type, code)
            expression = param.expression_for(resource_type) if param is not None else ""
            self._bound[key] = (
                BoundParam(
                    param,
                    resource_type,
                    expression,
                    self._compile(expression),
                    first_keys(expression) if self.fast_path else None,
                )
                if param is not None and expression
                else None
            )
        return self._bound[key]

    def bound_for_type(self, resource_type: str) -> list[BoundParam]:
        """All compiled parameters of one type, in code order."""
        bound = (self.bound(resource_type, code) for code in sorted(self.for_type(resource_type)))
        return [b for b in bound if b is not None]

    def component_evaluator(self, expression: str) -> Evaluator:
        return self._compile(expression)

    def _compile(self, expression: str) -> Evaluator:
        """One evaluator per distinct expression: the dict-walking fast path when the expression
        is a plain path, fhirpathpy otherwise."""
        evaluator = self._compiled.get(expression)
        if evaluator is None:
            fast = compile_fast_path(expression) if self.fast_path else None
            evaluator = fast or compile_fhirpath(expression)
            self._compiled[expression] = evaluator
        return evaluator

    def __len__(self) -> int:
        return len(self._by_url)


def _read_definitions(path: Path) -> list[Mapping[str, Any]]:
    content = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(content, Mapping) and content.get("resourceType") == "Bundle":
        return [entry["resource"] for entry in content.get("entry", [])]
    if isinstance(content, Mapping):
        return [content]
    if not isinstance(content, list):
        raise ValueError(f"{path}: expected a list of SearchParameter objects")
    return content
