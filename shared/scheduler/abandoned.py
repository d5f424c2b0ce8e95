"""Actions nobody will finish end ``failed``: swept on each scheduler tick.

An action stays ``pending`` while its messages are retried; when they are dead-lettered (the
vault or ``act-P`` failed every delivery) nothing would ever move it again. So an action still
``pending`` :data:`DEADLINE` after it was created — longer than every retry the subscriptions
make — and not held by a live attempt lease ends ``failed`` with a reason a person can act on:

* ``abandoned`` — no attempt to post was ever made: nothing reached the provider;
* ``outcome_unknown`` — an attempt started and never reported back: the comment may exist
  (look for it on the target; a new request with a new ``action_id`` may post a second one).

A queued action (``queued_until`` set: waiting for a write slot, :mod:`shared.scheduler.queued`
asks for it again when due) is not abandoned, and the deadline of one taken off the queue runs
from then (``requeued_at``): a long queue is not a dead letter.

The client's retry of the same request (:mod:`shared.actions.request`) republishes a stale
pending action before that, so an action is abandoned only when nobody asked again either.
Idempotent: :func:`shared.actions.ledger.fail` moves only a still-pending action.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from shared import ids
from shared.actions import ledger
from shared.actions.model import COLLECTION, PENDING
from shared.clock import isoformat
from shared.log import get_logger
from shared.ports import Filter, Ports

DEADLINE = timedelta(hours=2)
BATCH = 100
log = get_logger("keyway.scheduler")


def sweep(ports: Ports, now: datetime) -> int:
    """Fail the abandoned actions; returns how many."""
    stale = ports.business.query(COLLECTION, [
        Filter("status", "==", PENDING), Filter("created_at", "<=", isoformat(now - DEADLINE))],
        limit=BATCH)
    failed = 0
    for snap in stale:
        requeued = snap.data.get("requeued_at")
        if (ledger.leased(snap.data, now) or snap.data.get("queued_until")
                or requeued and requeued > isoformat(now - DEADLINE)):
            continue
        reason = "outcome_unknown" if snap.data.get("attempt") else "abandoned"
        tenant, action_id = ids.split(snap.id, 2)
        if ledger.fail(ports, action_id, tenant, now, reason):
            failed += 1
            log.warning("scheduler.action_abandoned", extra={"fields": {
                "action": action_id, "reason": reason}})
    return failed
