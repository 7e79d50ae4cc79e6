"""Imaging episodes: an order, its studies and its reports as one analyst document (pure).

An episode is keyed by its order, `ServiceRequest/<id>`, whenever a member points at one
(`basedOn`), even before the order itself arrives. A study or report without `basedOn` joins the
order carrying one of its accession numbers; without such an order, the members sharing an
accession form an episode keyed `Accession/<system|value>`; a member with neither stands alone,
keyed by its own reference. Every document is computed from the current versions of its members
alone, so recomputing it is idempotent and the arrival order does not matter
(docs/index-schema.md, Imaging episodes; maintenance: workers/episodes.py).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "MEMBER_TYPES",
    "EpisodeContext",
    "accessions",
    "age_band",
    "build_episode",
    "episode_key",
    "group_members",
    "mark_repeats",
    "pseudonym",
    "utc",
]

MEMBER_TYPES = ("ServiceRequest", "ImagingStudy", "DiagnosticReport")
ORDER = "ServiceRequest"
STUDY = "ImagingStudy"
REPORT = "DiagnosticReport"
ACCESSION_KEY = "Accession/"
ACCESSION_CODE = "ACSN"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
REPEAT_WINDOW_DAYS = 30
CANCELLED_ORDER = frozenset({"revoked", "entered-in-error"})
FINAL_REPORT = frozenset({"final", "amended", "corrected", "appended"})
AMENDED_REPORT = frozenset({"amended", "corrected", "appended"})
LIVE_REPORT = frozenset({"preliminary", "partial", "registered"}) | FINAL_REPORT
AGE_BANDS = ((0, "0-17"), (18, "18-39"), (40, "40-64"), (65, "65-79"), (80, "80+"))


@dataclass(frozen=True)
class EpisodeContext:
    """What building an episode needs besides its members: the resources they point at
    (Patient, Organization, by `Type/id`), the identifier systems that mark an accession number
    or a UPI, and the key of the patients' pseudonyms."""

    referenced: Mapping[str, Mapping[str, Any]]
    accession_systems: frozenset[str]
    upi_systems: frozenset[str]
    pseudonym_key: bytes


def _ref(value: Any) -> str | None:
    ref = value.get("reference") if isinstance(value, dict) else None
    return ref if isinstance(ref, str) and "/" in ref and not ref.startswith("urn:") else None


def _refs(resource: Mapping[str, Any], field: str) -> list[str]:
    value = resource.get(field)
    items = value if isinstance(value, list) else [value]
    return [r for r in (_ref(item) for item in items) if r is not None]


def accessions(resource: Mapping[str, Any], systems: frozenset[str]) -> list[str]:
    """The accession numbers of a resource as `system|value`: identifiers typed ACSN, or in one
    of the configured accession systems."""
    out: list[str] = []
    for ident in resource.get("identifier") or []:
        system, value = ident.get("system", ""), ident.get("value")
        codes = {c.get("code") for c in (ident.get("type") or {}).get("coding") or []}
        if value and (ACCESSION_CODE in codes or system in systems):
            token = f"{system}|{value}"
            if token not in out:
                out.append(token)
    return out


def _order_ref(resource: Mapping[str, Any]) -> str | None:
    return next((r for r in _refs(resource, "basedOn") if r.startswith(f"{ORDER}/")), None)


def episode_key(
    ref: str,
    resource: Mapping[str, Any],
    order_by_accession: Mapping[str, str],
    systems: frozenset[str],
) -> str:
    """The key of the episode a member belongs to. `order_by_accession`: accession
    (`system|value`) -> `ServiceRequest/<id>` of the live order carrying it."""
    if ref.startswith(f"{ORDER}/"):
        return ref
    order = _order_ref(resource)
    if order is not None:
        return order
    numbers = accessions(resource, systems)
    for number in numbers:
        if number in order_by_accession:
            return order_by_accession[number]
    return ACCESSION_KEY + numbers[0] if numbers else ref


def group_members(
    members: Mapping[str, Mapping[str, Any]],
    order_by_accession: Mapping[str, str],
    systems: frozenset[str],
) -> dict[str, list[str]]:
    """Episode key -> the sorted references of its members. An accession number joins the
    order carrying it (`order_by_accession`) or, failing that, the order of a member that
    carries it and points at an order (a study with `basedOn` lends its order to a report
    with only the accession number)."""
    joined = dict(order_by_accession)
    for ref in sorted(members):
        order = ref if ref.startswith(f"{ORDER}/") else _order_ref(members[ref])
        if order is not None:
            for number in accessions(members[ref], systems):
                joined.setdefault(number, order)
    groups: dict[str, list[str]] = {}
    for ref in sorted(members):
        key = episode_key(ref, members[ref], joined, systems)
        groups.setdefault(key, []).append(ref)
    return groups


def utc(value: Any) -> str | None:
    """A FHIR date or dateTime as `YYYY-MM-DDTHH:MM:SSZ` (a date alone: its midnight UTC;
    a year or a month: the first day); None when absent or unreadable."""
    if not isinstance(value, str) or len(value) < 4:
        return None
    text = value.replace("Z", "+00:00")
    try:
        if len(text) <= 10:
            parts = [int(p) for p in text.split("-")] + [1, 1]
            moment = datetime(parts[0], parts[1], parts[2], tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except ValueError:
        return None
    at = moment.astimezone(UTC)
    return (
        f"{at.year:04d}-{at.month:02d}-{at.day:02d}T{at.hour:02d}:{at.minute:02d}:{at.second:02d}Z"
    )


def _moment(value: str) -> datetime:
    """A value `utc` wrote, back as a datetime (fromisoformat: strptime is ~30x slower)."""
    return datetime.fromisoformat(value)


def _minutes(start: str | None, end: str | None) -> int | None:
    if start is None or end is None:
        return None
    return int((_moment(end) - _moment(start)).total_seconds() // 60)


def age_band(birth_date: Any, at: str | None) -> str | None:
    """The patient's age band on the day `at` (UTC), from a FHIR birthDate."""
    born = utc(birth_date)
    if born is None or at is None:
        return None
    b, day = _moment(born).date(), _moment(at).date()
    years = day.year - b.year - ((day.month, day.day) < (b.month, b.day))
    if years < 0:
        return None
    return [label for floor, label in AGE_BANDS if years >= floor][-1]


def pseudonym(key: bytes, patient_ref: str) -> str:
    """A stable pseudonymous patient key: HMAC-SHA256 of the reference, 16 hex digits."""
    return hmac.new(key, patient_ref.encode(), hashlib.sha256).hexdigest()[:16]


def _coding(concept: Any) -> dict[str, Any]:
    if isinstance(concept, dict):
        codings = concept.get("coding") or []
        return codings[0] if codings else {"display": concept.get("text")}
    return {}


def _org(ref: str | None, ctx: EpisodeContext) -> tuple[str | None, str | None]:
    org = ctx.referenced.get(ref or "")
    if org is None:
        return None, None
    upi = next(
        (i.get("value") for i in org.get("identifier") or [] if i.get("system") in ctx.upi_systems),
        None,
    )
    return upi, org.get("name")


def _first_org(refs: Iterable[str]) -> str | None:
    return next((r for r in refs if r.startswith("Organization/")), None)


def _earliest(values: Iterable[str | None]) -> str | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _latest(values: Iterable[str | None]) -> str | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _status(
    order: Mapping[str, Any] | None, studies: int, final: bool, amended: bool, any_report: bool
) -> str:
    if order is not None and order.get("status") in CANCELLED_ORDER and not studies:
        return "cancelled"
    if amended:
        return "amended"
    if final:
        return "reported"
    if studies or any_report:
        return "performed"
    return "ordered"


def build_episode(
    key: str, members: Mapping[str, Mapping[str, Any]], ctx: EpisodeContext
) -> dict[str, Any]:
    """The episode document of `key` from its members' current resources (`Type/id` -> JSON).
    `repeat` is False here: `mark_repeats` decides it across a patient's episodes."""
    refs = sorted(members)
    order_ref = next((r for r in refs if r.startswith(f"{ORDER}/")), None)
    order = members.get(order_ref) if order_ref else None
    studies = [members[r] for r in refs if r.startswith(f"{STUDY}/")]
    reports = [members[r] for r in refs if r.startswith(f"{REPORT}/")]
    live_reports = [r for r in reports if r.get("status") in LIVE_REPORT]
    final = [r for r in live_reports if r.get("status") in FINAL_REPORT]
    amended = [r for r in live_reports if r.get("status") in AMENDED_REPORT]

    first = order or (studies[0] if studies else reports[0])
    subject = next((s for m in (order, *studies, *reports) if m for s in _refs(m, "subject")), None)
    patient = ctx.referenced.get(subject or "", {})

    procedure = _coding(first.get("code")) if order or not studies else {}
    if not procedure and studies:
        procedure = _coding((studies[0].get("procedureCode") or [None])[0])
    if not procedure and reports:
        procedure = _coding(reports[0].get("code"))
    modalities = sorted(
        {m["code"] for s in studies for m in s.get("modality") or [] if m.get("code")}
        | {
            c["code"]
            for cat in (order or {}).get("category") or []
            for c in cat.get("coding") or []
            if c.get("system") == DCM and c.get("code")
        }
    )
    body_site = _coding(((order or {}).get("bodySite") or [None])[0]).get("code") or next(
        (
            se["bodySite"].get("code")
            for s in studies
            for se in s.get("series") or []
            if isinstance(se.get("bodySite"), dict)
        ),
        None,
    )

    ordered = utc((order or {}).get("authoredOn"))
    performed = _earliest(utc(s.get("started")) for s in studies)
    first_report = _earliest(utc(r.get("issued")) for r in live_reports)
    final_report = _earliest(utc(r.get("issued")) for r in final)
    last_amendment = _latest(utc(r.get("issued")) for r in amended)
    episode_date = ordered or performed or first_report or final_report

    ordering_upi, ordering_name = _org(_first_org(_refs(order or {}, "requester")), ctx)
    performer = _first_org(
        [*_refs(order or {}, "performer"), *(p for r in reports for p in _refs(r, "performer"))]
    )
    performing_upi, performing_name = _org(performer, ctx)

    series = sum(s.get("numberOfSeries", len(s.get("series") or [])) for s in studies)
    instances = sum(
        s.get(
            "numberOfInstances",
            sum(len(se.get("instance") or []) for se in s.get("series") or []),
        )
        for s in studies
    )
    numbers = sorted({a for m in members.values() for a in accessions(m, ctx.accession_systems)})
    return {
        "key": key,
        "order": order_ref,
        "studies": [r for r in refs if r.startswith(f"{STUDY}/")],
        "reports": [r for r in refs if r.startswith(f"{REPORT}/")],
        "accessions": numbers,
        "patient": subject,
        "patient_key": pseudonym(ctx.pseudonym_key, subject) if subject else None,
        "patient_sex": patient.get("gender"),
        "patient_age_band": age_band(patient.get("birthDate"), episode_date),
        "procedure_system": procedure.get("system"),
        "procedure_code": procedure.get("code"),
        "procedure_display": procedure.get("display"),
        "modality": modalities[0] if modalities else None,
        "modalities": modalities,
        "body_site": body_site,
        "priority": (order or {}).get("priority"),
        "ordering_org_upi": ordering_upi,
        "ordering_org_name": ordering_name,
        "performing_org_upi": performing_upi,
        "performing_org_name": performing_name,
        "episode_date": episode_date,
        "month": episode_date[:7] if episode_date else None,
        "ordered_at": ordered,
        "performed_at": performed,
        "first_report_at": first_report,
        "final_report_at": final_report,
        "last_amendment_at": last_amendment,
        "order_to_exam_minutes": _minutes(ordered, performed),
        "exam_to_report_minutes": _minutes(performed, final_report),
        "order_to_report_minutes": _minutes(ordered, final_report),
        "status": _status(order, len(studies), bool(final), bool(amended), bool(live_reports)),
        "series_count": series,
        "instance_count": instances,
        "report_count": len(live_reports),
        "addendum_count": len(amended),
        "repeat": False,
        "referenced": sorted(
            {r for r in (subject, performer, _first_org(_refs(order or {}, "requester"))) if r}
        ),
    }


def mark_repeats(episodes: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The episodes with `repeat` set: True when the same patient had an episode of the same
    procedure (system and code) starting within the REPEAT_WINDOW_DAYS before this one (ties on
    the same instant broken by key, so exactly one of two identical episodes is the repeat)."""
    out = [dict(e) for e in episodes]
    groups: dict[tuple[Any, Any, Any], list[tuple[str, str]]] = {}
    for e in out:
        e["repeat"] = False
        if e.get("patient_key") and e.get("procedure_code") and e.get("episode_date"):
            group = (e["patient_key"], e.get("procedure_system"), e["procedure_code"])
            groups.setdefault(group, []).append((e["episode_date"], e["key"]))
    window = timedelta(days=REPEAT_WINDOW_DAYS)
    for e in out:
        if not (e.get("patient_key") and e.get("procedure_code") and e.get("episode_date")):
            continue
        mine = (e["episode_date"], e["key"])
        since = _moment(e["episode_date"]) - window
        peers = groups[(e["patient_key"], e.get("procedure_system"), e["procedure_code"])]
        e["repeat"] = any(other < mine and _moment(other[0]) >= since for other in peers)
    return out
