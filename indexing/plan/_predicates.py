"""Leaf predicates: one search parameter (no chain, no `_has`) with one modifier and its raw
value, per parameter type (R4 search.html §3.1.1.4 "Search Parameter Types" and §3.1.1.5
modifiers). The value arrives still escaped; comma-separated alternatives become one predicate
each (a `Clause` ORs them)."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal

from indexing._fhirpath import RESOURCE_TYPES, reference_parts, split_union
from indexing.document import escape_token_part
from indexing.normalize import date_interval, normalize_string, number_interval
from indexing.plan._syntax import (
    Unsupported,
    invalid,
    is_number,
    repair_exponent,
    repair_zone,
    split_prefix,
    split_unescaped,
    unescape,
)
from indexing.plan.plan import (
    CompositeMatch,
    DateMatch,
    IdIn,
    Missing,
    NumberMatch,
    Predicate,
    RefMatch,
    StringMatch,
    TokenMatch,
    UriMatch,
    UriMode,
)
from indexing.registry import SearchParam, SearchParamRegistry

__all__ = ["leaf_predicates", "reference_targets", "token_form"]

# Modifiers that need a terminology server (ValueSet expansion, subsumption): not offered.
_TERMINOLOGY_MODIFIERS = frozenset({"in", "not-in", "above", "below"})
_RESOLVE_IS = re.compile(r"resolve\(\)\s+is\s+([A-Z][A-Za-z]+)")
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def reference_targets(param: SearchParam, resource_type: str | None) -> tuple[str, ...]:
    """The types a reference parameter can point at, as its expression narrows them: R4's
    `clinical-patient` lists targets Patient and Group but reads `subject.where(resolve() is
    Patient)`, so `patient.identifier` chains to Patient alone. Order follows `param.target`."""
    expression = param.expression_for(resource_type) if resource_type else param.expression
    branches = split_union(expression) if expression else []
    narrowed: set[str] = set()
    for branch in branches:
        found = _RESOLVE_IS.findall(branch)
        if not found:
            return param.target
        narrowed.update(found)
    if not narrowed:
        return param.target
    kept = tuple(t for t in param.target if t in narrowed)
    return kept or tuple(sorted(narrowed))


def leaf_predicates(
    registry: SearchParamRegistry,
    resource_type: str | None,
    param: SearchParam,
    modifier: str | None,
    raw: str,
    where: str,
) -> list[Predicate]:
    """The OR-alternatives of `param[:modifier]=raw` on `resource_type` (None: several types)."""
    values = split_unescaped(raw, ",")
    if any(value == "" for value in values):
        raise invalid(where, "empty value (a search value may not be empty)")
    if modifier == "missing":
        return [_missing(param.code, value, where) for value in values]
    if param.code == "_id":
        if modifier is not None:
            raise Unsupported(f"{where}: modifier :{modifier} is not supported on _id")
        return [IdIn(tuple(unescape(value) for value in values))]
    build = _builder(registry, resource_type, param, modifier, where)
    return [predicate for value in values for predicate in build(value)]


def _missing(code: str, value: str, where: str) -> Missing:
    if value not in ("true", "false"):
        raise invalid(where, f":missing takes true or false, not {value!r}")
    return Missing(code, value == "true")


Builder = Callable[[str], list[Predicate]]


def _builder(
    registry: SearchParamRegistry,
    resource_type: str | None,
    param: SearchParam,
    modifier: str | None,
    where: str,
) -> Builder:
    code, kind = param.code, param.type
    if kind == "string" and modifier in (None, "exact", "contains"):
        return lambda value: [_string(code, modifier, value, where)]
    if kind == "token":
        if modifier in _TERMINOLOGY_MODIFIERS:
            raise Unsupported(f"{where}: :{modifier} needs a terminology server, not offered")
        if modifier in (None, "not", "text", "of-type"):
            return lambda value: [_token(code, modifier, value, where)]
    if kind == "date" and modifier is None:
        return lambda value: [_date(code, value, where)]
    if kind in ("number", "quantity") and modifier is None:
        return lambda value: [_number(code, value, where, quantity=kind == "quantity")]
    if kind == "uri" and modifier in (None, "above", "below"):
        mode: UriMode = "exact" if modifier is None else modifier  # type: ignore[assignment]
        return lambda value: [UriMatch(code, unescape(value), mode)]
    if kind == "reference":
        targets = reference_targets(param, resource_type)
        type_modifier = _type_modifier(modifier, targets, where)
        if modifier is None or type_modifier is not None:
            return lambda value: _reference(code, targets, type_modifier, value, where)
        if modifier == "identifier":
            return lambda value: [RefMatch(code, token_form(value, where), identifier=True)]
    if kind == "composite" and modifier is None:
        parts = _composite_parts(registry, param, where)
        return lambda value: [_composite(registry, resource_type, code, parts, value, where)]
    if kind == "special":
        raise Unsupported(f"{where}: special parameter {code!r} is not supported")
    shown = f" :{modifier}" if modifier else ""
    raise Unsupported(f"{where}: modifier{shown} is not supported on {kind} parameter {code!r}")


# -- string -------------------------------------------------------------------------------


def _string(code: str, modifier: str | None, value: str, where: str) -> StringMatch:
    text = unescape(value)
    if modifier == "exact":
        return StringMatch(code, text, "exact")
    normalised = normalize_string(text)
    if not normalised:
        raise invalid(where, f"{value!r} has no characters to search for")
    return StringMatch(code, normalised, "contains" if modifier == "contains" else "starts")


# -- token --------------------------------------------------------------------------------


def token_form(value: str, where: str) -> str:
    """The query form of a token value, built as `indexing.document.token_forms` builds the
    stored forms: `code`, `system|code`, `system|`, `|code`, parts escaped the same way."""
    parts = [unescape(part) for part in split_unescaped(value, "|")]
    if len(parts) == 1:
        return escape_token_part(parts[0])
    if len(parts) != 2 or parts == ["", ""]:
        raise invalid(where, f"{value!r} is not a token (code, system|code, system| or |code)")
    system, code = parts
    if not code:
        return f"{escape_token_part(system)}|"
    return (
        f"{escape_token_part(system)}|{escape_token_part(code)}"
        if system
        else f"|{escape_token_part(code)}"
    )


def _token(code: str, modifier: str | None, value: str, where: str) -> TokenMatch:
    if modifier == "text":
        text = normalize_string(unescape(value))
        if not text:
            raise invalid(where, f"{value!r} has no characters to search for")
        return TokenMatch(code, text, text=True)
    if modifier == "of-type":
        parts = [unescape(part) for part in split_unescaped(value, "|")]
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise invalid(where, f":of-type takes type-system|type-code|value, not {value!r}")
        return TokenMatch(code, "|".join(escape_token_part(p) for p in parts), of_type=True)
    return TokenMatch(code, token_form(value, where), negate=modifier == "not")


# -- date, number, quantity ---------------------------------------------------------------


def _date(code: str, value: str, where: str) -> DateMatch:
    prefix, text = split_prefix(where, unescape(value))
    try:
        low, high = date_interval(repair_zone(text))
    except ValueError as error:
        raise invalid(where, str(error)) from None
    return DateMatch(code, prefix, low, high)


def _number(code: str, value: str, where: str, *, quantity: bool) -> NumberMatch:
    parts = split_unescaped(value, "|")
    if len(parts) not in ((1, 3) if quantity else (1,)):
        expected = "[prefix]number|system|code" if quantity else "[prefix]number"
        raise invalid(where, f"{value!r} is not {expected}")
    prefix, text = split_prefix(where, repair_exponent(unescape(parts[0])))
    if not is_number(text):
        raise invalid(where, f"{text!r} is not a number")
    # Exponent notation keeps the precision of its significant digits: `1.00e2` is 3 figures,
    # [99.5, 100.5], exactly as the index reads a stored value (`number_interval`).
    number = Decimal(text)
    low, high = number_interval(number)
    system = (unescape(parts[1]) or None) if len(parts) == 3 else None
    unit = (unescape(parts[2]) or None) if len(parts) == 3 else None
    return NumberMatch(
        code, prefix, float(number), float(low), float(high), system, unit, quantity=quantity
    )


# -- reference ----------------------------------------------------------------------------


def _type_modifier(modifier: str | None, targets: tuple[str, ...], where: str) -> str | None:
    if modifier is None or modifier not in RESOURCE_TYPES:
        return None
    if targets and modifier not in targets:
        raise invalid(where, f"{modifier} is not a target of this parameter ({', '.join(targets)})")
    return modifier


def _reference(
    code: str, targets: tuple[str, ...], type_modifier: str | None, value: str, where: str
) -> list[Predicate]:
    """`Type/id`, `id` (typed by `:Type` or by the targets), an absolute URL (matched as
    written, and as `Type/id` when it is a RESTful URL: the index keeps both), or a canonical
    `url|version` (the compilers compare the url and the version apart)."""
    pieces = [unescape(piece) for piece in split_unescaped(value, "|")]
    if len(pieces) > 1:  # a versioned canonical, `url|version` (R4 references.html#canonical)
        if len(pieces) != 2 or ":" not in pieces[0] or not pieces[1]:
            raise invalid(where, f"{value!r} is not a reference or a canonical url|version")
        return [RefMatch(code, f"{pieces[0]}|{pieces[1]}", type=type_modifier)]
    text = unescape(value)
    parts = reference_parts(text)
    if parts is not None:
        ref_type, ref_id, base, _version = parts  # the index keeps references unversioned
        if type_modifier is not None and ref_type != type_modifier:
            raise invalid(where, f"{text!r} is not a {type_modifier} reference")
        local = RefMatch(code, f"{ref_type}/{ref_id}", type=ref_type)
        return [RefMatch(code, text, type=ref_type), local] if base else [local]
    if ":" in text:  # absolute URL, urn:uuid:, urn:oid: or canonical
        return [RefMatch(code, text, type=type_modifier)]
    if "/" in text or not _ID.fullmatch(text):
        raise invalid(where, f"{text!r} is not a reference (Type/id, id or an absolute URL)")
    if type_modifier is not None:
        return [RefMatch(code, f"{type_modifier}/{text}", type=type_modifier)]
    if targets:
        return [RefMatch(code, f"{target}/{text}", type=target) for target in targets]
    return [RefMatch(code, text)]


# -- composite ----------------------------------------------------------------------------


def _composite_parts(
    registry: SearchParamRegistry, param: SearchParam, where: str
) -> list[SearchParam]:
    parts = []
    for component in param.components:
        definition = registry.by_url(component.definition)
        if definition is None or definition.type in ("composite", "special"):
            raise Unsupported(f"{where}: component {component.definition} is not known")
        parts.append(definition)
    return parts


def _composite(
    registry: SearchParamRegistry,
    resource_type: str | None,
    code: str,
    parts: list[SearchParam],
    value: str,
    where: str,
) -> CompositeMatch:
    """`code$value`: each `$`-part is searched as its component parameter (by that parameter's
    code, which is how `indexing.document.value_document` names the parts)."""
    pieces = split_unescaped(value, "$")
    if len(pieces) != len(parts) or any(piece == "" for piece in pieces):
        raise invalid(where, f"{value!r} needs {len(parts)} `$`-separated parts")
    predicates: list[Predicate] = []
    for component, piece in zip(parts, pieces, strict=True):
        built = _builder(registry, resource_type, component, None, where)(piece)
        if len(built) != 1:
            raise Unsupported(
                f"{where}: component {component.code!r} value {piece!r} is ambiguous; give Type/id"
            )
        predicates.append(built[0])
    return CompositeMatch(code, tuple(predicates))
