"""Store wrappers for tests: each implements the DocumentStore port by delegating to another
store (its contract suite runs on :class:`WriteRecorder`, ``tests/contract/conftest.py``).

* :class:`WriteRecorder` records every committed write per document (``put``, ``create`` that
  created, ``delete``, a transaction's writes once it commits, each applied write of a
  ``write_batch``) with the time it happened, and :meth:`WriteRecorder.hot_documents` names
  the documents written more than once per second on average over any 10-second window —
  Firestore's documented sustained rate per document.
* :class:`Interleaving` runs a callback just before a ``write_batch`` reaches the store: the
  moment a concurrent writer (a webhook) can slip in between a page's read and its batch.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from shared.adapters.delegating import DelegatingStore
from shared.ports import ConditionalWrite, Document

WINDOW = 10.0  # seconds
PER_SECOND = 1.0


class _RecordingTransaction:
    def __init__(self, tx: Any, writes: list[tuple[str, str]]) -> None:
        self._tx, self._writes = tx, writes

    def get(self, collection: str, doc_id: str) -> Document | None:
        return self._tx.get(collection, doc_id)

    def put(self, collection: str, doc_id: str, data: Document) -> None:
        self._tx.put(collection, doc_id, data)
        self._writes.append((collection, doc_id))

    def delete(self, collection: str, doc_id: str) -> None:
        self._tx.delete(collection, doc_id)
        self._writes.append((collection, doc_id))


class WriteRecorder(DelegatingStore):
    def __init__(self, inner: Any, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(inner)
        self._clock = clock
        self._lock = threading.Lock()
        self.writes: dict[tuple[str, str], list[float]] = defaultdict(list)

    def _record(self, keys: Sequence[tuple[str, str]]) -> None:
        now = self._clock()
        with self._lock:
            for key in keys:
                self.writes[key].append(now)

    def put(self, collection: str, doc_id: str, data: Document) -> None:
        self.inner.put(collection, doc_id, data)
        self._record([(collection, doc_id)])

    def create(self, collection: str, doc_id: str, data: Document) -> bool:
        created = self.inner.create(collection, doc_id, data)
        if created:
            self._record([(collection, doc_id)])
        return created

    def delete(self, collection: str, doc_id: str) -> None:
        self.inner.delete(collection, doc_id)
        self._record([(collection, doc_id)])

    def write_batch(self, writes: Sequence[ConditionalWrite]) -> list[ConditionalWrite]:
        failed = self.inner.write_batch(writes)
        refused = {(w.collection, w.doc_id) for w in failed}
        self._record([(w.collection, w.doc_id) for w in writes
                      if (w.collection, w.doc_id) not in refused])
        return failed

    def transaction(self, fn: Callable[[Any], Any], *, max_attempts: int = 5) -> Any:
        attempts: list[list[tuple[str, str]]] = []

        def recorded(tx: Any) -> Any:
            attempts.append([])  # only the attempt that commits counts
            return fn(_RecordingTransaction(tx, attempts[-1]))

        result = self.inner.transaction(recorded, max_attempts=max_attempts)
        self._record(attempts[-1] if attempts else [])
        return result

    def hot_documents(self, window: float = WINDOW,
                      per_second: float = PER_SECOND) -> dict[tuple[str, str], int]:
        """Documents written more than ``per_second × window`` times within some ``window``
        seconds, with the most writes seen in one window."""
        limit, hot = per_second * window, {}
        with self._lock:
            items = [(key, sorted(times)) for key, times in self.writes.items()]
        for key, times in items:
            most, start = 0, 0
            for end, moment in enumerate(times):
                while moment - times[start] >= window:
                    start += 1
                most = max(most, end - start + 1)
            if most > limit:
                hot[key] = most
        return hot


class Interleaving(DelegatingStore):
    """Delegates everything; ``before_batch(writes)`` runs before each ``write_batch``."""

    def __init__(self, inner: Any,
                 before_batch: Callable[[Sequence[ConditionalWrite]], None]) -> None:
        super().__init__(inner)
        self._before = before_batch

    def write_batch(self, writes: Sequence[ConditionalWrite]) -> list[ConditionalWrite]:
        self._before(writes)
        return self.inner.write_batch(writes)
