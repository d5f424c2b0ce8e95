"""What the embedded SQLite adapters share: one in-process write lock per file, and the
durability setting.

SQLite lets one writer in at a time and makes the others wait in its busy handler, which
sleeps in growing steps (up to 100 ms a try): under many threads a writer can wait for seconds
while the lock is free most of the time. Writers of the same file in one process therefore
queue on a Python lock first (woken as soon as it is released) and only contend through
SQLite with other processes. Reentrant, so store calls made inside a transaction on the same
thread join it. Waiting is bounded like SQLite's own wait (``busy_timeout``): past it the
caller gets the same error a busy database gives.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

_LOCKS: dict[str, threading.RLock] = {}
_GUARD = threading.Lock()


def writer_lock(path: Path) -> threading.RLock:
    """The process's write lock of the SQLite file at ``path`` (same file → same lock)."""
    key = os.path.realpath(path)
    with _GUARD:
        lock = _LOCKS.get(key)
        if lock is None:
            lock = _LOCKS[key] = threading.RLock()
        return lock


@contextmanager
def holding(lock: threading.RLock, timeout: float,
            busy: Callable[[], Exception]) -> Iterator[None]:
    """Hold ``lock``, waiting at most ``timeout`` seconds; then raise ``busy()``."""
    if not lock.acquire(timeout=max(timeout, 0.0)):
        raise busy()
    try:
        yield
    finally:
        lock.release()


SYNCHRONOUS = {"normal": "NORMAL", "full": "FULL"}


def synchronous_pragma(level: str) -> str:
    """The ``PRAGMA synchronous`` statement for ``level`` (``normal`` | ``full``)."""
    if level not in SYNCHRONOUS:
        raise ValueError(f"synchronous must be one of {sorted(SYNCHRONOUS)}")
    return f"PRAGMA synchronous={SYNCHRONOUS[level]}"


class Doorbell:
    """Rung after every committed publish to one bus file in this process, so a puller of that
    file can sleep until there is something new instead of polling (:meth:`wait`)."""

    def __init__(self) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._rings = 0

    def ring(self) -> None:
        with self._changed:
            self._rings += 1
            self._changed.notify_all()

    def rings(self) -> int:
        """How often it has rung: read before looking, pass to :meth:`wait`."""
        return self._rings

    def wait(self, seen: int, timeout: float) -> bool:
        """Block until it has rung more than ``seen`` times (True) or ``timeout`` passed."""
        with self._changed:
            return self._changed.wait_for(lambda: self._rings != seen, timeout)


_BELLS: dict[str, Doorbell] = {}


def doorbell(path: Path) -> Doorbell:
    """The process's doorbell of the bus file at ``path`` (same file → same doorbell)."""
    key = os.path.realpath(path)
    with _GUARD:
        bell = _BELLS.get(key)
        if bell is None:
            bell = _BELLS[key] = Doorbell()
        return bell
