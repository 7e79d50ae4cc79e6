"""A per-call deadline on every store and index call an API request makes (MICDR_ENGINE_TIMEOUT).

`timed(port, seconds)` answers a proxy whose coroutine methods raise `EngineTimeout` (503)
after `seconds`. Writes (`commit`, `submit`, `update_submission`, `amend_submission`) are
shielded: the caller stops waiting, but the write itself runs to its end, so a timeout never
leaves half a commit behind (the store's recovery would repair one anyway;
docs/implementation/write-path.md). The client is told the outcome is unknown and can re-read
or resubmit (conditional creates are idempotent).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")
SHIELDED = frozenset({"commit", "submit", "update_submission", "amend_submission"})


class EngineTimeout(Exception):
    """An engine call took longer than MICDR_ENGINE_TIMEOUT."""

    def __init__(self, call: str, seconds: float, write: bool) -> None:
        super().__init__(f"{call} took longer than {seconds:g}s")
        self.call = call
        self.seconds = seconds
        self.write = write


class _Timed:
    def __init__(self, target: Any, seconds: float) -> None:
        self._target = target
        self._seconds = seconds

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not inspect.iscoroutinefunction(attr):
            return attr
        call = f"{type(self._target).__name__}.{name}"
        return _deadline(attr, call, self._seconds, name in SHIELDED)


def _deadline(
    method: Callable[..., Awaitable[Any]], call: str, seconds: float, shielded: bool
) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(method)
    async def run(*args: Any, **kwargs: Any) -> Any:
        work: Awaitable[Any] = method(*args, **kwargs)
        if shielded:
            work = asyncio.shield(work)
        try:
            return await asyncio.wait_for(work, seconds)
        except TimeoutError:
            raise EngineTimeout(call, seconds, shielded) from None

    return run


def timed(port: T, seconds: float) -> T:
    """`port` with a deadline on each of its coroutine methods."""
    if port is None or isinstance(port, _Timed):
        return port
    return _Timed(port, seconds)  # type: ignore[return-value]
