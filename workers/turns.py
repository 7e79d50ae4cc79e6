"""Draining the outbox in turn: one job of a process at a time does a kind of work, the others
leave at once and ask it to look again (`Turn`, workers/context.py)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from workers.context import Turn

# How long one job keeps a turn: well inside arq's job timeout (300 s), which would cancel it
# mid-batch under a backlog that never empties. What is left then is taken by the next job
# rung, or by the reconciler (every 15 s).
TURN_SECONDS = 60.0


async def take_turn(
    turn: Turn, drain: Callable[[float], Awaitable[int]], seconds: float = TURN_SECONDS
) -> int:
    """Run `drain` unless a job of this process already does: then ask that job to look again
    (for the commits rung meanwhile) and answer 0 at once, freeing the slot for other jobs. The
    job draining looks again until no one asked, so a commit whose job left is handled all the
    same; if it fails, its retry (or the reconciler) takes the outbox over. `drain` is given
    the `time.monotonic()` at which to stop, and is not called again after it."""
    if turn.lock.locked():
        turn.again = True
        return 0
    async with turn.lock:
        done, until = 0, time.monotonic() + seconds
        while True:
            turn.again = False
            done += await drain(until)
            if not turn.again or time.monotonic() >= until:
                return done
