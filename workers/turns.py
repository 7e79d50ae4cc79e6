"""Draining the outbox in turn: one job of a process at a time does a kind of work, the others
leave at once and ask it to look again (`Turn`, workers/context.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from workers.context import Turn


async def take_turn(turn: Turn, drain: Callable[[], Awaitable[int]]) -> int:
    """Run `drain` unless a job of this process already does: then ask that job to look again
    (for the commits rung meanwhile) and answer 0 at once, freeing the slot for other jobs. The
    job draining looks again until no one asked, so a commit whose job left is handled all the
    same; if it fails, its retry (or the reconciler) takes the outbox over."""
    if turn.lock.locked():
        turn.again = True
        return 0
    async with turn.lock:
        done = 0
        while True:
            turn.again = False
            done += await drain()
            if not turn.again:
                return done
