"""Which committed changes are events: a topic's triggers and a subscription's filters, or an
R4 subscription's criteria, evaluated on the version before and after one change.

- R4 subscription.html: criteria are a search URL; a resource that is created or updated and
  matches them afterwards (it starts or keeps matching) is notified. A delete is not.
- Backport IG (SubscriptionTopic.resourceTrigger): the interaction must be one the trigger
  supports; `queryCriteria.previous` is tested on the version before, `current` on the version
  after (a missing side counts as `resultForCreate`/`resultForDelete`), both must pass when
  `requireBoth`, else either; `fhirPathCriteria` sees `%previous` and `%current`. A
  subscription's filters (`backport-filter-criteria`) are then tested on the focus.

Search criteria are answered by the search plan evaluated on the version's index document
(indexing/match.py), the same semantics the engines give a search. Chained filters
(`patient.identifier=...`) need other resources: the caller resolves them (`resolve`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import parse_qsl

import fhirpathpy

from app.subscriptions.topics import ResourceTrigger, Topic
from indexing.document import index_document
from indexing.extract import extract_values
from indexing.match import Resolver, plan_matches
from indexing.plan.parse import parse_search
from indexing.plan.plan import SearchPlan
from indexing.registry import SearchParamRegistry

__all__ = ["Change", "Criteria", "InvalidCriteria", "split_criteria"]

Resource = Mapping[str, Any]


class InvalidCriteria(ValueError):
    """Criteria, a filter or a FHIRPath expression that cannot be evaluated; says why."""


@dataclass(frozen=True)
class Change:
    """One committed change of one resource: `previous` is None on a create, `current` None on
    a delete."""

    interaction: Literal["create", "update", "delete"]
    previous: Resource | None
    current: Resource | None

    @property
    def focus(self) -> Resource:
        focus = self.current if self.current is not None else self.previous
        if focus is None:
            raise ValueError("a change has a version before or after it")
        return focus


def split_criteria(criteria: str) -> tuple[str, list[tuple[str, str]]]:
    """`Type?a=b&c=d` -> (`Type`, [(a, b), (c, d)]). Raises InvalidCriteria."""
    resource_type, _, query = criteria.strip().partition("?")
    resource_type = resource_type.rsplit("/", 1)[-1]
    if not resource_type[:1].isupper():
        raise InvalidCriteria(f"criteria {criteria!r} must start with a resource type")
    return resource_type, parse_qsl(query, keep_blank_values=True)


class Criteria:
    """Evaluates search criteria and FHIRPath on single resource versions; plans are parsed
    once per (type, query) and kept."""

    def __init__(self, registry: SearchParamRegistry) -> None:
        self._registry = registry
        self._plan = lru_cache(maxsize=1024)(self._parse)

    def _parse(self, resource_type: str, query: tuple[tuple[str, str], ...]) -> SearchPlan:
        try:
            return parse_search(self._registry, resource_type, list(query), strict=True)
        except Exception as error:  # InvalidSearch: an unknown parameter, a bad value
            raise InvalidCriteria(f"{resource_type}?{_query(query)}: {error}") from None

    def plan(self, criteria: str) -> SearchPlan:
        """The search plan of `Type?query` criteria; raises InvalidCriteria."""
        resource_type, query = split_criteria(criteria)
        return self._plan(resource_type, tuple(query))

    def check(self, criteria: str) -> str:
        """The resource type of valid criteria; raises InvalidCriteria otherwise."""
        resource_type, query = split_criteria(criteria)
        self._plan(resource_type, tuple(query))
        return resource_type

    def matches(
        self, criteria: str, resource: Resource, now: datetime, resolve: Resolver | None = None
    ) -> bool:
        """Does this version of a resource satisfy `Type?query` criteria?"""
        resource_type, query = split_criteria(criteria)
        if resource.get("resourceType") != resource_type:
            return False
        plan = self._plan(resource_type, tuple(query))
        document = index_document(
            self._registry, resource, extract_values(self._registry, resource)
        )
        return plan_matches(plan, document, now, resolve)

    def r4_criteria_fire(self, criteria: str, change: Change, now: datetime) -> bool:
        """R4 rest-hook: a created or updated resource that matches afterwards."""
        return change.current is not None and self.matches(criteria, change.current, now)

    def topic_fires(
        self,
        topic: Topic,
        change: Change,
        filters: tuple[str, ...],
        now: datetime,
        resolve: Resolver | None = None,
    ) -> bool:
        """A topic-based subscription's test: some trigger of the topic fires on the change and
        the focus passes every filter of the subscription (`Type?param=value` each) that names
        its type."""
        focus = change.focus
        if not any(self._trigger_fires(t, change, now) for t in topic.triggers):
            return False
        return all(
            self.matches(f, focus, now, resolve)
            for f in filters
            if split_criteria(f)[0] == focus.get("resourceType")
        )

    def _trigger_fires(self, trigger: ResourceTrigger, change: Change, now: datetime) -> bool:
        if change.focus.get("resourceType") != trigger.resource:
            return False
        if change.interaction not in trigger.interactions:
            return False
        if trigger.query is not None:
            q = trigger.query
            previous = self._side(q.previous, change.previous, q.result_for_create, now)
            current = self._side(q.current, change.current, q.result_for_delete, now)
            tested = [side for side in (previous, current) if side is not None]
            if tested and not (all(tested) if q.require_both else any(tested)):
                return False
        if trigger.fhirpath is not None:
            return self.fhirpath_true(trigger.fhirpath, change)
        return True

    def check_fhirpath(self, expression: str) -> None:
        """Raises InvalidCriteria when the expression does not parse (fhirpathpy itself
        recovers from some syntax errors and answers nothing)."""
        try:
            self._registry.component_evaluator(expression)
        except ValueError as error:
            raise InvalidCriteria(f"fhirPathCriteria: {error}") from None

    def fhirpath_true(self, expression: str, change: Change) -> bool:
        """A FHIRPath criterion holds when it yields exactly `true` (Backport IG: evaluated
        with `%previous` and `%current`, empty when that version does not exist)."""
        self.check_fhirpath(expression)
        variables = {
            "previous": change.previous if change.previous is not None else [],
            "current": change.current if change.current is not None else [],
        }
        try:
            result = fhirpathpy.evaluate(dict(change.focus), expression, variables)
        except Exception as error:  # fhirpathpy raises bare Exceptions (unknown function, ...)
            raise InvalidCriteria(f"fhirPathCriteria {expression!r}: {error}") from None
        return bool(result == [True])

    def _side(
        self, query: str | None, version: Resource | None, missing: str, now: datetime
    ) -> bool | None:
        """One side of queryCriteria; None when that side has no criteria (it does not
        count)."""
        if query is None:
            return None
        if version is None:
            return missing == "test-passes"
        resource_type = str(version.get("resourceType"))
        return self.matches(f"{resource_type}?{query.lstrip('?')}", version, now)


def _query(query: tuple[tuple[str, str], ...]) -> str:
    return "&".join(f"{k}={v}" for k, v in query)
