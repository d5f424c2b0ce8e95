"""Syncs that stopped before they finished are asked for again — without waiting for the next
scheduled sync and without an operator.

Three ways a sync stops early, one way back (a ``sync.requested`` with ``resume:
checkpoint`` to ``vault-P``, which seals a fresh envelope, so the next run resumes from the
walk checkpoints of :mod:`shared.fetch.cursor`):

* a transient failure (5xx, timeouts, a malformed answer, a store or bus outage):
  :func:`retry_later` ends the run ``retrying`` with ``retry_at`` = now + :func:`backoff`;
* a run that died (process killed, instance gone): its lease runs out while the status still
  says ``running``;
* a continuation or retry request that was lost or dead-lettered: the sync stays
  ``continuing`` or ``retrying`` past its ``recover_at``.

The scheduler's tick (:mod:`shared.scheduler.tick`) calls :func:`recover` for every sync whose
``recover_at`` has passed (one indexed range query), and ``fetch-P`` calls it when a
redelivered job's envelope was already opened or has expired (a sealed envelope is
single-use; the job is not). :func:`recover` claims the sync in a transaction (so the tick and
a redelivery never both ask), counts the ``attempt`` and moves ``recover_at`` one lease on,
in case this request is lost too. Past :data:`MAX_ATTEMPTS` the sync ends ``failed`` with the
last reason; a connection that is no longer active (``needs_reauth``, disconnected) ends it
``failed`` with the connection's reason instead of asking again.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from shared import messages
from shared.clock import isoformat, parse_iso
from shared.fetch import status
from shared.log import get_logger
from shared.ports import Ports

MAX_ATTEMPTS = 5
MAX_BACKOFF = timedelta(minutes=30)
log = get_logger("keyway.fetch")


def backoff(attempt: int, base_seconds: float) -> timedelta:
    """``base × 2^attempt``, capped at :data:`MAX_BACKOFF`, times a random factor in [0.5, 1]
    so that syncs which failed together do not retry together."""
    delay = min(base_seconds * 2 ** max(attempt, 0), MAX_BACKOFF.total_seconds())
    return timedelta(seconds=delay * random.uniform(0.5, 1.0))


def retry_later(ports: Ports, connection: str, owner: str, reason: str,
                stats: dict[str, Any], base_seconds: float) -> str:
    """End a run that hit a transient failure: ``retrying`` with ``retry_at``, or ``failed``
    once the sync has used its :data:`MAX_ATTEMPTS`. Returns the state written."""
    attempt = int((ports.business.get(status.COLLECTION, connection) or {}).get("attempt") or 0)
    if attempt >= MAX_ATTEMPTS:
        status.end(ports, connection, owner, "failed", reason=reason, stats=stats)
        return "failed"
    retry_at = ports.clock.now() + backoff(attempt, base_seconds)
    status.end(ports, connection, owner, "retrying", retry_at=retry_at, reason=reason,
               stats=stats, recover_at=retry_at)
    return "retrying"


def recover(ports: Ports, connection: str, sender: str, lease: timedelta) -> str | None:
    """Ask again for ``connection``'s sync if its ``recover_at`` has passed; returns
    ``"requested"``, ``"failed"`` or ``None`` (nothing due — a live run, a finished sync, or
    another caller got there first)."""
    record = ports.business.get("connections", connection)
    outcome = _claim(ports, connection, record, lease)
    if outcome is None or outcome[0] != "requested":
        return outcome and outcome[0]
    provider, tenant = record["provider"], record["tenant"]
    messages.publish(ports.bus, sender, f"sync-requests-{provider}", "sync.requested",
                     {"tenant": tenant, "connection": connection, "scope": "all",
                      "resume": "checkpoint", "reason": "recovery",
                      "requested_at": isoformat(ports.clock.now())},
                     ordering_key=connection)
    log.info("fetch.recovery_requested", extra={"fields": {
        "connection": connection, "attempt": outcome[1], "reason": outcome[2]}})
    return "requested"


def request_failed(ports: Ports, provider: str, tenant: str, connection: str, reason: str,
                   lease: timedelta, *, final: bool) -> None:
    """The vault could not turn a sync request into a job. ``final`` (the connection needs
    re-authorization): the sync ends ``failed`` with ``reason``. Otherwise (a retryable
    failure, raised so the bus redelivers the request) the sync shows ``retrying`` with
    ``reason``, and ``recover_at`` a lease away: should the bus give up and dead-letter the
    request, the scheduler's tick asks again then. A live run's status is left alone."""
    record = ports.business.get("connections", connection) or {}
    if record.get("tenant") != tenant or record.get("provider") != provider:
        return
    now = ports.clock.now()

    def write(tx) -> None:
        doc = tx.get(status.COLLECTION, connection) or {"tenant": tenant, "attempt": 0}
        held = doc.get("lease")
        if doc.get("tenant") != tenant or (held and parse_iso(held["until"]) > now):
            return
        pending = doc.get("recover_at")
        if final:
            doc.update(state="failed", finished_at=isoformat(now), recover_at=None,
                       consecutive_failures=int(doc.get("consecutive_failures") or 0) + 1)
        else:
            doc.update(state="retrying", recover_at=pending if pending and parse_iso(pending)
                       > now else isoformat(now + lease))
        doc.update(reason=reason, lease=None, retry_at=None if final else doc.get("recover_at"))
        tx.put(status.COLLECTION, connection, doc)

    ports.business.transaction(write)


def _claim(ports: Ports, connection: str, record: dict | None,
           lease: timedelta) -> tuple[str, int, str] | None:
    now = ports.clock.now()

    def take(tx) -> tuple[str, int, str] | None:
        doc = tx.get(status.COLLECTION, connection)
        due = (doc or {}).get("recover_at")
        if not due or parse_iso(due) > now:
            return None
        attempt = int(doc.get("attempt") or 0) + 1
        reason, ended = _why(doc, record)
        if ended or attempt > MAX_ATTEMPTS:
            doc.update(state="failed", reason=reason, lease=None, recover_at=None,
                       retry_at=None, finished_at=isoformat(now),
                       consecutive_failures=int(doc.get("consecutive_failures") or 0) + 1)
            tx.put(status.COLLECTION, connection, doc)
            return "failed", attempt - 1, reason
        doc.update(state="retrying", reason=reason, lease=None, attempt=attempt,
                   retry_at=isoformat(now), recover_at=isoformat(now + lease))
        tx.put(status.COLLECTION, connection, doc)
        return "requested", attempt, reason

    outcome = ports.business.transaction(take)
    if outcome is not None and outcome[0] == "failed":
        log.warning("fetch.recovery_failed", extra={"fields": {
            "connection": connection, "attempts": outcome[1], "reason": outcome[2]}})
    return outcome


def _why(doc: dict, record: dict | None) -> tuple[str, bool]:
    """Why the sync is being recovered, and whether it must end instead (the connection is
    gone, is another tenant's, or is no longer active)."""
    if record is None or record.get("tenant") != doc.get("tenant"):
        return "fetch.unknown_connection", True
    if record.get("status") != "active":
        return (record.get("status_reason") or f"connection.{record.get('status')}"), True
    state = doc.get("state")
    if state == "running":
        return "fetch.lease_expired", False
    if state == "continuing":
        return "fetch.continuation_lost", False
    return str(doc.get("reason") or "fetch.retry_lost"), False
