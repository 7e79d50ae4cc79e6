"""Keep the imaging-episode index up to date from the commits the projection reads.

`maintain_episodes` runs in the projection job (workers/jobs.py) on the resources of each batch
of commits, before the batch is marked indexed, so the episodes follow the same outbox as the
search index and a crash repeats the batch (every step is a recomputation: idempotent).

For a changed order, study, report or patient it finds every episode the change
can touch (the episode index answers by member reference, accession number, patient and
organisation: `indexing.analytics.episode_terms`), widens the set until it is closed (members of
those episodes, orders carrying their accession numbers, the episodes of those), reads the
current version of every member from the store, regroups them (`indexing.episodes`), rebuilds
each episode and the repeat flags of the patients concerned, and writes only what changed with
a compare-and-set per episode. Another worker writing one of them first makes the write fail;
then all of it is recomputed from the store again. Reading the store after the revisions makes
the last successful writer's view at least as new as every commit it raced
(docs/decisions/0008-episodes-kept-by-the-projection-job.md).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from app.fhir.clock import utc_now
from app.records import StoredResource
from app.settings import Settings
from indexing.engines.port import EpisodeIndex, EpisodeWrite, StoredEpisode
from indexing.episodes import (
    MEMBER_TYPES,
    EpisodeContext,
    accessions,
    build_episode,
    group_members,
    mark_repeats,
)

log = logging.getLogger("micdr.episodes")

__all__ = ["EpisodeConflict", "maintain_episodes", "rebuild_episodes"]

MAX_ATTEMPTS = 20
RETRY_SECONDS = 0.02
MAX_WIDENING = 10
CONTEXT_TYPES = ("Patient", "Organization")
# A change to one of these rebuilds the episodes that read it. Not an Organization's: a
# hospital's change would rebuild every episode it ever performed in one job; its new name or
# UPI reaches an episode with the episode's next change, or with `micdr reindex`.
TRIGGER_TYPES = ("Patient",)
REBUILD_BATCH = 500


class EpisodeStore(Protocol):
    async def read_many(self, refs: Sequence[tuple[str, str]]) -> list[StoredResource]: ...

    async def find_by_identifier(
        self, type: str, tokens: Sequence[str]
    ) -> Mapping[str, list[str]]: ...


class ScanStore(EpisodeStore, Protocol):
    async def scan(self, type: str, after_id: str | None, limit: int) -> list[StoredResource]: ...


class EpisodeConflict(RuntimeError):
    """Other workers kept winning the same episodes: the job fails and is retried."""


def _split(ref: str) -> tuple[str, str]:
    type_, id_ = ref.split("/", 1)
    return type_, id_


async def _live(store: EpisodeStore, refs: Iterable[str]) -> dict[str, dict[str, Any]]:
    wanted = sorted(set(refs))
    if not wanted:
        return {}
    found = await store.read_many([_split(r) for r in wanted])
    return {f.ref: f.resource for f in found if not f.deleted and f.resource is not None}


async def _orders(store: EpisodeStore, numbers: Iterable[str]) -> dict[str, str]:
    """accession -> the order carrying it (the smallest id, when several do)."""
    tokens = sorted(set(numbers))
    if not tokens:
        return {}
    found = await store.find_by_identifier("ServiceRequest", tokens)
    return {t: f"ServiceRequest/{min(ids)}" for t, ids in found.items() if ids}


def _changed_terms(changed: Iterable[StoredResource]) -> set[str]:
    return {c.ref for c in changed if c.type in MEMBER_TYPES or c.type in TRIGGER_TYPES}


async def maintain_episodes(
    store: EpisodeStore,
    index: EpisodeIndex,
    settings: Settings,
    changed: Sequence[StoredResource],
) -> int:
    """Bring every episode touched by `changed` up to date; answers episodes written."""
    terms = _changed_terms(changed)
    if not terms:
        return 0
    for attempt in range(MAX_ATTEMPTS):
        written = await _maintain_once(store, index, settings, terms)
        if written is not None:
            return written
        # lost a race: back off a little, at random, so racing workers stop meeting
        await asyncio.sleep(random.uniform(0, RETRY_SECONDS * (attempt + 1)))
    raise EpisodeConflict(f"episodes of {sorted(terms)[:3]}... kept changing")


async def _maintain_once(
    store: EpisodeStore, index: EpisodeIndex, settings: Settings, start: set[str]
) -> int | None:
    systems = frozenset(settings.accession_systems)
    terms = set(start)
    stored: dict[str, StoredEpisode] = {}
    members: dict[str, dict[str, Any]] = {}
    orders: dict[str, str] = {}
    numbers: set[str] = set()
    for _ in range(MAX_WIDENING):
        for episode in await index.related(sorted(terms)):
            stored[episode.key] = episode
        refs = {t for t in terms if t.split("/", 1)[0] in MEMBER_TYPES}
        for episode in stored.values():
            doc = episode.doc
            refs.update(doc["studies"], doc["reports"], [doc["order"]] if doc["order"] else [])
        members = await _live(store, refs)
        numbers = {a for m in members.values() for a in accessions(m, systems)}
        orders = await _orders(store, numbers)
        refs.update(orders.values())
        members.update(await _live(store, set(orders.values()) - set(members)))
        keys = set(group_members(members, orders, systems))
        wider = refs | numbers | keys | set(stored)
        if wider <= terms:
            break
        terms |= wider
    groups = group_members(members, orders, systems)
    context_refs = {
        r
        for key, refs in groups.items()
        for r in _context_refs({ref: members[ref] for ref in refs})
    }
    referenced = await _live(store, context_refs)
    ctx = EpisodeContext(
        referenced=referenced,
        accession_systems=systems,
        upi_systems=frozenset(settings.upi_systems),
        pseudonym_key=settings.pseudonym_key,
    )
    built = {
        key: build_episode(key, {r: members[r] for r in refs}, ctx) for key, refs in groups.items()
    }
    # The patients' other episodes, for their repeat flags: their members were not regrouped
    # here (else the widening above would have found them), so they stay as they are.
    # (the patients of the episodes as they were too: a deleted one may have been the first)
    before = [e.doc for e in stored.values()]
    patients = sorted({d["patient"] for d in [*built.values(), *before] if d["patient"]})
    # An episode rebuilt here but not found above is new to this worker: it is written only if
    # it still does not exist, even if the patient lookup now finds it (another worker created
    # it meanwhile, from members this one may not have read).
    others = {
        e.key: e
        for e in await index.related(patients)
        if e.key not in stored and e.key not in built
    }
    everything = {key: e.doc for key, e in others.items()}
    everything.update(built)
    marked = {d["key"]: d for d in mark_repeats(list(everything.values()))}
    writes: list[EpisodeWrite] = []
    for key, doc in sorted(marked.items()):
        old = stored.get(key) if key in built else others.get(key)
        if old is None or old.doc != doc:
            writes.append(EpisodeWrite(key, doc, old.rev if old else None))
    # an episode found above and not rebuilt has no live member left
    writes.extend(EpisodeWrite(k, None, e.rev) for k, e in sorted(stored.items()) if k not in built)
    if not await index.apply(writes):
        log.debug("episode write lost a race; recomputing %d episodes", len(writes))
        return None
    # An order committed after the lookups above but before these writes became visible may
    # carry an accession number of a member just written: look again, recompute if so.
    if await _orders(store, numbers) != orders:
        return None
    return len(writes)


def _context_refs(members: Mapping[str, Mapping[str, Any]]) -> set[str]:
    out: set[str] = set()
    for resource in members.values():
        for field in ("subject", "requester", "performer"):
            value = resource.get(field)
            for item in value if isinstance(value, list) else [value]:
                ref = item.get("reference") if isinstance(item, dict) else None
                if isinstance(ref, str) and ref.split("/", 1)[0] in CONTEXT_TYPES:
                    out.add(ref)
    return out


async def rebuild_episodes(
    store: ScanStore, index: EpisodeIndex, settings: Settings, batch: int = REBUILD_BATCH
) -> int:
    """Empty the episode index and rebuild it from every order, study and report in the store
    (`micdr reindex`); answers the resources read. Until it ends, `/health` says since when the
    index is being rebuilt: it lacks episodes whose commits are already marked indexed."""
    since = utc_now()
    await index.begin_rebuild(since)
    read = 0
    for type_ in MEMBER_TYPES:
        after: str | None = None
        while True:
            page = await store.scan(type_, after, batch)
            if not page:
                break
            await maintain_episodes(store, index, settings, [p for p in page if not p.deleted])
            read += len(page)
            after = page[-1].id
    await index.finish_rebuild(since)
    log.info("rebuilt the episode index from %d resources", read)
    return read
