"""What an `Access` means for data: the clauses a search carries, whether a stored resource is
within reach, and the contributing-organisation tag every write records. Pure.

- Organisation: each version written by an authenticated contributor carries one `meta.tag`
  with system `ORG_TAG_SYSTEM` and code = the `org` claim (any client-sent tag of that system
  is replaced). Searches of an org-scoped caller carry `_tag=ORG_TAG_SYSTEM|org`.
- Patient compartment: a Patient by its id; any other type by its `patient` parameter, else its
  `subject` parameter when that can point at a Patient (a narrowing of R4's patient
  CompartmentDefinition: performer/author roles are left out). A type with neither is outside
  every patient's compartment.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from app.security.scopes import Access, Forbidden
from indexing.document import escape_token_part
from indexing.extract import ReferenceValue, values_of_nodes
from indexing.plan.plan import Clause, IdIn, Predicate, RefIn, SearchPlan, TokenMatch
from indexing.registry import SearchParamRegistry

ORG_TAG_SYSTEM = "https://example.org/fhir/CodeSystem/micdr-contributor"
_COMPARTMENT_PARAMS = ("patient", "subject")


def compartment_params(registry: SearchParamRegistry, type_: str) -> tuple[str, ...]:
    """The reference parameters that put a `type_` resource in a patient's compartment."""
    for code in _COMPARTMENT_PARAMS:
        param = registry.get(type_, code)
        if param is not None and param.type == "reference" and "Patient" in param.target:
            return (code,)
    return ()


def scope_clause(registry: SearchParamRegistry, access: Access, type_: str) -> Clause | None:
    """The clause that keeps a search of `type_` within `access` (None: no restriction).
    Raises Forbidden for a type no patient compartment holds."""
    if access.kind == "all" or access.value is None:
        return None
    if access.kind == "org":
        form = f"{escape_token_part(ORG_TAG_SYSTEM)}|{escape_token_part(access.value)}"
        return Clause((TokenMatch("_tag", form),))
    if type_ == "Patient":
        return Clause((IdIn((access.value,)),))
    params = compartment_params(registry, type_)
    if not params:
        raise Forbidden(f"{type_} resources are outside a patient's compartment")
    target = f"Patient/{access.value}"
    predicates: tuple[Predicate, ...] = tuple(RefIn(p, (target,)) for p in params)
    return Clause(predicates)


def scoped_plan(registry: SearchParamRegistry, plan: SearchPlan, access: Access) -> SearchPlan:
    """`plan` with the access clause ANDed in: paging and totals then count only what the
    caller may see. A several-type search is restricted the same way on every type (the
    caller of this function makes sure the types agree; see `search`)."""
    if access.kind == "all":
        return plan
    clause = scope_clause(registry, access, plan.types[0] if len(plan.types) == 1 else "")
    if clause is None:
        return plan
    return replace(plan, clauses=(*plan.clauses, clause))


def org_of(resource: dict[str, Any] | None) -> str | None:
    """The contributing organisation recorded on a stored resource."""
    meta = (resource or {}).get("meta")
    tags = meta.get("tag") if isinstance(meta, dict) else None
    for tag in tags if isinstance(tags, list) else ():
        if isinstance(tag, dict) and tag.get("system") == ORG_TAG_SYSTEM:
            code = tag.get("code")
            return str(code) if code is not None else None
    return None


def permits(
    registry: SearchParamRegistry, access: Access, type_: str, resource: dict[str, Any] | None
) -> bool:
    """Whether a stored resource (a version of it) is within `access`."""
    if access.kind == "all":
        return True
    if resource is None:
        return False
    if access.kind == "org":
        return org_of(resource) == access.value
    if type_ == "Patient":
        return resource.get("id") == access.value
    for code in compartment_params(registry, type_):
        bound = registry.bound(type_, code)
        if bound is None:
            continue
        for value in values_of_nodes("reference", bound.evaluate(resource)):
            if isinstance(value, ReferenceValue) and (value.type, value.id) == (
                "Patient",
                access.value,
            ):
                return True
    return False


def stamp_org(resource: dict[str, Any], org: str) -> None:
    """Record `org` as the contributing organisation, in place (replacing any sent tag)."""
    meta = resource.get("meta")
    if not isinstance(meta, dict):
        meta = resource["meta"] = {}
    tags = meta.get("tag")
    kept = [
        t
        for t in (tags if isinstance(tags, list) else [])
        if not (isinstance(t, dict) and t.get("system") == ORG_TAG_SYSTEM)
    ]
    meta["tag"] = [*kept, {"system": ORG_TAG_SYSTEM, "code": org}]
