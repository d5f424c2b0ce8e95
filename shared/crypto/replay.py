"""Replay guard: each sealed envelope's nonce opens at most once.

A nonce is claimed by creating the document ``<collection>/<nonce>`` inside a store
transaction when it is absent; a second claim — from any thread, process or function
instance sharing the store — finds it and is refused. Documents hold::

    {"expires_at": "2025-01-01T00:05:00.000000Z",   # shared.clock.isoformat, queryable
     "claimed_at": "2025-01-01T00:00:01.234567Z",
     "purge_at": datetime(2025, 1, 1, 0, 6, tzinfo=UTC)}  # expiry + grace, for Firestore TTL

:meth:`ReplayGuard.purge_expired` deletes documents whose envelope expired more than
``grace_seconds`` ago (the grace covers clock skew between instances: until then a late clock
could still accept the envelope, so its nonce must stay remembered).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from shared import retention
from shared.clock import isoformat
from shared.errors import InvalidInput
from shared.ports import Clock, DocumentStore, Filter, Order, Transaction

COLLECTION = "envelope_nonces"
NONCE_HEX_CHARS = 32
_NONCE = re.compile(f"[0-9a-f]{{{NONCE_HEX_CHARS}}}")


def is_valid_nonce(nonce: object) -> bool:
    """True for a string of exactly 32 lowercase hex characters (128 bits)."""
    return isinstance(nonce, str) and _NONCE.fullmatch(nonce) is not None


class ReplayGuard:
    """Remembers claimed nonces in ``store`` (see the module docstring)."""

    def __init__(
        self,
        store: DocumentStore,
        clock: Clock,
        collection: str = COLLECTION,
        *,
        grace_seconds: int = 60,
    ) -> None:
        self._store = store
        self._clock = clock
        self._collection = collection
        self._grace = timedelta(seconds=grace_seconds)

    def __repr__(self) -> str:
        return f"ReplayGuard(collection={self._collection!r})"

    def claim(self, nonce: str, expires_at: int) -> bool:
        """Record ``nonce``; True if this call was first, False if it was already claimed.

        Atomic: of any number of concurrent claims of one nonce exactly one returns True.
        A malformed nonce or expiry → ``InvalidInput``.
        """
        if not is_valid_nonce(nonce):
            raise InvalidInput("nonce must be 32 lowercase hex characters")
        if type(expires_at) is not int or expires_at < 0:
            raise InvalidInput("expires_at must be non-negative unix seconds")
        expiry = datetime.fromtimestamp(expires_at, UTC)
        record = {"expires_at": isoformat(expiry), "claimed_at": isoformat(self._clock.now()),
                  **retention.purge_at(expiry + self._grace)}

        def attempt(tx: Transaction) -> bool:
            if tx.get(self._collection, nonce) is not None:
                return False
            tx.put(self._collection, nonce, dict(record))
            return True

        return self._store.transaction(attempt)

    def purge_expired(self, limit: int = 500) -> int:
        """Delete up to ``limit`` nonces expired more than the grace ago; return how many."""
        if type(limit) is not int or limit < 1:
            raise InvalidInput("limit must be a positive integer")
        cutoff = isoformat(self._clock.now() - self._grace)
        stale = self._store.query(
            self._collection,
            where=[Filter("expires_at", "<", cutoff)],
            order_by=[Order("expires_at")],
            limit=limit,
        )
        for snapshot in stale:
            self._store.delete(self._collection, snapshot.id)
        return len(stale)
