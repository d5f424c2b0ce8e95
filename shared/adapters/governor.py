"""Firestore's 500/50/5 rule for a sync's batched writes (``gcp`` backend only).

Firestore documents how to ramp up traffic to a new collection (or a new range of ids):
start at no more than 500 operations per second, then increase by at most 50 % every
5 minutes. A first sync of a large account — a backfill of every record — is exactly such
traffic, so :class:`GovernedStore` wraps the store a fetch run writes through and makes each
:meth:`~shared.ports.DocumentStore.write_batch` wait for :class:`WriteGovernor`:

* per collection, writes are paced to ``start`` per second (``KEYWAY_WRITE_RAMP_START``,
  500), ``start × 1.5`` after 5 minutes of traffic, ``start × 1.5²`` after 10, and so on;
* a collection that sees no write for 5 minutes starts over at ``start``;
* pacing is a schedule, not a sleep per write: a batch of ``n`` writes is sent as soon as the
  collection's schedule allows and moves it ``n / rate`` seconds on, so the average rate
  over any stretch never exceeds the allowed one.

Per process: each fetch instance paces itself (syncs of different connections run on
different instances, so ``k`` concurrent backfills may reach ``k × start`` together). The
embedded and emulator backends are not governed (no such limit there).
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.adapters.delegating import DelegatingStore
from shared.ports import (
    MAX_BATCH_WRITES,
    Clock,
    ConditionalWrite,
)

START = 500.0  # writes per second to a collection at first
GROWTH = 1.5  # +50 % …
STEP = 300.0  # … every 5 minutes
IDLE = 300.0  # a pause this long starts the ramp over


@dataclass
class _Ramp:
    began: float
    next_free: float
    last: float


class WriteGovernor:
    def __init__(self, clock: Clock, start: float = START) -> None:
        if start <= 0:
            raise ValueError("a write ramp starts above 0 writes per second")
        self._clock, self.start = clock, start
        self._lock = threading.Lock()
        self._ramps: dict[str, _Ramp] = {}

    def rate(self, collection: str) -> float:
        """The writes per second ``collection`` is allowed now."""
        now = self._clock.monotonic()
        with self._lock:
            ramp = self._ramps.get(collection)
            if ramp is None or now - ramp.last >= IDLE:
                return self.start
            return self.start * GROWTH ** math.floor((now - ramp.began) / STEP)

    def admit(self, collection: str, writes: int) -> None:
        """Wait until ``writes`` more writes to ``collection`` fit its schedule."""
        if writes <= 0:
            return
        rate = self.rate(collection)
        now = self._clock.monotonic()
        with self._lock:
            ramp = self._ramps.get(collection)
            if ramp is None or now - ramp.last >= IDLE:
                ramp = self._ramps[collection] = _Ramp(now, now, now)
            send_at = max(now, ramp.next_free)
            ramp.next_free, ramp.last = send_at + writes / rate, send_at
        if send_at > now:
            self._clock.sleep(send_at - now)


class GovernedStore(DelegatingStore):
    """A :class:`~shared.ports.DocumentStore` whose ``write_batch`` waits for the governor;
    everything else goes straight to ``inner``."""

    def __init__(self, inner: Any, governor: WriteGovernor) -> None:
        super().__init__(inner)
        self.governor = governor

    def write_batch(self, writes: Sequence[ConditionalWrite]) -> list[ConditionalWrite]:
        batch = list(writes)
        if len(batch) <= MAX_BATCH_WRITES:  # one too large is refused at once, not paced
            per = Counter(w.collection for w in batch if isinstance(w, ConditionalWrite))
            for collection, count in per.items():
                self.governor.admit(collection, count)
        return self.inner.write_batch(batch)


_PROCESS: dict[float, WriteGovernor] = {}  # one per process: the ramp outlives a run
_PROCESS_LOCK = threading.Lock()


def governed(store: Any, backend: str, start: float, clock: Clock) -> Any:
    """``store`` behind this process's :class:`WriteGovernor` on the ``gcp`` backend
    (``start`` > 0; 0 turns it off); any other backend's store as it is."""
    if backend != "gcp" or start <= 0:
        return store
    with _PROCESS_LOCK:
        governor = _PROCESS.setdefault(start, WriteGovernor(clock, start))
    return GovernedStore(store, governor)
