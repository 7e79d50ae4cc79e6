"""A human-readable rendering of a `SearchPlan`, one line per clause (for debugging, logs and
docs; in the spirit of Blaze's query-plan rendering). Not a parser input: the format may change.

    DiagnosticReport?patient.identifier=http://hcn|55&issued=ge2024-01 renders as

    search DiagnosticReport
      where patient -> Patient (identifier = http://hcn|55)
        and issued ge [2024-01-01T00:00:00.000Z, 2024-01-31T23:59:59.999Z]
      count 20
"""

from __future__ import annotations

from indexing.plan.plan import (
    Chain,
    Clause,
    CompositeMatch,
    DateMatch,
    Has,
    IdIn,
    Include,
    Missing,
    NumberMatch,
    Predicate,
    RefIn,
    RefMatch,
    SearchPlan,
    StringMatch,
    TokenMatch,
    UriMatch,
)

__all__ = ["explain", "explain_clause", "explain_predicate"]


def explain(plan: SearchPlan) -> str:
    """The plan as text: the types, then each clause on its own line, then the result
    parameters that differ from their defaults."""
    lines = [f"search {', '.join(plan.types) or 'all types'}"]
    for index, clause in enumerate(plan.clauses):
        lines.append(f"  {'where' if index == 0 else '  and'} {explain_clause(clause)}")
    if plan.sort:
        keys = ", ".join(("-" if key.descending else "") + key.param for key in plan.sort)
        lines.append(f"  sort {keys}")
    lines.extend(f"  {_include(include)}" for include in plan.includes)
    lines.append(f"  count {plan.count}")
    if plan.total != "none":
        lines.append(f"  total {plan.total}")
    if plan.summary is not None:
        lines.append(f"  summary {plan.summary}")
    if plan.elements:
        lines.append(f"  elements {', '.join(plan.elements)}")
    return "\n".join(lines)


def explain_clause(clause: Clause) -> str:
    """The clause's predicates joined by OR."""
    return " OR ".join(explain_predicate(predicate) for predicate in clause.any_of)


def explain_predicate(predicate: Predicate) -> str:
    if isinstance(predicate, StringMatch):
        return f"{predicate.param} {predicate.mode} {predicate.value!r}"
    if isinstance(predicate, TokenMatch):
        if predicate.text:
            return f"{predicate.param}:text starts {predicate.form!r}"
        name = f"{predicate.param}:of-type" if predicate.of_type else predicate.param
        return f"{name} {'!=' if predicate.negate else '='} {predicate.form}"
    if isinstance(predicate, DateMatch):
        return f"{predicate.param} {predicate.prefix} [{predicate.gte}, {predicate.lte}]"
    if isinstance(predicate, NumberMatch):
        unit = ""
        if predicate.quantity and (predicate.system or predicate.code):
            unit = f" {predicate.system or '*'}|{predicate.code or '*'}"
        return (
            f"{predicate.param} {predicate.prefix} {predicate.value:g}"
            f" [{predicate.gte:g}, {predicate.lte:g}]{unit}"
        )
    if isinstance(predicate, RefMatch):
        if predicate.identifier:
            return f"{predicate.param}:identifier = {predicate.ref}"
        return f"{predicate.param} -> {predicate.ref}"
    if isinstance(predicate, RefIn):
        return f"{predicate.param} in ({', '.join(predicate.refs)})"
    if isinstance(predicate, IdIn):
        return f"_id {'not in' if predicate.negate else 'in'} ({', '.join(predicate.ids)})"
    if isinstance(predicate, UriMatch):
        return f"{predicate.param} {predicate.mode} {predicate.value}"
    if isinstance(predicate, Missing):
        return f"{predicate.param} {'missing' if predicate.missing else 'present'}"
    if isinstance(predicate, CompositeMatch):
        parts = " AND ".join(explain_predicate(part) for part in predicate.parts)
        return f"{predicate.param} {{{parts}}}"
    if isinstance(predicate, Chain):
        targets = "|".join(predicate.targets)
        return f"{predicate.param} -> {targets} ({explain_clause(predicate.inner)})"
    if isinstance(predicate, Has):
        return f"has {predicate.source}.{predicate.param} ({explain_clause(predicate.inner)})"
    raise TypeError(f"not a search predicate: {predicate!r}")


def _include(include: Include) -> str:
    name = "revinclude" if include.reverse else "include"
    target = f":{include.target}" if include.target else ""
    iterate = " (iterate)" if include.iterate else ""
    return f"{name} {include.source}:{include.param}{target}{iterate}"
