"""What to do after one attempt to deliver a notification: the pure decision the delivery job
performs (retry later, give up, carry on), so that the job holds no policy of its own.

- A rest-hook notification is delivered when the endpoint answers 2xx (R4 subscription.html,
  rest-hook; Backport IG, "Receiving notifications"). Anything else, or no answer, is a
  failure.
- A failed event notification is tried again after a delay doubling from `first_delay` up to
  `max_delay`; after `max_failures` consecutive failures the subscription goes to `error`,
  with the last failure as its reason. Its events stay kept for `$events`.
- A handshake is tried once: on failure the subscription goes to `error` at once (Backport IG:
  a server that cannot complete the handshake sets the subscription to error), on success it
  becomes `active`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Attempt",
    "Delivered",
    "Failed",
    "Retry",
    "RetryPolicy",
    "Step",
    "after_attempt",
    "after_handshake",
    "next_step",
]


@dataclass(frozen=True)
class Attempt:
    """The endpoint's answer: its HTTP status, or None with `error` when none came (refused,
    timed out), or `unsent` when the endpoint rule refused it at send time (nothing was sent)."""

    status: int | None
    error: str | None = None
    unsent: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def describe(self) -> str:
        if self.status is not None:
            return f"the endpoint answered HTTP {self.status}"
        if self.unsent:
            return f"not sent: {self.error}"
        return f"the endpoint could not be reached: {self.error or 'no answer'}"


@dataclass(frozen=True)
class RetryPolicy:
    first_delay: float = 1.0  # seconds
    max_delay: float = 300.0
    max_failures: int = 8


@dataclass(frozen=True)
class Delivered:
    """Carry on with the next event; the failure count starts again at 0."""


@dataclass(frozen=True)
class Retry:
    """Try the same notification again after `delay` seconds; `failures` so far."""

    delay: float
    failures: int


@dataclass(frozen=True)
class Failed:
    """Stop delivering: the subscription's status becomes `error` with `reason`."""

    reason: str


Decision = Delivered | Retry | Failed


def after_attempt(failures_before: int, attempt: Attempt, policy: RetryPolicy) -> Decision:
    """The decision after one attempt at an event notification or a heartbeat, given how many
    consecutive attempts had failed before it."""
    if attempt.ok:
        return Delivered()
    failures = failures_before + 1
    if failures >= policy.max_failures:
        return Failed(f"{attempt.describe()} ({failures} consecutive failed attempts)")
    delay = min(policy.first_delay * 2 ** (failures - 1), policy.max_delay)
    return Retry(delay, failures)


def after_handshake(attempt: Attempt) -> Delivered | Failed:
    """Delivered: the subscription becomes `active`; Failed: `error` with the reason."""
    if attempt.ok:
        return Delivered()
    return Failed(f"handshake failed: {attempt.describe()}")


Step = Literal["wait", "turn-off", "handshake", "events", "heartbeat"]


def next_step(
    status: str,
    end: str | None,
    heartbeat_period: int | None,
    pending: bool,
    retry_at: float,
    last_sent: float,
    now: float,
    now_iso: str,
) -> Step:
    """What one subscription needs next, from its stored status and its delivery progress:
    `turn-off` once its `end` has passed (subscription.html: the server turns it off),
    `handshake` while `requested`, then its pending `events` in order, a `heartbeat` when
    nothing was sent for `heartbeat_period` seconds; `wait` for anything else: `off` and
    `error` send nothing, and a failed attempt waits until `retry_at`."""
    if status not in {"requested", "active"}:
        return "wait"
    if end is not None and end <= now_iso:
        return "turn-off"
    if now < retry_at:
        return "wait"
    if status == "requested":
        return "handshake"
    if pending:
        return "events"
    if heartbeat_period is not None and now - last_sent >= heartbeat_period:
        return "heartbeat"
    return "wait"
