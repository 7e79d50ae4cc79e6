"""Search-parameter values of one resource: evaluate each parameter, convert results to values.

Pure: `extract_values(registry, resource)` reads nothing but its arguments. Conversion follows
the FHIR type of each FHIRPath result (R4 search.html, "Search Parameter Types"); the mapping per
type is documented in `docs/implementation/index-values.md`.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any

from indexing._fhirpath import Node, is_subtype, reference_parts
from indexing._values import (
    CompositeValue,
    DateValue,
    NumberValue,
    QuantityValue,
    ReferenceValue,
    StringValue,
    TokenValue,
    UriValue,
    Value,
)
from indexing.normalize import (
    MAX_INSTANT,
    MIN_INSTANT,
    date_interval,
    normalize_string,
    number_interval,
    parse_decimal,
)
from indexing.registry import SearchParam, SearchParamRegistry

__all__ = [
    "CompositeValue",
    "DateValue",
    "NumberValue",
    "QuantityValue",
    "ReferenceValue",
    "StringValue",
    "TokenValue",
    "UriValue",
    "Value",
    "extract_values",
    "values_of_nodes",
]

_log = logging.getLogger(__name__)

_NAME_PARTS = ("text", "family", "given", "prefix", "suffix")
_ADDRESS_PARTS = ("text", "line", "city", "district", "state", "postalCode", "country")
_CURRENCY_SYSTEM = "urn:iso:std:iso:4217"


def extract_values(
    registry: SearchParamRegistry, resource: Mapping[str, Any]
) -> dict[str, list[Value]]:
    """Values of every parameter of the resource's type that selects something, by code.

    A parameter whose evaluation fails on this resource (a FHIRPath error on malformed data) is
    left out rather than failing the whole resource: the resource stays stored and readable, it is
    only not findable by that parameter."""
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        raise ValueError("resource has no resourceType")
    extracted: dict[str, list[Value]] = {}
    for bound in registry.bound_for_type(resource_type):
        param = bound.param
        if param.type == "special" or bound.selects_nothing_in(resource):
            continue
        values: list[Value]
        try:
            nodes = bound.evaluate(resource)
            if param.type == "composite":
                values = list(_composite_values(registry, param, nodes))
            else:
                values = values_of_nodes(param.type, nodes)
        except Exception as error:  # one bad parameter must not block the others
            _log.warning(
                "search parameter %s failed on %s/%s: %s",
                param.code,
                resource_type,
                resource.get("id"),
                error,
            )
            continue
        if values:
            extracted[param.code] = list(dict.fromkeys(values))
    return extracted


def values_of_nodes(param_type: str, nodes: list[Node]) -> list[Value]:
    """Convert FHIRPath results to values of one parameter type; unconvertible results are
    dropped (an Attachment under a token parameter, a date that does not parse, ...)."""
    convert = _CONVERTERS.get(param_type)
    if convert is None:
        return []
    values: list[Value] = []
    for node in nodes:
        values.extend(convert(node))
    return values


# -- string ---------------------------------------------------------------------------------


def _string_values(node: Node) -> Iterator[Value]:
    data = node.data
    if isinstance(data, str):
        yield from _string(data)
    elif isinstance(data, Mapping):
        parts = _ADDRESS_PARTS if is_subtype(node.type, "Address") else _NAME_PARTS
        for part in parts:
            for text in _as_list(data.get(part)):
                if isinstance(text, str):
                    yield from _string(text)


def _string(text: str) -> Iterator[StringValue]:
    norm = normalize_string(text)
    if norm:
        yield StringValue(norm=norm, exact=text)


# -- token ----------------------------------------------------------------------------------


def _token_values(node: Node) -> Iterator[Value]:
    data = node.data
    if isinstance(data, bool):
        yield TokenValue(system=None, code="true" if data else "false")
    elif isinstance(data, str):
        if data:
            yield TokenValue(system=None, code=data)
    elif isinstance(data, Mapping):
        if node.type == "CodeableConcept" or "coding" in data:
            yield from _codeable_concept(data)
        elif node.type == "Identifier":
            yield _identifier(data)
        elif node.type == "ContactPoint":
            # R4 token on ContactPoint: the value is the code, `use` stands in for the system.
            if isinstance(data.get("value"), str):
                yield TokenValue(system=data.get("use"), code=data["value"])
        elif node.type == "Coding" or "code" in data or "system" in data:
            yield _coding(data)


def _coding(coding: Mapping[str, Any]) -> TokenValue:
    return TokenValue(
        system=_str_or_none(coding.get("system")),
        code=_str_or_none(coding.get("code")),
        text=_str_or_none(coding.get("display")),
    )


def _codeable_concept(concept: Mapping[str, Any]) -> Iterator[TokenValue]:
    for coding in _as_list(concept.get("coding")):
        if isinstance(coding, Mapping):
            yield _coding(coding)
    text = _str_or_none(concept.get("text"))
    if text:
        yield TokenValue(system=None, code=None, text=text)


def _identifier(identifier: Mapping[str, Any]) -> TokenValue:
    identifier_type = identifier.get("type")
    type_codings: tuple[tuple[str | None, str], ...] = ()
    type_text = None
    if isinstance(identifier_type, Mapping):
        type_codings = tuple(
            (_str_or_none(c.get("system")), c["code"])
            for c in _as_list(identifier_type.get("coding"))
            if isinstance(c, Mapping) and isinstance(c.get("code"), str)
        )
        type_text = _str_or_none(identifier_type.get("text"))
    return TokenValue(
        system=_str_or_none(identifier.get("system")),
        code=_str_or_none(identifier.get("value")),
        text=type_text,
        type_codings=type_codings,
    )


# -- date -----------------------------------------------------------------------------------


def _date_values(node: Node) -> Iterator[Value]:
    data = node.data
    if isinstance(data, str):
        yield from _date(data)
    elif isinstance(data, Mapping):
        if is_subtype(node.type, "Timing") or "event" in data or "repeat" in data:
            for event in _as_list(data.get("event")):
                if isinstance(event, str):
                    yield from _date(event)
            repeat = data.get("repeat")
            if isinstance(repeat, Mapping) and isinstance(repeat.get("boundsPeriod"), Mapping):
                yield from _period(repeat["boundsPeriod"])
        elif "start" in data or "end" in data:
            yield from _period(data)


def _date(text: str) -> Iterator[DateValue]:
    try:
        low, high = date_interval(text)
    except ValueError:
        return
    yield DateValue(low, high)


def _period(period: Mapping[str, Any]) -> Iterator[DateValue]:
    """An open end reaches to the beginning or end of time (R4 §2.24.0.11 Period)."""
    start, end = period.get("start"), period.get("end")
    if start is None and end is None:
        return
    try:
        low = date_interval(start)[0] if isinstance(start, str) else MIN_INSTANT
        high = date_interval(end)[1] if isinstance(end, str) else MAX_INSTANT
    except ValueError:
        return
    yield DateValue(low, high)


# -- number and quantity --------------------------------------------------------------------


def _number_values(node: Node) -> Iterator[Value]:
    number = _decimal_or_none(node.data)
    if number is not None:
        low, high = number_interval(number)
        yield NumberValue(number, low, high)


def _quantity_values(node: Node) -> Iterator[Value]:
    data = node.data
    if not isinstance(data, Mapping):
        return
    number = _decimal_or_none(data.get("value"))
    if number is None:
        return
    low, high = number_interval(number)
    if node.type == "Money" or "currency" in data:
        currency = _str_or_none(data.get("currency"))
        yield QuantityValue(number, low, high, _CURRENCY_SYSTEM, currency, currency)
        return
    yield QuantityValue(
        value=number,
        low=low,
        high=high,
        system=_str_or_none(data.get("system")),
        code=_str_or_none(data.get("code")),
        unit=_str_or_none(data.get("unit")),
    )


def _decimal_or_none(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        return None
    try:
        return parse_decimal(value)
    except ValueError:
        return None


# -- reference and uri ----------------------------------------------------------------------


def _reference_values(node: Node) -> Iterator[Value]:
    data = node.data
    if isinstance(data, str):
        yield _canonical(data)
    elif isinstance(data, Mapping):
        reference = _str_or_none(data.get("reference"))
        identifier = data.get("identifier")
        identifier_token = _identifier(identifier) if isinstance(identifier, Mapping) else None
        declared_type = _str_or_none(data.get("type"))
        if reference:
            yield _literal_reference(reference, declared_type, identifier_token)
        elif identifier_token is not None:
            yield ReferenceValue(ref=None, type=declared_type, identifier=identifier_token)


def _literal_reference(
    reference: str, declared_type: str | None, identifier: TokenValue | None
) -> ReferenceValue:
    parts = reference_parts(reference)
    if parts is None:
        # `#contained`, `urn:uuid:...`, or an absolute URL that is not a FHIR RESTful one.
        absolute = None if reference.startswith("#") else reference
        return ReferenceValue(
            ref=reference, type=declared_type, url=absolute, identifier=identifier
        )
    resource_type, resource_id, base, version = parts
    return ReferenceValue(
        ref=f"{resource_type}/{resource_id}",
        type=resource_type,
        id=resource_id,
        url=reference if base else None,
        version=version,
        identifier=identifier,
    )


def _canonical(canonical: str) -> ReferenceValue:
    """A canonical reference (R4 §2.1.0.5): matched by URL, `|version` kept apart."""
    url, _, version = canonical.partition("|")
    return ReferenceValue(ref=url, url=url, version=version or None)


def _uri_values(node: Node) -> Iterator[Value]:
    if isinstance(node.data, str) and node.data:
        yield UriValue(node.data)


# -- composite ------------------------------------------------------------------------------


def _composite_values(
    registry: SearchParamRegistry, param: SearchParam, nodes: list[Node]
) -> Iterator[CompositeValue]:
    """Every combination of component values found under the same node: for
    `Observation.component` each component is combined only with its own code and value."""
    parts: list[tuple[str, str, Callable[[Any], list[Node]]]] = []
    for component in param.components:
        definition = registry.by_url(component.definition)
        if definition is None:
            return  # a component we cannot type: the composite cannot be indexed
        parts.append(
            (definition.code, definition.type, registry.component_evaluator(component.expression))
        )
    for node in nodes:
        per_component = [
            [
                (code, value)
                for value in dict.fromkeys(values_of_nodes(kind, evaluate(node)))
                if not (isinstance(value, TokenValue) and value.code is None)  # text: no `$` match
            ]
            for code, kind, evaluate in parts
        ]
        for combination in itertools.product(*per_component):
            yield CompositeValue(tuple(combination))


# -- helpers --------------------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


_CONVERTERS: dict[str, Callable[[Node], Iterator[Value]]] = {
    "string": _string_values,
    "token": _token_values,
    "date": _date_values,
    "number": _number_values,
    "quantity": _quantity_values,
    "reference": _reference_values,
    "uri": _uri_values,
}
