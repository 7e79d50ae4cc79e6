"""The analysts' questions over imaging episodes, engine-neutral (pure).

A question and its filters are an `AnalyticsQuery`, parsed from the dashboard API's parameters
(`parse_query`); each engine's episode index compiles it into one aggregation (SQL GROUP BY,
Elasticsearch aggregations). `reference_answer` answers it in Python over the documents: the
tests hold both engines to it. The fields are those of indexing/episodes.py (documented in
docs/index-schema.md, Imaging episodes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "FIELDS",
    "GROUPS",
    "QUESTIONS",
    "AnalyticsError",
    "AnalyticsQuery",
    "episode_terms",
    "parse_query",
    "reference_answer",
]

# Every scalar field of an episode document and its type (keyword, date, integer, boolean);
# the list fields (studies, reports, accessions, modalities, referenced) are keywords too.
FIELDS: dict[str, str] = {
    "key": "keyword",
    "order": "keyword",
    "patient": "keyword",
    "patient_key": "keyword",
    "patient_sex": "keyword",
    "patient_age_band": "keyword",
    "procedure_system": "keyword",
    "procedure_code": "keyword",
    "procedure_display": "keyword",
    "modality": "keyword",
    "body_site": "keyword",
    "priority": "keyword",
    "ordering_org_upi": "keyword",
    "ordering_org_name": "keyword",
    "performing_org_upi": "keyword",
    "performing_org_name": "keyword",
    "episode_date": "date",
    "month": "keyword",
    "ordered_at": "date",
    "performed_at": "date",
    "first_report_at": "date",
    "final_report_at": "date",
    "last_amendment_at": "date",
    "order_to_exam_minutes": "integer",
    "exam_to_report_minutes": "integer",
    "order_to_report_minutes": "integer",
    "status": "keyword",
    "series_count": "integer",
    "instance_count": "integer",
    "report_count": "integer",
    "addendum_count": "integer",
    "repeat": "boolean",
}
LIST_FIELDS = ("studies", "reports", "accessions", "modalities", "referenced")

# question -> the fields its rows are grouped by, in order
GROUPS: dict[str, tuple[str, ...]] = {
    "volume": ("month", "modality", "performing_org_upi"),
    "turnaround": ("modality",),
    "unreported": ("modality",),
    "repeats": ("procedure_code",),
    "amendments": ("modality",),
}
QUESTIONS = tuple(GROUPS)
TURNAROUNDS = ("order_to_exam_minutes", "exam_to_report_minutes", "order_to_report_minutes")
OPEN_STATUSES = ("ordered", "performed")
REPORTED_STATUSES = ("reported", "amended")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_CODE = re.compile(r"[A-Za-z0-9._-]{1,64}")


class AnalyticsError(ValueError):
    """A parameter the dashboard API cannot use; the message names it."""


@dataclass(frozen=True)
class AnalyticsQuery:
    """One question over the episodes whose `episode_date` is in [start, end) (days, UTC),
    optionally of one modality and one performing site (UPI). `unreported` counts the open
    episodes (ordered or performed, no final report) dated more than `days` before `now`."""

    question: str
    start: str | None = None
    end: str | None = None
    modality: str | None = None
    site: str | None = None
    days: int = 7
    now: str = "1970-01-01T00:00:00Z"

    @property
    def cutoff(self) -> str:
        moment = datetime.strptime(self.now, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        return (moment - timedelta(days=self.days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_query(question: str, params: Mapping[str, str], now: datetime) -> AnalyticsQuery:
    """The query for `question` from the API's parameters: start, end (YYYY-MM-DD), modality,
    site, days (1-3650). Raises AnalyticsError naming the first bad one."""
    if question not in GROUPS:
        raise AnalyticsError(f"unknown question {question!r}; known: {', '.join(QUESTIONS)}")
    known = {"start", "end", "modality", "site", "days"}
    for name in sorted(params):
        if name not in known:
            raise AnalyticsError(f"unknown parameter {name!r}; known: {', '.join(sorted(known))}")
    for name in ("start", "end"):
        value = params.get(name)
        if value is not None:
            try:
                if not _DAY.fullmatch(value):
                    raise ValueError(value)
                datetime.strptime(value, "%Y-%m-%d")
            except ValueError:
                raise AnalyticsError(f"{name} must be a date YYYY-MM-DD, got {value!r}") from None
    for name in ("modality", "site"):
        value = params.get(name)
        if value is not None and not _CODE.fullmatch(value):
            raise AnalyticsError(f"{name} must be a code of 1-64 letters, digits, '.', '_', '-'")
    days = params.get("days", "7")
    if not days.isdigit() or not 1 <= int(days) <= 3650:
        raise AnalyticsError(f"days must be a whole number from 1 to 3650, got {days!r}")
    start, end = params.get("start"), params.get("end")
    if start and end and end <= start:
        raise AnalyticsError("end must be after start")
    return AnalyticsQuery(
        question=question,
        start=start,
        end=end,
        modality=params.get("modality"),
        site=params.get("site"),
        days=int(days),
        now=now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def episode_terms(doc: Mapping[str, Any]) -> list[str]:
    """What an episode is found by when a member changes: its key, its members' references,
    its accession numbers and the resources it read (patient, organisations)."""
    terms = {doc["key"], *doc["studies"], *doc["reports"], *doc["accessions"], *doc["referenced"]}
    if doc.get("order"):
        terms.add(doc["order"])
    return sorted(terms)


def _selected(query: AnalyticsQuery, doc: Mapping[str, Any]) -> bool:
    date = doc.get("episode_date")
    if query.start and (date is None or date < query.start):
        return False
    if query.end and (date is None or date >= query.end):
        return False
    if query.modality and doc.get("modality") != query.modality:
        return False
    if query.site and doc.get("performing_org_upi") != query.site:
        return False
    if query.question == "unreported":
        return doc.get("status") in OPEN_STATUSES and date is not None and date < query.cutoff
    return True


def _average(values: Iterable[Any]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _sort_key(row: Mapping[str, Any], fields: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple((row[f] is not None, row[f] or "") for f in fields)


def reference_answer(
    query: AnalyticsQuery, docs: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The rows answering `query` over `docs`, computed in Python: what the engines must equal.
    Rows are sorted by their group fields, missing (None) first."""
    fields = GROUPS[query.question]
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for doc in docs:
        if _selected(query, doc):
            groups.setdefault(tuple(doc.get(f) for f in fields), []).append(doc)
    rows: list[dict[str, Any]] = []
    for values, members in groups.items():
        row: dict[str, Any] = dict(zip(fields, values, strict=True))
        row.update(_measures(query.question, members))
        rows.append(row)
    return sorted(rows, key=lambda r: _sort_key(r, fields))


def _measures(question: str, docs: list[Mapping[str, Any]]) -> dict[str, Any]:
    if question == "turnaround":
        return {
            "episodes": len(docs),
            **{f"{t[:-8]}_avg": _average(d.get(t) for d in docs) for t in TURNAROUNDS},
        }
    if question == "repeats":
        return {"episodes": len(docs), "repeats": sum(1 for d in docs if d.get("repeat"))}
    if question == "amendments":
        return {
            "reported": sum(1 for d in docs if d.get("status") in REPORTED_STATUSES),
            "amended": sum(1 for d in docs if d.get("status") == "amended"),
        }
    return {"episodes": len(docs)}
