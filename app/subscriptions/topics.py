"""Subscription topics: miCDR's built-in ones and run-time ones defined as R4 `Basic` resources
(the cross-version SubscriptionTopic profile of the Backport IG, R4).

A topic says which committed changes are events (`resourceTrigger`: the resource type, the
interactions, query criteria on the version before and after, a FHIRPath criterion) and by
which search parameters a subscriber may narrow them (`canFilterBy`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "BUILT_IN_TOPICS",
    "SUBSCRIPTION_TOPIC_PROFILE",
    "FilterDefinition",
    "InvalidTopic",
    "QueryCriteria",
    "ResourceTrigger",
    "Topic",
    "TopicCatalog",
    "is_topic_basic",
    "topic_from_basic",
]

Interaction = Literal["create", "update", "delete"]
INTERACTIONS: frozenset[str] = frozenset({"create", "update", "delete"})
SUBSCRIPTION_TOPIC_PROFILE = "http://hl7.org/fhir/5.0/StructureDefinition/profile-SubscriptionTopic"
_EXT = "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic."
TOPIC_BASE = "http://micdr.org/fhir/SubscriptionTopic/"


class InvalidTopic(ValueError):
    """A `Basic` resource claims the SubscriptionTopic profile but does not define a topic."""


@dataclass(frozen=True)
class QueryCriteria:
    """Search criteria (a query string, without the type) tested on the version before
    (`previous`) and after (`current`) a change. A side without criteria passes. On a create
    there is no previous version and on a delete no current one: `result_for_create` and
    `result_for_delete` say how that missing side counts (Backport IG, SubscriptionTopic)."""

    previous: str | None = None
    current: str | None = None
    require_both: bool = False
    result_for_create: Literal["test-passes", "test-fails"] = "test-passes"
    result_for_delete: Literal["test-passes", "test-fails"] = "test-passes"


@dataclass(frozen=True)
class ResourceTrigger:
    resource: str
    interactions: frozenset[str]
    query: QueryCriteria | None = None
    fhirpath: str | None = None  # may use %previous and %current


@dataclass(frozen=True)
class FilterDefinition:
    """`canFilterBy`: the filter `code` a subscriber names, on `resource`, applied as the search
    parameter `param` (may be a chain such as `patient.identifier`)."""

    resource: str
    code: str
    param: str


@dataclass(frozen=True)
class Topic:
    url: str
    title: str
    status: str
    triggers: tuple[ResourceTrigger, ...]
    filters: tuple[FilterDefinition, ...]

    def filter(self, resource: str, code: str) -> FilterDefinition | None:
        return next((f for f in self.filters if f.resource == resource and f.code == code), None)

    @property
    def resources(self) -> frozenset[str]:
        return frozenset(t.resource for t in self.triggers)


def _filters(resource: str, codes: Sequence[str]) -> tuple[FilterDefinition, ...]:
    return tuple(FilterDefinition(resource, code, code) for code in codes)


_REPORT_DONE = "status=final,amended,corrected,appended"
_CHANGED = frozenset({"create", "update"})

BUILT_IN_TOPICS: tuple[Topic, ...] = (
    Topic(
        url=TOPIC_BASE + "imaging-report",
        title="Imaging report available or changed",
        status="active",
        triggers=(
            ResourceTrigger("DiagnosticReport", _CHANGED, QueryCriteria(current=_REPORT_DONE)),
        ),
        filters=_filters(
            "DiagnosticReport", ("patient", "patient.identifier", "code", "performer")
        ),
    ),
    Topic(
        url=TOPIC_BASE + "imaging-study",
        title="Imaging study available",
        status="active",
        triggers=(ResourceTrigger("ImagingStudy", _CHANGED),),
        filters=_filters("ImagingStudy", ("patient", "patient.identifier", "modality")),
    ),
    Topic(
        url=TOPIC_BASE + "order-status",
        title="Order status changed",
        status="active",
        triggers=(
            ResourceTrigger(
                "ServiceRequest",
                _CHANGED,
                fhirpath="%previous.empty() or %previous.status != %current.status",
            ),
        ),
        filters=_filters("ServiceRequest", ("patient", "patient.identifier", "requester")),
    ),
)


def topic_from_basic(basic: Mapping[str, Any]) -> Topic:
    """The topic a `Basic` resource with the cross-version SubscriptionTopic profile defines.
    Raises InvalidTopic naming the first element that is missing or wrong."""
    ext = _Extensions(basic.get("extension"), "Basic")
    url = ext.one_string("url", "valueUri", required=True)
    status = ext.one_string("status", "valueCode", required=True)
    if status not in {"draft", "active", "retired", "unknown"}:
        raise InvalidTopic(f"Basic.extension[status]: {status!r} is not a publication status")
    title = ext.one_string("title", "valueString") or url
    triggers = tuple(_trigger(t) for t in ext.all("resourceTrigger"))
    if not triggers:
        raise InvalidTopic("Basic.extension[resourceTrigger]: a topic needs at least one trigger")
    filters = tuple(_filter_by(f) for f in ext.all("canFilterBy"))
    return Topic(url or "", title or "", status or "", triggers, filters)


def _trigger(extension: Mapping[str, Any]) -> ResourceTrigger:
    ext = _Extensions(extension.get("extension"), "resourceTrigger")
    resource = _type_of(ext.one_string("resource", "valueUri", required=True) or "")
    interactions = frozenset(
        str(e.get("valueCode")) for e in ext.all("supportedInteraction")
    ) or frozenset(INTERACTIONS)
    if not interactions <= INTERACTIONS:
        bad = sorted(interactions - INTERACTIONS)
        raise InvalidTopic(f"resourceTrigger.supportedInteraction: unknown {bad}")
    query = None
    queries = ext.all("queryCriteria")
    if queries:
        q = _Extensions(queries[0].get("extension"), "queryCriteria")
        require_both = q.one("requireBoth", "valueBoolean")
        query = QueryCriteria(
            previous=q.one_string("previous", "valueString"),
            current=q.one_string("current", "valueString"),
            require_both=require_both is True,
            result_for_create=_result(q.one_string("resultForCreate", "valueCode")),
            result_for_delete=_result(q.one_string("resultForDelete", "valueCode")),
        )
    fhirpath = ext.one_string("fhirPathCriteria", "valueString")
    return ResourceTrigger(resource, interactions, query, fhirpath)


def _filter_by(extension: Mapping[str, Any]) -> FilterDefinition:
    ext = _Extensions(extension.get("extension"), "canFilterBy")
    resource = _type_of(ext.one_string("resource", "valueUri", required=True) or "")
    # filterParameter is the search parameter code itself; filterDefinition (its canonical)
    # adds nothing the registry does not already know
    code = ext.one_string("filterParameter", "valueString", required=True) or ""
    return FilterDefinition(resource, code, code)


def _type_of(uri: str) -> str:
    """`DiagnosticReport` or its canonical `http://hl7.org/fhir/StructureDefinition/...`."""
    name = uri.rsplit("/", 1)[-1]
    if not name[:1].isupper():
        raise InvalidTopic(f"resource {uri!r} does not name a resource type")
    return name


def _result(code: str | None) -> Literal["test-passes", "test-fails"]:
    if code in (None, "test-passes"):
        return "test-passes"
    if code == "test-fails":
        return "test-fails"
    raise InvalidTopic(f"queryCriteria: {code!r} is neither test-passes nor test-fails")


class _Extensions:
    """The sub-extensions of one complex extension, found by their short names."""

    def __init__(self, extensions: Any, where: str) -> None:
        self._items = [e for e in extensions or [] if isinstance(e, Mapping)]
        self._where = where

    def all(self, name: str) -> list[Mapping[str, Any]]:
        urls = {name, _EXT + name}
        return [e for e in self._items if e.get("url") in urls]

    def one(self, name: str, value: str) -> Any:
        found = self.all(name)
        if len(found) > 1:
            raise InvalidTopic(f"{self._where}.extension[{name}]: at most one is allowed")
        return found[0].get(value) if found else None

    def one_string(self, name: str, value: str, *, required: bool = False) -> str | None:
        found = self.one(name, value)
        if found is None and required:
            raise InvalidTopic(f"{self._where}.extension[{name}]: a {value} is required")
        if found is not None and not isinstance(found, str):
            raise InvalidTopic(f"{self._where}.extension[{name}]: {value} must be a string")
        return found


class TopicCatalog(Mapping[str, Topic]):
    """The topics a subscription may name, by canonical URL: the built-in ones, then the
    active run-time ones (`Basic` resources with the SubscriptionTopic profile) as last
    applied. A run-time topic cannot replace a built-in one of the same URL."""

    def __init__(self, built_in: Iterable[Topic] = BUILT_IN_TOPICS) -> None:
        self._built_in = {topic.url: topic for topic in built_in}
        self._run_time: dict[str, Topic] = {}  # by the Basic resource's id
        self.synced = False  # learnt from the store once (app/subscription_topics.py)
        self.rescanned_at = float("-inf")  # time.monotonic() of the last rescan on a miss
        self.revision = 0  # moves whenever the run-time topics change

    def apply(self, basic_id: str, resource: Mapping[str, Any] | None) -> None:
        """Learn what the `Basic` resource `basic_id` now is (None: deleted)."""
        before = self._run_time.pop(basic_id, None)
        topic = None
        if resource is not None and is_topic_basic(resource):
            try:
                topic = topic_from_basic(resource)
            except InvalidTopic:
                topic = None  # refused when written; one stored before a rule changed
        if topic is not None and topic.status == "active" and topic.url not in self._built_in:
            self._run_time[basic_id] = topic
        if self._run_time.get(basic_id) != before:
            self.revision += 1

    def replace(self, basics: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Forget every run-time topic, then learn these (a full sync)."""
        self._run_time.clear()
        for basic_id, resource in basics:
            self.apply(basic_id, resource)

    @property
    def run_time(self) -> tuple[Topic, ...]:
        return tuple(sorted(self._run_time.values(), key=lambda t: t.url))

    def _all(self) -> dict[str, Topic]:
        return {**{t.url: t for t in self._run_time.values()}, **self._built_in}

    def __getitem__(self, url: str) -> Topic:
        return self._all()[url]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


def is_topic_basic(resource: Mapping[str, Any]) -> bool:
    """A `Basic` claiming the cross-version SubscriptionTopic profile."""
    profiles = (resource.get("meta") or {}).get("profile") or []
    return resource.get("resourceType") == "Basic" and SUBSCRIPTION_TOPIC_PROFILE in profiles
