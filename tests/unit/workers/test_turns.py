"""`take_turn`: one job of a process drains at a time; the others leave and ask it to look
again (used by projection and by the subscription evaluation ahead of it), for a bounded
time."""

from __future__ import annotations

import asyncio
import time

import pytest

from workers.context import Turn
from workers.turns import take_turn


async def test_a_second_job_leaves_at_once_and_the_first_drains_again() -> None:
    turn = Turn()
    calls: list[str] = []
    held = asyncio.Event()
    release = asyncio.Event()

    async def drain(until: float) -> int:
        calls.append("drain")
        if len(calls) == 1:
            held.set()
            await release.wait()
        return 1

    first = asyncio.create_task(take_turn(turn, drain))
    await held.wait()
    assert await take_turn(turn, drain) == 0  # left without draining
    assert await take_turn(turn, drain) == 0
    assert calls == ["drain"]
    release.set()
    assert await first == 2  # it looked once more for the two that left, not twice more
    assert calls == ["drain", "drain"]
    assert await take_turn(turn, drain) == 1  # alone now: it drains itself
    assert not turn.lock.locked() and not turn.again


async def test_a_failing_drain_frees_the_turn() -> None:
    turn = Turn()

    async def drain(until: float) -> int:
        raise RuntimeError("the store is down")

    with pytest.raises(RuntimeError, match="the store is down"):  # reaches the job's retry
        await take_turn(turn, drain)
    assert not turn.lock.locked()


async def test_the_turn_ends_when_its_time_is_up_though_asked_again() -> None:
    """Under a backlog that never empties every commit asks again; the job must still end
    before arq's timeout cancels it mid-batch. Each drain is told when to stop."""
    turn = Turn()
    deadlines: list[float] = []

    async def drain(until: float) -> int:
        deadlines.append(until)
        turn.again = True  # another commit's job asked meanwhile
        await asyncio.sleep(0.05)
        return 1

    started = time.monotonic()
    done = await take_turn(turn, drain, seconds=0.2)
    assert 0.2 <= time.monotonic() - started < 0.5
    assert done == len(deadlines) and 3 <= done <= 5
    assert len(set(deadlines)) == 1 and abs(deadlines[0] - (started + 0.2)) < 0.05
    assert not turn.lock.locked()
