"""When each repository's full id sweep is due (:mod:`shared.fetch.reconcile`): one document
per repository, ``reconcile_state/<repository record id>`` (``connection``, ``due_at``, and
after a sweep ``swept_at`` and how many tombstones it wrote; purged with the connection's data,
:mod:`shared.scheduler.purge`). Kept apart from the sweep itself so that
``ingest`` can make a sweep due without loading the fetcher."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from shared.clock import isoformat, parse_iso
from shared.ports import DocumentStore

COLLECTION = "reconcile_state"
TOTALS_REFUSED = "totals_refused"  # the provider refuses the repository's list totals


def jitter(repository: str) -> float:
    """A stable fraction in [0, 1) of the period, per repository: spreads first sweeps."""
    digest = hashlib.sha256(repository.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_due(store: DocumentStore, repository: str, now: str, period: timedelta,
           connection: str) -> bool:
    """Whether ``repository``'s full sweep is due; the first time a repository is seen its
    due time is set ``jitter × period`` ahead (its first sync has just read everything)."""
    state = store.get(COLLECTION, repository)
    if state is None or not state.get("due_at"):  # (a list total's schedule may be there)
        first = parse_iso(now) + period * jitter(repository)
        store.put(COLLECTION, repository, {**(state or {}), "connection": connection,
                                           "due_at": isoformat(first)})
        return False
    return str(state.get("due_at") or "") <= now


def mark_due(store: DocumentStore, repository: str, now: str, connection: str) -> None:
    """Make ``repository``'s full sweep due at once (a repository back within reach)."""
    store.put(COLLECTION, repository, {**(store.get(COLLECTION, repository) or {}),
                                       "connection": connection, "due_at": now})
