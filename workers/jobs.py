"""Job functions: plain async functions over a `JobContext`, run by arq or the in-process runner.

Delivery is at least once, so every job is idempotent: projecting a commit twice writes the same
versions, which the index's version guard ignores.
"""

from __future__ import annotations

import logging

from indexing.project import project
from workers.context import JobContext

log = logging.getLogger("micdr.jobs")

PROJECT_BATCH = 500


async def project_commits(ctx: JobContext, batch: int = PROJECT_BATCH) -> int:
    """Index every committed, unindexed transaction (the outbox); answers resources projected."""
    projected = 0
    while True:
        commits = await ctx.store.unindexed(batch)
        if not commits:
            return projected
        refs = sorted({(t, i) for c in commits for t, i, _ in c.refs})
        current = await ctx.store.read_many(refs)
        ops = project(ctx.registry, current)
        await ctx.index.write(ops)
        await ctx.store.mark_indexed([c.seq for c in commits])
        projected += len(ops)
        log.debug("projected %d resources from %d commits", len(ops), len(commits))
