"""Helpers shared by several test modules: a fake clock, a transactional counter for the
document stores and the message-bus test harness."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.errors import RetryableError
from shared.ports import Message, SubscriptionSpec, Transaction

COUNTERS = "counters"
POLL_TIMEOUT_S = 30.0


class FakeClock:
    """A :class:`Clock` that only moves when told to."""

    def __init__(self) -> None:
        self._now = datetime(2030, 1, 1, tzinfo=UTC)
        self._mono = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds


# ---- document store ------------------------------------------------------------------------
def increment(tx: Transaction) -> int:
    """Add one to ``counters/c`` inside a transaction (slowly, so a lost update would show)."""
    current = tx.get(COUNTERS, "c")
    assert current is not None
    time.sleep(0.002)  # widen the read-modify-write window so a lost update would show
    tx.put(COUNTERS, "c", {"n": current["n"] + 1})
    return current["n"] + 1


# ---- message bus ----------------------------------------------------------------------------
class Crash(BaseException):
    """Stands in for the process dying mid-handler: no adapter may catch it."""


@dataclass
class BusHarness:
    """A message bus under test, a suffix for unique names, and how to let time pass."""

    bus: Any
    suffix: str
    idle: Callable[[], None]  # let time pass between polls

    def spec(self, tag: str = "s", **overrides: Any) -> SubscriptionSpec:
        spec = SubscriptionSpec(
            name=f"sub-{tag}-{self.suffix}", topic=f"top-{tag}-{self.suffix}",
            dead_letter_topic=f"dlt-{tag}-{self.suffix}", max_attempts=5,
            min_backoff=0.0, max_backoff=1.0, ack_deadline=10)
        spec = replace(spec, **overrides)
        self.bus.ensure_subscription(spec)
        return spec

    def poll(self, subscription: str, handler: Callable[[Message], None],
             until: Callable[[], bool], timeout: float = POLL_TIMEOUT_S) -> None:
        """Pull until ``until()`` holds (checked before each pull), or fail at the deadline."""
        deadline = time.monotonic() + timeout
        while not until():
            assert time.monotonic() < deadline, "condition not reached before the deadline"
            if self.bus.pull(subscription, handler) == 0:
                self.idle()

    def quiet(self, subscription: str, handler: Callable[[Message], None],
              polls: int = 15) -> None:
        """Pull ``polls`` times, letting time pass in between (to show nothing else arrives)."""
        for _ in range(polls):
            self.bus.pull(subscription, handler)
            self.idle()


def recorder(fail: Callable[[Message], None] = lambda m: None) -> tuple[list[Message], Any]:
    """A handler that records every delivery, then calls ``fail`` (which may raise)."""
    seen: list[Message] = []

    def handler(message: Message) -> None:
        seen.append(message)
        fail(message)

    return seen, handler


def always_retry(message: Message) -> None:
    raise RetryableError("downstream unavailable")
