"""What the bulk jobs (workers/export.py, workers/bulk_import.py) share: running one to its end
or until it stops being this worker's, and saving its checkpoint under that fence."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from app.store.port import Submission
from workers.context import JobContext


class Stopped(Exception):
    """The job is no longer this worker's: cancelled, or its lease was taken over."""


async def run_bulk_job(
    ctx: JobContext, sub: Submission, produce: Callable[[JobContext, Submission], Awaitable[None]]
) -> str:
    """Run a claimed bulk job; answers the state it left: `done`, or `lost` (a cancelled
    job's files are removed)."""
    try:
        await produce(ctx, sub)
    except Stopped:
        current = await ctx.store.submission(sub.id)
        if current is None or current.state == "cancelled":
            assert ctx.services.files is not None, "app/deploy hands every process its files"
            await ctx.services.files.remove(sub.id)
        return "lost"
    return "done"


async def save_checkpoint(
    ctx: JobContext,
    sub: Submission,
    key: str,
    state: Mapping[str, Any],
    progress_note: str,
    changes: Mapping[str, Any] | None = None,
) -> None:
    """Save a bulk job's checkpoint under journal `key`, renewing its lease, only while the
    job is still running and this worker's (else `Stopped`)."""
    now = time.time()
    saved = await ctx.store.amend_submission(
        sub.id,
        {"state": "running", "owner": ctx.worker},
        {
            f"journal.{key}": state,
            "progress": progress_note,
            "lease_until": now + ctx.settings.async_lease_seconds,
            "updated": now,
            **(changes or {}),
        },
    )
    if not saved:
        raise Stopped(sub.id)
