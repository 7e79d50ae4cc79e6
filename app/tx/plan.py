"""Plan a write (one request, or a whole transaction Bundle) as data: `plan_transaction`.

Pure: the caller resolves conditional criteria and reads the current versions first (one round
trip per kind, see app/interactions/_write.py), then this decides every id, version, reference
and status, and returns the `Transaction` for the store plus one result per entry. Nothing here
depends on entry order beyond FHIR's processing phases (R13).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from app.fhir.meta import identifier_tokens, same_content, with_meta
from app.fhir.outcome import FhirError, Issue
from app.records import Claim, Operation, StoredResource, Transaction, Write
from app.tx.conditional import Criteria, match_ids, parse_criteria
from app.tx.entry import PHASE, Entry

Validate = Callable[[dict[str, Any]], None]
ApplyPatch = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass(frozen=True)
class Resolution:
    """What the store said before planning: matches per criteria key, current versions per ref."""

    matches: Mapping[tuple[str, str], list[str]]
    current: Mapping[str, StoredResource]


@dataclass(frozen=True)
class EntryResult:
    entry: Entry
    status: int
    ref: str | None = None
    version: int | None = None
    last_updated: str | None = None
    resource: dict[str, Any] | None = None


@dataclass(frozen=True)
class TransactionPlan:
    transaction: Transaction
    results: tuple[EntryResult, ...]


@dataclass
class _Target:
    entry: Entry
    ref: str | None = None
    create: bool = False
    claim_token: str | None = None
    existing: StoredResource | None = None
    result: EntryResult | None = None


class WriteRules(Protocol):
    """Rules that see a whole planned write (the IG's: app/ig/). `derived_refs` names the extra
    resources whose current versions `augment` needs (read in the same round trip as the
    others); `augment` may refuse the write (FhirError) or add writes to the same transaction."""

    def derived_refs(self, refs: set[tuple[str, str]]) -> set[tuple[str, str]]: ...

    def augment(
        self, writes: list[Write], current: Mapping[str, StoredResource], now: str
    ) -> list[Write]: ...


@dataclass(frozen=True)
class PlanOptions:
    now: str
    new_ids: Iterator[str]
    validate: Validate
    apply_patch: ApplyPatch
    allow_update_create: bool = True
    rules: WriteRules | None = None


def conditional_references(entries: list[Entry]) -> list[Criteria]:
    """Every `Type?query` reference inside the entries' resources (resolved before planning)."""
    found: list[Criteria] = []
    for entry in entries:
        for ref in _references(entry.resource):
            if "?" in ref and not ref.startswith(("urn:", "#", "http:", "https:")):
                type_, _, query = ref.partition("?")
                found.append(parse_criteria(type_, query))
    return found


def plan_transaction(
    entries: list[Entry], resolution: Resolution, opts: PlanOptions
) -> TransactionPlan:
    targets = [_target(e, resolution, opts) for e in sorted(entries, key=lambda e: PHASE[e.method])]
    _refuse_duplicates(targets)
    full_urls = {t.entry.full_url: t.ref for t in targets if t.entry.full_url and t.ref is not None}
    in_bundle = _in_bundle_identifiers(targets)
    writes: list[Write] = []
    claims: list[Claim] = []
    results: dict[int, EntryResult] = {}
    for target in targets:
        result, write = _decide(target, full_urls, in_bundle, resolution, opts)
        results[target.entry.index] = result
        if write is not None:
            writes.append(write)
            if target.claim_token is not None and target.create:
                claims.append(Claim(target.entry.type, target.claim_token, write.ref))
    if opts.rules is not None and writes:
        writes += opts.rules.augment(writes, resolution.current, opts.now)
    ordered = tuple(results[e.index] for e in entries)
    return TransactionPlan(Transaction(tuple(writes), tuple(claims), opts.now), ordered)


def _target(entry: Entry, resolution: Resolution, opts: PlanOptions) -> _Target:
    target = _Target(entry)
    if entry.method in ("GET", "HEAD"):
        return target
    if entry.method == "POST":
        if entry.if_none_exist is not None:
            ids = _matches(entry, entry.if_none_exist, resolution)
            if ids:
                target.ref = f"{entry.type}/{ids[0]}"
                target.existing = resolution.current.get(target.ref)
                return target
            target.claim_token = entry.if_none_exist.claim_token
        target.ref, target.create = f"{entry.type}/{next(opts.new_ids)}", True
        return target
    if entry.criteria is not None:
        ids = _matches(entry, entry.criteria, resolution)
        if not ids:
            if entry.method != "PUT":
                return target  # conditional delete / patch of nothing
            target.ref, target.create = f"{entry.type}/{next(opts.new_ids)}", True
            target.claim_token = entry.criteria.claim_token
            return target
        target.ref = f"{entry.type}/{ids[0]}"
    else:
        target.ref = f"{entry.type}/{entry.id}"
    target.existing = resolution.current.get(target.ref)
    return target


def _matches(entry: Entry, criteria: Criteria, resolution: Resolution) -> list[str]:
    ids = resolution.matches.get(criteria.key, [])
    if len(ids) > 1:
        raise FhirError.of(
            412,
            "multiple-matches",
            f"{criteria.type}?{criteria.query} matches {len(ids)} resources; "
            "it must match at most one",
            entry.at("request.url"),
        )
    return ids


def _refuse_duplicates(targets: list[_Target]) -> None:
    """The same resource, or the same fullUrl, twice in one transaction is an error (R14)."""
    seen: dict[object, Entry] = {}
    for t in targets:
        e = t.entry
        if e.method in ("GET", "HEAD"):
            continue
        keys: list[tuple[object, str]] = []
        if t.ref is not None:
            keys.append((("ref", t.ref), f"resource {t.ref}"))
        if e.full_url is not None:
            keys.append((("url", e.full_url), f"fullUrl {e.full_url}"))
        if e.criteria is not None:
            keys.append((("criteria", e.criteria.key), f"condition {e.type}?{e.criteria.query}"))
        for key, what in keys:
            if key in seen:
                message = (
                    f"{what} appears twice in this transaction "
                    f"(entries {seen[key].index} and {e.index})"
                )
                raise FhirError(400, (Issue("duplicate", message, (e.at("request"),)),))
            seen[key] = e


def _in_bundle_identifiers(targets: list[_Target]) -> dict[tuple[str, str], str]:
    """(type, identifier token) -> ref, for resources this transaction creates or updates, so a
    conditional reference can name a resource written in the same Bundle."""
    found: dict[tuple[str, str], str] = {}
    for t in targets:
        if t.ref is not None and t.entry.resource is not None:
            for token in identifier_tokens(t.entry.resource):
                found.setdefault((t.entry.type, token), t.ref)
    return found


def _decide(
    target: _Target,
    full_urls: Mapping[str, str],
    in_bundle: Mapping[tuple[str, str], str],
    resolution: Resolution,
    opts: PlanOptions,
) -> tuple[EntryResult, Write | None]:
    entry = target.entry
    current = target.existing
    if entry.method in ("GET", "HEAD"):
        return EntryResult(entry, 200), None
    if target.ref is None:  # conditional delete/patch that matched nothing
        if entry.method == "DELETE":
            return EntryResult(entry, 204), None
        raise FhirError.of(
            404, "not-found", f"{entry.url} matches no resource", entry.at("request.url")
        )
    type_, _, id_ = target.ref.partition("/")
    if entry.if_match is not None and (current is None or current.version != entry.if_match):
        have = "no version" if current is None else f"version {current.version}"
        raise FhirError.of(
            412,
            "conflict",
            f"If-Match wants version {entry.if_match} of {target.ref}, which has {have}",
            entry.at("request.ifMatch"),
        )
    live = current is not None and not current.deleted
    version = (current.version if current is not None else 0) + 1

    if entry.method == "DELETE":
        if current is None:
            return EntryResult(entry, 404, target.ref), None
        if not live:  # already deleted: nothing new; the answer names the deleted version
            return EntryResult(entry, 204, target.ref, current.version, current.last_updated), None
        return (
            EntryResult(entry, 204, target.ref, version, opts.now),
            Write(type_, id_, version, "delete", None),
        )

    if entry.method == "POST" and not target.create:  # If-None-Exist matched
        assert current is not None
        return EntryResult(
            entry, 200, target.ref, current.version, current.last_updated, current.resource
        ), None

    if entry.method == "PATCH":
        if current is None or current.resource is None:
            status = 410 if current is not None else 404
            raise FhirError.of(
                status,
                "not-found" if status == 404 else "deleted",
                f"{target.ref} {'is deleted' if status == 410 else 'does not exist'}",
                entry.at("request.url"),
            )
        body = opts.apply_patch(current.resource, entry.patch)
        if body.get("id") != id_ or body.get("resourceType") != type_:
            raise FhirError.of(
                400, "invalid", "a patch may not change id or resourceType", entry.at("resource")
            )
    else:
        assert entry.resource is not None
        body = entry.resource
        if entry.method == "PUT":
            _check_put_id(entry, body, id_, target.create)
            if current is None and not target.create and not opts.allow_update_create:
                raise FhirError.of(
                    405,
                    "not-supported",
                    f"{target.ref} does not exist and this server does not create on update "
                    "(MICDR_ALLOW_UPDATE_CREATE=0)",
                    entry.at("request.url"),
                )

    body = _rewrite_references(body, entry, full_urls, in_bundle, resolution)
    _validate(entry, body, opts.validate)
    if (
        live
        and current is not None
        and current.resource is not None
        and same_content(current.resource, {**body, "id": id_})
    ):
        # Identical content: a no-op, no new version (documented in the CapabilityStatement).
        return EntryResult(
            entry, 200, target.ref, current.version, current.last_updated, current.resource
        ), None
    stored = with_meta(body, id_, version, opts.now)
    op: Operation = "create" if current is None else "update"
    status = 201 if not live else 200
    return (
        EntryResult(entry, status, target.ref, version, opts.now, stored),
        Write(type_, id_, version, op, stored, identifier_tokens(stored)),
    )


def _check_put_id(entry: Entry, body: dict[str, Any], id_: str, created: bool) -> None:
    if entry.criteria is not None:
        if body.get("id") is not None and not created and body["id"] != id_:
            raise FhirError.of(
                400,
                "invalid",
                f"the resource id {body['id']!r} differs from the matched {id_!r}",
                entry.at("resource.id"),
            )
        return
    if body.get("id") != id_:
        raise FhirError.of(
            400,
            "invalid",
            f"the resource id {body.get('id')!r} must equal the id in the URL ({id_!r})",
            entry.at("resource.id"),
        )


def _validate(entry: Entry, body: dict[str, Any], validate: Validate) -> None:
    try:
        validate(body)
    except FhirError as err:
        if entry.index < 0:
            raise
        prefix = entry.at("resource")
        issues = tuple(
            Issue(
                i.code,
                i.diagnostics,
                tuple(
                    prefix + e[len(entry.type) :] if e.startswith(entry.type) else f"{prefix}.{e}"
                    for e in i.expression
                )
                or (prefix,),
                i.severity,
            )
            for i in err.issues
        )
        raise FhirError(err.status, issues) from None


def _references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                yield value
            else:
                yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)


def _rewrite_references(
    body: dict[str, Any],
    entry: Entry,
    full_urls: Mapping[str, str],
    in_bundle: Mapping[tuple[str, str], str],
    resolution: Resolution,
) -> dict[str, Any]:
    """A copy of `body` with fullUrl and conditional references replaced by `Type/id` (R18)."""

    def resolve(ref: str) -> str:
        if ref in full_urls:
            return full_urls[ref]
        if ref.startswith("urn:uuid:") or ref.startswith("urn:oid:"):
            raise FhirError.of(
                400,
                "not-found",
                f"reference {ref} matches no fullUrl in this Bundle",
                entry.at("resource"),
            )
        if "?" in ref and not ref.startswith(("#", "http:", "https:")):
            return _resolve_conditional(ref, entry, in_bundle, resolution)
        return ref

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: (resolve(v) if k == "reference" and isinstance(v, str) else walk(v))
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    result: dict[str, Any] = walk(body)
    return result


def _resolve_conditional(
    ref: str, entry: Entry, in_bundle: Mapping[tuple[str, str], str], resolution: Resolution
) -> str:
    type_, _, query = ref.partition("?")
    criteria = parse_criteria(type_, query)
    ids = set(resolution.matches.get(criteria.key, []))
    local = {
        in_bundle[(type_, token)].partition("/")[2]
        for tokens in criteria.identifier_sets
        for token in tokens
        if (type_, token) in in_bundle
    }
    if criteria.store_only and not criteria.id_sets:
        ids |= local
    if len(ids) != 1:
        problem = "matches no resource" if not ids else f"matches {len(ids)} resources"
        raise FhirError.of(
            412 if ids else 404,
            "not-found" if not ids else "multiple-matches",
            f"conditional reference {ref} {problem}; it must match exactly one",
            entry.at("resource"),
        )
    return f"{type_}/{next(iter(ids))}"


__all__ = [
    "EntryResult",
    "PlanOptions",
    "Resolution",
    "TransactionPlan",
    "WriteRules",
    "conditional_references",
    "match_ids",
    "plan_transaction",
]
