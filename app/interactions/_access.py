"""The scope checks every interaction makes, over `services.principal` (docs/security.md).

403 when the token's scopes do not allow the interaction on the type at all; 404 when they do
but the one resource asked for lies outside the caller's organisation or patient compartment
(its existence is not revealed); searches carry the restriction as a plan clause, so paging and
totals count only what the caller may see."""

from __future__ import annotations

from collections.abc import Sequence

from app.fhir.outcome import FhirError
from app.interactions.context import Services
from app.records import StoredResource
from app.security.access import org_of, permits, scoped_plan, stamp_org
from app.security.scopes import ALL, Access, Forbidden, access_for
from app.subscriptions.subscription import with_owner
from app.tx.entry import Entry
from app.tx.plan import Resolution, TransactionPlan
from indexing.plan.plan import SearchPlan

_ENTRY_OPS = {"POST": "c", "PUT": "u", "PATCH": "u", "DELETE": "d"}


def forbidden(detail: str) -> FhirError:
    return FhirError.of(403, "forbidden", detail)


def require(services: Services, type_: str, op: str) -> Access:
    try:
        return access_for(services.principal, type_, op)
    except Forbidden as err:
        raise forbidden(err.detail) from None


def visible(services: Services, access: Access, stored: StoredResource) -> bool:
    if access.kind == "all":
        return True
    if stored.deleted or stored.resource is None:
        return False
    return permits(services.registry, access, stored.type, stored.resource)


def readable(services: Services, stored: Sequence[StoredResource]) -> list[StoredResource]:
    """The resources the caller may read (included resources, hydrated matches)."""
    out: list[StoredResource] = []
    for s in stored:
        try:
            access = access_for(services.principal, s.type, "r")
        except Forbidden:
            continue
        if visible(services, access, s):
            out.append(s)
    return out


def scope_search(services: Services, plan: SearchPlan) -> SearchPlan:
    """`plan` restricted to what the caller may search."""
    if services.principal.open:
        return plan
    if not plan.types:
        raise forbidden("a system-wide search needs _type naming the types to search")
    accesses = {require(services, t, "s") for t in plan.types}
    if len(accesses) > 1:
        raise forbidden("the token reaches these types differently; search them one by one")
    access = accesses.pop()
    if access.kind == "patient" and len(plan.types) > 1:
        raise forbidden("in a patient context, search one type at a time")
    try:
        return scoped_plan(services.registry, plan, access)
    except Forbidden as err:
        raise forbidden(err.detail) from None


def require_unrestricted(services: Services, type_: str | None) -> None:
    """Type- and system-level history cannot be filtered by organisation or compartment."""
    if services.principal.open:
        return
    if type_ is None or require(services, type_, "r") != ALL:
        raise forbidden("history across resources needs user-level read scopes")


def guard_entries(services: Services, entries: Sequence[Entry]) -> None:
    """Before a write is resolved: every entry's interaction is allowed, and sent resources
    carry the caller's organisation (so a resubmission of equal content stays a no-op)."""
    principal = services.principal
    for entry in entries:
        op = _ENTRY_OPS.get(entry.method)
        if op is None:
            continue
        require(services, entry.type, op)
        if principal.org and isinstance(entry.resource, dict) and not principal.open:
            stamp_org(entry.resource, principal.org)


def guard_writes(services: Services, plan: TransactionPlan, resolution: Resolution) -> None:
    """After planning: a contributor changes only resources its organisation contributed, and
    every version written records its organisation (a Subscription also its owner). Writes
    the server derives (the IG's index DocumentReferences) keep the organisation of the
    version they replace."""
    principal = services.principal
    for write in plan.transaction.writes:
        if write.type == "Subscription" and write.resource is not None:
            with_owner(write.resource, principal.to_json())  # whose scopes delivery applies
    if principal.open and not principal.internal:
        return
    own = {r.ref for r in plan.results if r.ref is not None}
    for write in plan.transaction.writes:
        current = resolution.current.get(write.ref)
        owner = org_of(current.resource) if current is not None else None
        taken = current is not None and not (current.deleted and owner is None)
        if write.ref in own and taken and owner != principal.org:
            raise forbidden(
                f"{write.ref} was contributed by another organisation; only it may change it"
            )
        if write.resource is not None:
            org = owner if write.ref not in own and owner else principal.org
            if org:
                stamp_org(write.resource, org)
