"""The budget document's state and how an answer's reading is folded into it (see
:mod:`shared.fetch.budget`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.clock import isoformat, parse_iso
from shared.errors import InvalidInput
from shared.ports import Document

SAME_WINDOW = timedelta(seconds=5)  # reset times this close belong to one window


@dataclass
class _State:
    """The budget document, with expired leases dropped and a passed reset applied."""

    limit: int | None
    remaining: int | None
    reset_at: datetime | None
    observed_at: str | None
    leases: dict[str, dict[str, Any]]  # id → expires_at, purpose[, count: a block's size]

    @classmethod
    def load(cls, doc: Document | None, now: datetime) -> _State:
        doc = doc or {}
        stamp = isoformat(now)
        leases = {k: v for k, v in (doc.get("leases") or {}).items() if v["expires_at"] > stamp}
        reset_at = parse_iso(doc["reset_at"]) if doc.get("reset_at") else None
        remaining = doc.get("remaining")
        if reset_at is not None and now >= reset_at:
            remaining = doc.get("limit")
        return cls(doc.get("limit"), remaining, reset_at, doc.get("observed_at"), leases)

    def dump(self) -> Document:
        return {"limit": self.limit, "remaining": self.remaining,
                "reset_at": isoformat(self.reset_at) if self.reset_at else None,
                "observed_at": self.observed_at, "leases": self.leases}

    def spendable(self) -> int | None:
        """Requests left after the ones in flight; None when never observed."""
        if self.remaining is None:
            return None
        return self.remaining - sum(int(lease.get("count", 1)) for lease in self.leases.values())


def _check_observation(limit: int, remaining: int, reset_at: datetime) -> None:
    if limit < 0 or reset_at.tzinfo is None:
        raise InvalidInput("a rate observation needs limit >= 0 and an aware reset time")


def _merge(state: _State, stored_doc: bool, limit: int, remaining: int, reset_at: datetime,
           now: datetime) -> bool:
    """Fold one answer's headers into ``state`` (see the module docstring); False when they
    say nothing new (an older window, or a 304's unchanged headers): then nothing is written."""
    remaining = max(0, min(remaining, limit))
    stored = state.reset_at
    if stored is not None and now < stored and reset_at < stored - SAME_WINDOW:
        return False  # from an older window
    if (stored is not None and now < stored and state.remaining is not None
            and reset_at <= stored + SAME_WINDOW):
        remaining_now = min(state.remaining, remaining)
        reset_now = max(stored, reset_at)
    else:
        remaining_now, reset_now = remaining, reset_at
    if stored_doc and (state.limit, state.remaining, stored) == (limit, remaining_now, reset_now):
        return False
    state.limit, state.remaining, state.reset_at = limit, remaining_now, reset_now
    state.observed_at = isoformat(now)
    return True


def _spend(state: _State, requests: int, limit: int, window: timedelta, now: datetime) -> None:
    """Count ``requests`` against a budget keyway counts itself (see :meth:`TokenBudget.count`)."""
    if state.reset_at is None or now >= state.reset_at or state.remaining is None:
        state.limit, state.remaining = limit, max(0, limit - requests)
        state.reset_at = now + window
    else:
        state.remaining = max(0, state.remaining - requests)
    state.observed_at = isoformat(now)
