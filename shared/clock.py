"""The system clock (the :class:`shared.ports.Clock` adapter) and timestamp helpers."""

from __future__ import annotations

import time
from datetime import UTC, datetime


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    # The C function itself, not a wrapper: the data keyring reads it on every encryption.
    monotonic = staticmethod(time.monotonic)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def isoformat(moment: datetime) -> str:
    """Fixed-width UTC ISO-8601 (microseconds, ``Z``) so stored strings sort by time."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
