"""Job functions: plain async functions over a `JobContext`, run by arq or the in-process runner.

Delivery is at least once, so every job is idempotent: projecting a commit twice writes the same
versions, which the index's version guard ignores; reindexing a type twice rebuilds it twice; a
submission is claimed before it runs and its commits carry its id (`origin`), so a second
delivery skips it or replays its commits instead of writing twice (docs/implementation/async.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import httpx
import orjson

from app.bulk.imports import ImportState
from app.bulk.output import ExportState
from app.interactions.replay import dead_result, run_submission, status_answer, status_url
from app.reindex import ReindexReport, reindex, select_types
from app.search_parameters import ALL_TYPES, sync_search_parameters
from app.store.port import CommitLog, Submission, SubmissionStore, leading_commits
from app.tx.entry import Entry
from app.tx.plan import EntryResult
from indexing.document import IndexOp
from indexing.project import project
from workers import outcomes
from workers.bulk_import import produce_import
from workers.context import JobContext
from workers.episodes import maintain_episodes, rebuild_episodes
from workers.export import produce_export, purge_exports
from workers.subscriptions import record_subscription_events
from workers.turns import take_turn

log = logging.getLogger("micdr.jobs")

PROJECT_BATCH = 500  # commits
PROJECT_RESOURCES = 5000  # at most, per batch: a bulk load's commits hold hundreds each
PROJECT_CHUNK = 100  # resources extracted between two yields to the event loop
# A transaction begun and neither committed nor rolled back this long ago was left by a process
# that died: recovery rolls it forward or back (docs/implementation/write-path.md).
STALE_TRANSACTION_SECONDS = 60.0
CALLBACK_TIMEOUT_SECONDS = 10.0
FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 30.0


def retry_delay(attempt: int) -> float:
    """Seconds before try `attempt + 1` of a failed job (attempt 1 is the first run): doubling
    from FIRST_RETRY_SECONDS up to MAX_RETRY_SECONDS."""
    return min(FIRST_RETRY_SECONDS * 2 ** max(attempt - 1, 0), MAX_RETRY_SECONDS)


async def project_commits(
    ctx: JobContext, batch: int = PROJECT_BATCH, until: float | None = None
) -> int:
    """Index every committed, unindexed transaction (the outbox), or until `time.monotonic()`
    passes `until`; answers resources projected.

    Before the first write the registry learns the store's SearchParameters (another process may
    have registered one), so that every document written here carries every registered
    parameter. Not before finding work: most jobs find the outbox drained by an earlier one, and
    reading the SearchParameters is a scan on some engines (FerretDB)."""
    projected = 0
    synced = False
    while True:
        commits = leading_commits(await ctx.store.unindexed(batch), PROJECT_RESOURCES)
        if not commits:
            return projected
        if not synced:
            await sync_search_parameters(ctx.store, ctx.registry)
            synced = True
        refs = sorted({(t, i) for c in commits for t, i, _ in c.refs})
        current = await ctx.store.read_many(refs)
        ops: list[IndexOp] = []
        for start in range(0, len(current), PROJECT_CHUNK):
            ops += project(ctx.registry, current[start : start + PROJECT_CHUNK])
            await asyncio.sleep(0)  # a request or a notification may run in between
        await ctx.index.write(ops)
        async with ctx.ahead.lock:  # the same outbox; what `notify_ahead` evaluated is done
            todo = [c for c in commits if c.seq not in ctx.ahead.seqs]
            notified = await record_subscription_events(ctx, todo, current)
        if ctx.episodes is not None:
            await maintain_episodes(ctx.store, ctx.episodes, ctx.settings, current)
        seqs = [c.seq for c in commits]
        await ctx.store.mark_indexed(seqs)
        ctx.ahead.forget(seqs)
        # ring after the mark: a delivery never runs ahead of the events it sends
        notified |= {i for c in commits for t, i, _ in c.refs if t == "Subscription"}
        if notified:
            await ctx.services.queue.deliver(sorted(notified))
        projected += len(ops)
        log.debug("projected %d resources from %d commits", len(ops), len(commits))
        if until is not None and time.monotonic() >= until:
            return projected


async def project_in_turn(ctx: JobContext) -> int:
    """Project the outbox, unless a job of this process already does (workers/turns.py)."""
    return await take_turn(ctx.projecting, lambda until: project_commits(ctx, until=until))


async def recover_transactions(ctx: JobContext) -> None:
    """Repair the transactions a dead process left half done (at start-up and every reconcile)."""
    forward, back = await ctx.store.recover(STALE_TRANSACTION_SECONDS)
    if forward or back:
        log.info("recovered transactions: %d rolled forward, %d rolled back", forward, back)


async def reindex_types(
    ctx: JobContext, types: Iterable[str], checkpoint: Path | None = None
) -> ReindexReport:
    """Rebuild the index documents of `types` (`*`: every type in the store) from the store,
    with the store's SearchParameters registered: what a newly registered parameter needs."""
    await sync_search_parameters(ctx.store, ctx.registry)
    wanted = sorted(set(types))
    chosen = await select_types(ctx.store, ctx.registry, [] if ALL_TYPES in wanted else wanted)
    report = await reindex(ctx.store, ctx.index, ctx.registry, chosen, checkpoint=checkpoint)
    if ALL_TYPES in wanted and ctx.episodes is not None:
        await rebuild_episodes(ctx.store, ctx.episodes, ctx.settings)
    log.info(
        "reindexed %s: %d documents in %.1fs", ", ".join(chosen), report.written, report.seconds
    )
    return report


# -- asynchronous submissions (docs/implementation/async.md) -------------------------------


class LeaseLost(Exception):
    """The submission is no longer this worker's (its lease ran out and it was re-queued)."""


@dataclass(frozen=True)
class Processed:
    """What `process_submission` did: the state it left (`done`, `failed`, `dead`, `queued`
    for a retry), or `skipped` (not this worker's to run) or `lost` (lease lost meanwhile)."""

    state: str
    attempts: int = 0
    not_before: float = 0.0


def _journal_key(origin: str) -> str:
    return "e" + origin.rsplit(":", 1)[1]


class JournalStore(CommitLog, SubmissionStore, Protocol):
    """What a submission's journal asks of the store: its commits, and the submission."""


class SubmissionJournal:
    """The `WriteJournal` of one running submission: commits are named
    `async:<submission id>:<first entry index>` (one per transaction, one per batch entry)."""

    def __init__(
        self, store: JournalStore, sub: Submission, worker: str, lease_seconds: float
    ) -> None:
        self._store = store
        self._id = sub.id
        self._worker = worker
        self._lease = lease_seconds
        body = sub.request.get("body")
        self._entries = len(body.get("entry") or []) if isinstance(body, dict) else 1

    def origin(self, entries: Sequence[Entry]) -> str:
        return f"async:{self._id}:{entries[0].index if entries else 0}"

    async def replay(self, origin: str, entries: Sequence[Entry]) -> tuple[EntryResult, ...] | None:
        if await self._store.committed_origin(origin) is None:
            return None
        sub = await self._store.submission(self._id)
        recorded = (sub.journal if sub else {}).get(_journal_key(origin))
        if recorded is None:
            raise RuntimeError(f"{origin} committed but its planned results were not recorded")
        by_index = {e.index: e for e in entries}
        return tuple(
            EntryResult(
                entry=by_index[r["index"]],
                status=r["status"],
                ref=r["ref"],
                version=r["version"],
                last_updated=r["last_updated"],
                resource=r["resource"],
            )
            for r in recorded
        )

    async def record(self, origin: str, results: Sequence[EntryResult]) -> None:
        now = time.time()
        first = int(origin.rsplit(":", 1)[1])
        done = self._entries if first < 0 or len(results) > 1 else first + 1
        recorded = [
            {
                "index": r.entry.index,
                "status": r.status,
                "ref": r.ref,
                "version": r.version,
                "last_updated": r.last_updated,
                "resource": r.resource,
            }
            for r in results
        ]
        fenced = await self._store.amend_submission(
            self._id,
            {"state": "running", "owner": self._worker},
            {
                f"journal.{_journal_key(origin)}": recorded,
                "lease_until": now + self._lease,
                "progress": f"committing: {done} of {self._entries} entries",
                "updated": now,
            },
        )
        if not fenced:
            raise LeaseLost(self._id)


async def _heartbeat(store: SubmissionStore, id_: str, worker: str, lease: float) -> None:
    """Renew the lease every third of it while the submission runs."""
    while True:
        await asyncio.sleep(lease / 3)
        renewed = await store.amend_submission(
            id_, {"state": "running", "owner": worker}, {"lease_until": time.time() + lease}
        )
        if not renewed:
            return


# The long submissions: run apart from the others, each saving its own checkpoints and result.
BULK_JOBS: dict[str, Callable[[JobContext, Submission], Awaitable[str]]] = {
    ExportState.KIND: produce_export,
    ImportState.KIND: produce_import,
}


def is_bulk(sub: Submission) -> bool:
    return sub.request.get("interaction") in BULK_JOBS


async def process_submission(ctx: JobContext, id_: str) -> Processed:
    """Claim, run, store the result: at-least-once safe (a second delivery finds the submission
    claimed or finished and skips; a redelivery after a crash replays its commits)."""
    settings, store = ctx.settings, ctx.store
    now = time.time()
    sub = await store.claim_submission(id_, ctx.worker, now, now + settings.async_lease_seconds)
    if sub is None:
        return Processed("skipped")
    journal = SubmissionJournal(store, sub, ctx.worker, settings.async_lease_seconds)
    beat = asyncio.create_task(_heartbeat(store, id_, ctx.worker, settings.async_lease_seconds))
    try:
        if is_bulk(sub):  # a bulk job saves its own result (workers/export.py, bulk_import.py)
            return Processed(await BULK_JOBS[sub.request["interaction"]](ctx, sub), sub.attempts)
        result = await run_submission(replace(ctx.services, journal=journal), sub)
    except LeaseLost:
        return Processed("lost")
    except Exception as exc:
        return await _failed(ctx, sub, exc)
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
    state = "done" if int(result["status"]) < 400 else "failed"
    changes = outcomes.finished(
        state,
        result,
        time.time(),
        settings.async_result_ttl,
        settings.async_callbacks.get(sub.contributor),
    )
    updated = await store.update_submission(id_, {"state": "running", "owner": ctx.worker}, changes)
    if updated is None:
        return Processed("lost")
    if updated.callback:
        await deliver_callback(ctx, updated)
    return Processed(state, updated.attempts)


async def _failed(ctx: JobContext, sub: Submission, exc: Exception) -> Processed:
    settings = ctx.settings
    now = time.time()
    error = f"{type(exc).__name__}: {exc}"
    transient = outcomes.is_transient(exc)
    changes = outcomes.after_failure(
        sub.attempts, settings.async_max_attempts, transient, error, now
    )
    if changes["state"] == "dead":
        log.error("submission %s is dead after %d attempts: %s", sub.id, sub.attempts + 1, error)
        changes.update(
            outcomes.finished(
                "dead",
                dead_result(error),
                now,
                settings.async_result_ttl,
                settings.async_callbacks.get(sub.contributor),
            )
        )
    else:
        log.warning("submission %s failed (%s), retrying: %s", sub.id, sub.attempts + 1, error)
    updated = await ctx.store.update_submission(
        sub.id, {"state": "running", "owner": ctx.worker}, changes
    )
    if updated is None:
        return Processed("lost")
    if updated.callback:
        await deliver_callback(ctx, updated)
    return Processed(updated.state, updated.attempts, updated.not_before)


async def reconcile_submissions(ctx: JobContext, now: float, limit: int = 1000) -> list[Submission]:
    """The submissions to (re-)deliver now: queued ones that are due, and running ones whose
    lease ended by `now` (their worker died), which are queued again as a new attempt first —
    or declared dead when a submission has used up its attempts (it keeps killing workers)."""
    settings = ctx.settings
    out: list[Submission] = []
    for sub in await ctx.store.due_submissions(now, limit):
        if sub.state == "running":
            expect = {"state": "running", "owner": sub.owner, "lease_until": sub.lease_until}
            at = time.time()
            if sub.attempts + 1 >= settings.async_max_attempts:
                error = "the worker running it stopped (lease expired) on every attempt"
                changes = outcomes.finished(
                    "dead",
                    dead_result(error),
                    at,
                    settings.async_result_ttl,
                    settings.async_callbacks.get(sub.contributor),
                )
                await ctx.store.amend_submission(
                    sub.id, expect, {**changes, "error": error, "attempts": sub.attempts + 1}
                )
                continue
            requeued = await ctx.store.update_submission(
                sub.id, expect, outcomes.lease_lost(sub.attempts, at)
            )
            if requeued is None:
                continue
            log.warning("submission %s lost its worker; queued again", sub.id)
            sub = requeued
        out.append(sub)
    return out


async def deliver_callback(ctx: JobContext, sub: Submission) -> bool:
    """POST the finished submission's answer to its contributor's endpoint, signed; records the
    attempt on the submission (retried by `deliver_callbacks` with backoff)."""
    assert sub.callback is not None
    configured = ctx.settings.async_callbacks.get(sub.contributor)
    delivered, error = False, "the contributor's callback is no longer configured"
    if configured is not None:
        body, answer_headers = status_answer(sub)
        raw = orjson.dumps(body)
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/fhir+json",
            "Content-Location": status_url(sub.request["base"], sub.id),
            "X-Micdr-Submission": sub.id,
            "X-Original-Status": answer_headers["X-Original-Status"],
            "X-Micdr-Signature": outcomes.signature(configured.secret, timestamp, raw),
        }
        try:
            response = await ctx.outbound.post(
                configured.url, content=raw, headers=headers, timeout=CALLBACK_TIMEOUT_SECONDS
            )
            delivered = 200 <= response.status_code < 300
            error = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
    changes = outcomes.callback_after(sub.callback, delivered, error, time.time())
    await ctx.store.amend_submission(sub.id, {"state": sub.state}, {"callback": changes})
    if not delivered:
        log.warning("callback for submission %s failed: %s", sub.id, error)
    return delivered


async def deliver_callbacks(ctx: JobContext, now: float) -> int:
    """Retry every callback that is due; answers how many were delivered."""
    delivered = 0
    for sub in await ctx.store.undelivered_callbacks(now, 100):
        delivered += await deliver_callback(ctx, sub)
    return delivered


async def purge_submissions(ctx: JobContext, now: float) -> int:
    """Forget finished submissions a TTL after their results expired (until then the status
    URL answers 410; afterwards 404), and remove the files of exports no longer wanted."""
    await purge_exports(ctx, now)
    return await ctx.store.purge_submissions(now - ctx.settings.async_result_ttl)
