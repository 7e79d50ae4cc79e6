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

__all__ = [
    "Attempt",
    "Delivered",
    "Failed",
    "Retry",
    "RetryPolicy",
    "after_attempt",
    "after_handshake",
]


@dataclass(frozen=True)
class Attempt:
    """The endpoint's answer: its HTTP status, or None with `error` when none came (refused,
    timed out, refused by the endpoint rule at send time)."""

    status: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def describe(self) -> str:
        if self.status is not None:
            return f"the endpoint answered HTTP {self.status}"
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
