"""Requests granted in blocks: one store transaction per block of requests, not two per
request, so a token's budget document is not a hot document (Firestore sustains about one
write per second per document).

A :class:`Blocks` keeps, for one :class:`~shared.fetch.budget.TokenBudget` in one process,
the block it holds per purpose: a lease in the budget document that counts as ``count``
requests in flight (so other instances cannot spend them) and a local count of the grants
left. :meth:`Blocks.take` hands out one grant locally; when none is left, the block has lived
half its lease, or an answer said the quota is down to the purpose's floor, it exchanges the
block in one transaction (:meth:`TokenBudget._exchange`): the old lease is dropped, the
answers' rate-limit readings and the requests counted locally since are folded in, and a new
block is leased. :meth:`Blocks.close` returns what is held (the end of a run); a block never
returned expires with its lease.

Block size: :data:`FIRST_BLOCK` grants, then the rate the last block was used at times
:data:`BLOCK_SECONDS` (so the document sees at most about one write per
:data:`BLOCK_SECONDS` at any request rate), between 1 and :data:`MAX_BLOCK`, never more than
the budget can spend down to the purpose's floor.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.fetch.errors import BudgetExhausted

FIRST_BLOCK = 10
MAX_BLOCK = 250
BLOCK_SECONDS = 2.0


@dataclass
class Pending:
    """What the held block's answers said and spent, folded in at the next exchange."""

    readings: list[tuple[int, int, datetime]] = field(default_factory=list)
    counted: int = 0  # requests of a locally counted budget (no quota headers)
    window: tuple[int, timedelta] | None = None  # that budget's (limit, window)

    def empty(self) -> bool:
        return not self.readings and not self.counted


@dataclass
class _Block:
    lease: str | None = None
    size: int = 0
    left: int = 0
    started: float = 0.0
    in_flight: set[str] = field(default_factory=set)


class Blocks:
    def __init__(self, budget: Any, monotonic: Any = time.monotonic) -> None:
        self._budget, self._monotonic = budget, monotonic
        self._lock = threading.Lock()
        self._held: dict[str, _Block] = {}
        self.pending = Pending()

    def take(self, purpose: str) -> str:
        """One request's grant (a local lease id), exchanging the block when it is spent."""
        with self._lock:
            block = self._held.setdefault(purpose, _Block())
            age = self._monotonic() - block.started
            if block.lease is None or block.left <= 0 or age >= self._budget.lease_seconds / 2:
                self._exchange(purpose, block)
            if len(block.in_flight) >= self._budget.max_concurrent:
                self._budget.refuse_slots()
            block.left -= 1
            grant = f"{block.lease}:{uuid.uuid4().hex[:8]}"
            block.in_flight.add(grant)
            return grant

    def give_back(self, grant: str, reading: tuple[int, int, datetime] | None) -> None:
        """A request ended; its answer's reading waits for the next exchange. A reading at or
        below the purpose's floor ends the block (the next request asks the store)."""
        with self._lock:
            for purpose, block in self._held.items():
                if grant in block.in_flight:
                    block.in_flight.discard(grant)
                    if reading is not None:
                        self.pending.readings.append(reading)
                        if reading[1] <= self._budget.floor(purpose):
                            block.left = 0
                    return

    def note(self, reading: tuple[int, int, datetime]) -> None:
        with self._lock:
            self.pending.readings.append(reading)

    def count(self, limit: int, window: timedelta) -> None:
        with self._lock:
            self.pending.counted += 1
            self.pending.window = (limit, window)

    def drop(self) -> None:
        """Forget the blocks held (the budget was just exhausted in the store)."""
        with self._lock:
            self._held.clear()

    def close(self) -> None:
        """Return every block held and fold in what is pending (one transaction, if any)."""
        with self._lock:
            leases = [b.lease for b in self._held.values() if b.lease is not None]
            if leases or not self.pending.empty():
                pending, self.pending = self.pending, Pending()
                self._budget._exchange(leases, pending, None, 0)
            self._held.clear()

    def _exchange(self, purpose: str, block: _Block) -> None:
        now = self._monotonic()
        used, elapsed = block.size - max(block.left, 0), now - block.started
        if block.lease is None:
            want = FIRST_BLOCK
        else:
            rate = used / elapsed if elapsed > 0 else float(MAX_BLOCK)
            want = min(MAX_BLOCK, max(1, math.ceil(rate * BLOCK_SECONDS)))
        pending, self.pending = self.pending, Pending()
        returned = [block.lease] if block.lease is not None else []
        block.lease, block.left, block.size = None, 0, 0
        try:
            lease, granted = self._budget._exchange(returned, pending, purpose, want)
        except BudgetExhausted:  # committed: what was pending is in the store
            raise
        except BaseException:  # not committed: keep it for the next exchange
            self.pending.readings[:0] = pending.readings
            self.pending.counted += pending.counted
            self.pending.window = self.pending.window or pending.window
            raise
        block.lease, block.size, block.left, block.started = lease, granted, granted, now
