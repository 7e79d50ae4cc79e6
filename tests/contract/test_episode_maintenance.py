"""Episode maintenance (workers/episodes.py) over both episode engines, on a store kept in a
dict: whatever order an episode's members arrive in, amendments and deletions included, the
index ends holding exactly the documents built from all of them at once."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.fhir.clock import format_instant
from app.records import StoredResource
from app.settings import Settings
from indexing.alerts import parse_rules
from indexing.engines.port import EpisodeStatus
from indexing.engines.sqlite.episodes import SqliteEpisodeIndex
from indexing.episodes import MEMBER_TYPES, accessions, build_episode, group_members, mark_repeats
from tests._episode_engines import context, open_episode_index
from tests._episodes import (
    ACSN_SYSTEM,
    UPI_SYSTEM,
    order,
    organization,
    patient,
    ref,
    report,
    study,
)
from workers.episodes import maintain_episodes, rebuild_episodes

SYSTEMS = frozenset({ACSN_SYSTEM})
SETTINGS = Settings(
    accession_systems=(ACSN_SYSTEM,), upi_systems=(UPI_SYSTEM,), pseudonym_key=b"test-key"
)


class DictStore:
    """The three store calls maintenance makes, over a dict of current versions."""

    def __init__(self) -> None:
        self.current: dict[str, StoredResource] = {}

    def put(self, resource: dict[str, Any]) -> StoredResource:
        known = self.current.get(ref(resource))
        stored = StoredResource(
            resource["resourceType"],
            resource["id"],
            known.version + 1 if known else 1,
            "2026-12-01T00:00:00Z",
            False,
            resource,
        )
        self.current[stored.ref] = stored
        return stored

    def delete(self, reference: str) -> StoredResource:
        known = self.current[reference]
        gone = StoredResource(known.type, known.id, known.version + 1, "", True, None, "delete")
        self.current[reference] = gone
        return gone

    async def read_many(self, refs: Sequence[tuple[str, str]]) -> list[StoredResource]:
        return [self.current[f"{t}/{i}"] for t, i in refs if f"{t}/{i}" in self.current]

    async def find_by_identifier(self, type: str, tokens: Sequence[str]) -> Mapping[str, list[str]]:
        found: dict[str, list[str]] = {}
        for item in self.current.values():
            if item.type != type or item.resource is None:
                continue
            for ident in item.resource.get("identifier") or []:
                token = f"{ident.get('system')}|{ident.get('value')}"
                if token in tokens:
                    found.setdefault(token, []).append(item.id)
        return found

    async def scan(self, type: str, after_id: str | None, limit: int) -> list[StoredResource]:
        ids = sorted(i.id for i in self.current.values() if i.type == type and not i.deleted)
        chosen = [i for i in ids if after_id is None or i > after_id][:limit]
        return [self.current[f"{type}/{i}"] for i in chosen]


async def arrive(store: DictStore, index: Any, *resources: dict[str, Any]) -> None:
    """Commit `resources` and run maintenance on them, as the projection job does."""
    await maintain_episodes(store, index, SETTINGS, [store.put(r) for r in resources])


async def indexed(index: Any, *terms: str) -> dict[str, dict[str, Any]]:
    return {e.key: e.doc for e in await index.related(list(terms))}


def expected(store: DictStore, groups: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    live = {r: s.resource for r, s in store.current.items() if s.resource is not None}
    ctx = context({r: v for r, v in live.items() if r.split("/")[0] in ("Patient", "Organization")})
    docs = [build_episode(k, {m: live[m] for m in refs}, ctx) for k, refs in groups.items()]
    return {d["key"]: d for d in mark_repeats(docs)}


CONTEXT = (patient(), organization())
ORDER = order()
STUDY = study()
ORPHAN_REPORT = report(order_id=None)  # joins by its accession number only
TERMS = ("Patient/p1", "ServiceRequest/o1", f"{ACSN_SYSTEM}|ACC1", "DiagnosticReport/r1")


@pytest.mark.parametrize(
    "arrival",
    list(itertools.permutations([ORDER, STUDY, ORPHAN_REPORT])),
    ids=lambda p: "-".join(r["resourceType"][:2] for r in p),
)
async def test_every_arrival_order_builds_the_same_episode(
    episodes: Any, arrival: tuple[dict[str, Any], ...]
) -> None:
    store = DictStore()
    await arrive(store, episodes, *CONTEXT)
    for resource in arrival:
        await arrive(store, episodes, resource)
    assert await indexed(episodes, *TERMS) == expected(
        store,
        {"ServiceRequest/o1": ["DiagnosticReport/r1", "ImagingStudy/s1", "ServiceRequest/o1"]},
    )


async def test_a_report_before_its_order_is_an_accession_episode_until_the_order_comes(
    episodes: Any,
) -> None:
    store = DictStore()
    await arrive(store, episodes, *CONTEXT, ORPHAN_REPORT)
    assert list(await indexed(episodes, *TERMS)) == [f"Accession/{ACSN_SYSTEM}|ACC1"]
    await arrive(store, episodes, ORDER)
    assert await indexed(episodes, *TERMS, f"Accession/{ACSN_SYSTEM}|ACC1") == expected(
        store, {"ServiceRequest/o1": ["DiagnosticReport/r1", "ServiceRequest/o1"]}
    )


async def test_an_amended_report_and_a_deleted_study_are_reflected(episodes: Any) -> None:
    store = DictStore()
    await arrive(store, episodes, *CONTEXT, ORDER, STUDY, report())
    await arrive(store, episodes, report(status="amended", issued="2026-10-05T10:00:00Z"))
    [doc] = (await indexed(episodes, *TERMS)).values()
    assert (doc["status"], doc["addendum_count"], doc["last_amendment_at"]) == (
        "amended",
        1,
        "2026-10-05T10:00:00Z",
    )
    await maintain_episodes(store, episodes, SETTINGS, [store.delete("ImagingStudy/s1")])
    assert await indexed(episodes, *TERMS, "ImagingStudy/s1") == expected(
        store, {"ServiceRequest/o1": ["DiagnosticReport/r1", "ServiceRequest/o1"]}
    )


async def test_an_episode_whose_members_are_all_deleted_is_removed(episodes: Any) -> None:
    store = DictStore()
    await arrive(store, episodes, *CONTEXT, ORDER, STUDY)
    gone = [store.delete("ServiceRequest/o1"), store.delete("ImagingStudy/s1")]
    await maintain_episodes(store, episodes, SETTINGS, gone)
    assert await indexed(episodes, *TERMS, "ImagingStudy/s1") == {}


async def test_a_patient_change_reaches_its_episodes(episodes: Any) -> None:
    store = DictStore()
    await arrive(store, episodes, *CONTEXT, ORDER)
    await arrive(store, episodes, patient(born="1950-01-01"))
    [doc] = (await indexed(episodes, "ServiceRequest/o1")).values()
    assert doc["patient_age_band"] == "65-79"


async def test_a_repeat_arriving_first_is_flagged_once_the_earlier_episode_arrives(
    episodes: Any,
) -> None:
    store = DictStore()
    later = order("o2", "ACC2", "2026-10-20T08:00:00Z")
    await arrive(store, episodes, *CONTEXT, later)
    assert (await indexed(episodes, "ServiceRequest/o2"))["ServiceRequest/o2"]["repeat"] is False
    await arrive(store, episodes, ORDER)
    docs = await indexed(episodes, "Patient/p1")
    assert {k: d["repeat"] for k, d in docs.items()} == {
        "ServiceRequest/o1": False,
        "ServiceRequest/o2": True,
    }


async def test_rebuild_empties_the_index_and_builds_it_from_the_store(episodes: Any) -> None:
    store = DictStore()
    await arrive(store, episodes, *CONTEXT, ORDER, STUDY)
    for resource in (order("o3", "ACC3"), ORPHAN_REPORT):
        store.put(resource)  # committed, never maintained
    assert await rebuild_episodes(store, episodes, SETTINGS) == 4
    assert await indexed(episodes, "Patient/p1") == expected(
        store,
        {
            "ServiceRequest/o1": ["DiagnosticReport/r1", "ImagingStudy/s1", "ServiceRequest/o1"],
            "ServiceRequest/o3": ["ServiceRequest/o3"],
        },
    )
    assert await episodes.status() == EpisodeStatus(up=True)


class FailingScan(DictStore):
    """A store that fails while `failing` when the rebuild reads the studies (the process
    dies, the engine goes away)."""

    failing = True

    async def scan(self, type: str, after_id: str | None, limit: int) -> list[StoredResource]:
        if self.failing and type == "ImagingStudy":
            raise ConnectionError("store gone")
        return await super().scan(type, after_id, limit)


async def test_an_interrupted_rebuild_stays_reported_until_one_finishes(episodes: Any) -> None:
    store = FailingScan()
    await arrive(store, episodes, *CONTEXT, ORDER, STUDY)
    before = format_instant(datetime.now(UTC))
    with pytest.raises(ConnectionError):
        await rebuild_episodes(store, episodes, SETTINGS)
    after = format_instant(datetime.now(UTC))
    status = await episodes.status()
    assert status.up
    assert status.rebuilding_since is not None
    assert before <= status.rebuilding_since <= after
    store.failing = False
    assert await rebuild_episodes(store, episodes, SETTINGS) == 2
    assert await episodes.status() == EpisodeStatus(up=True)


async def test_concurrent_workers_on_one_episode_lose_no_member(episodes: Any) -> None:
    """Three episodes of one patient, each written by six workers at once (an order, a study,
    four reports), so they also race on the patient's repeat flags."""
    store = DictStore()
    await arrive(store, episodes, *CONTEXT)
    groups: dict[str, list[str]] = {}
    changed = []
    for n in range(3):
        day = f"2026-10-{10 * n + 1:02d}"
        o = order(f"o{n}", f"ACC{n}", f"{day}T08:00:00Z")
        st_ = study(f"s{n}", f"o{n}", f"ACC{n}", f"{day}T09:00:00Z")
        rs = [report(f"r{n}{k}", f"o{n}", f"ACC{n}", f"{day}T1{k}:00:00Z") for k in range(4)]
        changed += [[store.put(r)] for r in (o, st_, *rs)]
        groups[f"ServiceRequest/o{n}"] = sorted(ref(r) for r in (o, st_, *rs))
    await asyncio.gather(*(maintain_episodes(store, episodes, SETTINGS, c) for c in changed))
    assert await indexed(episodes, "Patient/p1") == expected(store, groups)


# -- any sequence of writes and deletions, on the embedded engine ------------------------------

MEMBERS = {
    "ServiceRequest/o1": [order(), order(status="revoked")],
    "ServiceRequest/o2": [order("o2", "ACC2", "2026-10-20T08:00:00Z")],
    "ImagingStudy/s1": [study(), study(order_id=None)],
    "ImagingStudy/s2": [study("s2", "o2", "ACC2", "2026-10-20T09:00:00Z", "CT")],
    "DiagnosticReport/r1": [ORPHAN_REPORT, report(status="amended")],
    "DiagnosticReport/r2": [report("r2", None, "ACC2", "2026-10-21T08:00:00Z")],
    "Patient/p1": [patient(), patient(born="1940-01-01")],
}
EVENTS = st.lists(
    st.tuples(st.sampled_from(sorted(MEMBERS)), st.integers(0, 1), st.booleans()),
    min_size=1,
    max_size=12,
)


def expected_from(store: DictStore) -> dict[str, dict[str, Any]]:
    live = {r: s.resource for r, s in store.current.items() if s.resource is not None}
    members = {r: v for r, v in live.items() if r.split("/")[0] in MEMBER_TYPES}
    orders = {
        a: f"ServiceRequest/{i}"
        for r, v in members.items()
        if r.startswith("ServiceRequest/")
        for a, i in ((a, r.split("/")[1]) for a in accessions(v, SYSTEMS))
    }
    return expected(store, group_members(members, orders, SYSTEMS))


async def _writes_and_deletions_end_as_built_at_once(
    index: Any, events: list[tuple[str, int, bool]]
) -> None:
    store = DictStore()
    await arrive(store, index, organization())
    for reference, variant, delete in events:
        if delete and reference in store.current:
            changed = store.delete(reference)
        else:
            options = MEMBERS[reference]
            changed = store.put(options[variant % len(options)])
        await maintain_episodes(store, index, SETTINGS, [changed])
    every = [*MEMBERS, f"Accession/{ACSN_SYSTEM}|ACC1", f"Accession/{ACSN_SYSTEM}|ACC2"]
    assert await indexed(index, *every) == expected_from(store)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=EVENTS)
def test_any_sequence_of_writes_and_deletions_ends_in_the_documents_built_at_once(
    tmp_path: Path, events: list[tuple[str, int, bool]]
) -> None:
    async def run() -> None:
        index = await SqliteEpisodeIndex.open(tmp_path / f"{uuid.uuid4().hex}.sqlite3")
        try:
            await _writes_and_deletions_end_as_built_at_once(index, events)
        finally:
            await index.close()

    asyncio.run(run())


# Elasticsearch: fewer examples (each write is a refreshed round trip), the same property
@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=EVENTS)
def test_the_same_property_holds_on_elasticsearch(
    tmp_path: Path, events: list[tuple[str, int, bool]]
) -> None:
    async def run() -> None:
        index, cleanup = await open_episode_index("elasticsearch", tmp_path)
        try:
            await _writes_and_deletions_end_as_built_at_once(index, events)
        finally:
            await cleanup()

    asyncio.run(run())


async def test_an_alert_fires_while_its_condition_holds_and_clears_after(episodes: Any) -> None:
    store = DictStore()
    await arrive(store, episodes, *CONTEXT, ORDER)
    rules = parse_rules(None)
    early, late = datetime(2026, 10, 2, tzinfo=UTC), datetime(2026, 10, 9, tzinfo=UTC)
    assert await episodes.alerts(rules, early) == []
    [fired] = await episodes.alerts(rules, late)
    assert (fired["rule"], fired["key"], fired["value"]) == (
        "order-without-study",
        "ServiceRequest/o1",
        "2026-10-01T12:00:00Z",
    )
    await arrive(store, episodes, STUDY)  # the study came: the order's alert clears ...
    assert [a["rule"] for a in await episodes.alerts(rules, late)] == [
        "study-without-final-report"  # ... and the report is now late
    ]
    await arrive(store, episodes, report())
    assert await episodes.alerts(rules, late) == []
