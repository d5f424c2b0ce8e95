"""Every write to an action document (see :mod:`shared.actions.model`), one transaction each.

Each function names the action by ``(tenant, action_id)`` and keys it with
:func:`shared.actions.model.doc_id`: another tenant's action of the same id is never touched.

The status only moves forward: ``pending`` → ``done`` | ``failed``, never back and never from
one final status to the other, so a late or duplicate writer cannot undo an outcome.

The attempt lease: before posting, ``act-P`` claims ``attempt`` (``started_at``,
``first_started_at``, ``marker``, ``count`` and ``lease_until`` = now + :data:`ATTEMPT_LEASE`).
While a lease is live another delivery of the same action does not post (it would race the
first one past the marker check); after it lapses — the holder crashed — the next delivery
*resumes*: it looks for the marker before posting. A holder that fails retryably releases its
lease at once.

The queue (write pacing, :mod:`shared.actions.pacing`): an action that finds no write slot, or
whose post the provider refused for its rate limit, is not posted; :func:`queue` records
``queued_until`` (when to try again, shown by the API) and keeps the job's ``action`` under
``queued_action`` so it can be asked for again — the only time the comment body is stored on
the document. The scheduler's tick claims a queued action once its time has come
(:func:`claim_queued`: ``queued_until`` cleared, ``requeued_at`` set, in one transaction, so
two ticks never both re-request it) and asks the vault again; ``finish`` and ``fail`` drop the
queue fields.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from shared.actions.model import COLLECTION, DONE, FAILED, PENDING, doc_id, marker
from shared.clock import isoformat
from shared.notify import sources as notify
from shared.ports import Ports, Transaction

ATTEMPT_LEASE = timedelta(seconds=120)
Outcome = Literal["missing", "finished", "busy", "first", "resume"]


@dataclass(frozen=True)
class Begun:
    """What :func:`begin` found: ``first``/``resume`` mean this caller holds the lease."""

    outcome: Outcome
    doc: dict[str, Any] | None


def _mine(doc: dict[str, Any] | None, tenant: str) -> bool:
    return doc is not None and doc.get("tenant") == tenant


def leased(doc: dict[str, Any], now: datetime) -> bool:
    """True while another delivery holds a live attempt lease on ``doc``."""
    until = (doc.get("attempt") or {}).get("lease_until")
    return isinstance(until, str) and until > isoformat(now)


def create(ports: Ports, tenant: str, action_id: str,
           doc: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Create ``tenant``'s action ``action_id`` unless it exists: (stored document, created?)."""
    key = doc_id(tenant, action_id)

    def write(tx: Transaction) -> tuple[dict[str, Any], bool]:
        current = tx.get(COLLECTION, key)
        if current is not None:
            return current, False
        tx.put(COLLECTION, key, doc)
        return doc, True

    return ports.business.transaction(write)


def _update(ports: Ports, action_id: str, tenant: str,
            change: Callable[[dict[str, Any]], dict[str, Any]]) -> bool:
    """Merge ``change(doc)`` into a still-pending action of ``tenant``; False when it is not."""
    key = doc_id(tenant, action_id)

    def write(tx: Transaction) -> bool:
        doc = tx.get(COLLECTION, key)
        if not _mine(doc, tenant) or doc.get("status") != PENDING:
            return False
        tx.put(COLLECTION, key, {**doc, **change(doc)})
        return True

    return ports.business.transaction(write)


def mark_published(ports: Ports, action_id: str, tenant: str, now: datetime) -> bool:
    return _update(ports, action_id, tenant, lambda doc: {"published_at": isoformat(now)})


def begin(ports: Ports, action_id: str, tenant: str, now: datetime) -> Begun:
    """Claim the attempt lease before posting (see the module docstring)."""
    key = doc_id(tenant, action_id)

    def write(tx: Transaction) -> Begun:
        doc = tx.get(COLLECTION, key)
        if not _mine(doc, tenant):
            return Begun("missing", None)
        if doc.get("status") != PENDING:
            return Begun("finished", doc)
        if leased(doc, now):
            return Begun("busy", doc)
        previous = doc.get("attempt") or {}
        attempt = {"started_at": isoformat(now), "lease_until": isoformat(now + ATTEMPT_LEASE),
                   "first_started_at": previous.get("first_started_at") or isoformat(now),
                   "marker": marker(action_id), "count": int(previous.get("count") or 0) + 1}
        tx.put(COLLECTION, key, {**doc, "attempt": attempt})
        return Begun("resume" if previous else "first", doc)

    return ports.business.transaction(write)


def _released(doc: dict[str, Any]) -> dict[str, Any] | None:
    attempt = doc.get("attempt")
    return {**attempt, "lease_until": None} if isinstance(attempt, dict) else None


_UNQUEUED = {"queued_until": None, "queued_action": None}


def finish(ports: Ports, action_id: str, tenant: str, now: datetime,
           result: dict[str, Any]) -> bool:
    """``done`` with the provider's comment id, its URL and the comment record id."""
    return _ended(ports, action_id, tenant, _update(ports, action_id, tenant, lambda doc: {
        **result, **_UNQUEUED, "status": DONE, "reason": None, "last_error": None,
        "finished_at": isoformat(now), "attempt": _released(doc)}))


def fail(ports: Ports, action_id: str, tenant: str, now: datetime, reason: str) -> bool:
    """``failed`` with a stable ``reason``: nothing was (or will be) posted."""
    return _ended(ports, action_id, tenant, _update(ports, action_id, tenant, lambda doc: {
        **_UNQUEUED, "status": FAILED, "reason": reason, "finished_at": isoformat(now),
        "attempt": _released(doc)}))


def queue(ports: Ports, action_id: str, tenant: str, until: datetime, key: str,
          action: dict[str, Any]) -> bool:
    """Not posted now: try again at ``until`` (``key`` says why; the lease, if held, is
    released). False when the action is no longer this tenant's pending one."""
    return _update(ports, action_id, tenant, lambda doc: {
        "queued_until": isoformat(until), "queued_action": action, "last_error": key,
        "attempt": _released(doc) if doc.get("attempt") else None})


def claim_queued(ports: Ports, action_id: str, tenant: str,
                 now: datetime) -> dict[str, Any] | None:
    """Take a queued action whose time has come off the queue (once); the document as it was,
    or None when it is not pending, not queued, or not due yet."""
    key, stamp = doc_id(tenant, action_id), isoformat(now)

    def write(tx: Transaction) -> dict[str, Any] | None:
        doc = tx.get(COLLECTION, key)
        due = (doc or {}).get("queued_until")
        if not _mine(doc, tenant) or doc.get("status") != PENDING or not due or due > stamp:
            return None
        tx.put(COLLECTION, key, {**doc, "queued_until": None, "requeued_at": stamp})
        return doc

    return ports.business.transaction(write)


def _ended(ports: Ports, action_id: str, tenant: str, changed: bool) -> bool:
    """Notify ``action.completed`` / ``action.failed`` once the status became final."""
    if changed:
        notify.action_ended(ports, tenant, action_id,
                            ports.business.get(COLLECTION, doc_id(tenant, action_id)) or {})
    return changed


def note_error(ports: Ports, action_id: str, tenant: str, key: str, *,
               release: bool) -> bool:
    """Remember a retryable failure's stable key (shown by the API); ``release`` the lease."""
    return _update(ports, action_id, tenant, lambda doc: {
        "last_error": key, "attempt": _released(doc) if release else doc.get("attempt")})


def note_reseal(ports: Ports, action_id: str, tenant: str, key: str) -> int | None:
    """Count one request for a fresh envelope (keeping ``key`` as the last error); the new
    count, or None when the action is no longer this tenant's pending one."""
    counted: list[int] = []

    def change(doc: dict[str, Any]) -> dict[str, Any]:
        counted.append(int(doc.get("reseals") or 0) + 1)
        return {"last_error": key, "reseals": counted[-1]}

    return counted[-1] if _update(ports, action_id, tenant, change) else None
