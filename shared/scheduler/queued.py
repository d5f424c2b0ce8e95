"""Queued actions whose time has come are asked for again: swept on each scheduler tick.

``act-P`` queues an action it may not post yet — no write slot under the provider's write
limits, or the provider answered with its rate limit (:mod:`shared.actions.pacing`) — with
``queued_until`` and acknowledges its job. Each tick finds the pending actions whose
``queued_until`` has passed (one range query), takes each off the queue in a transaction
(:func:`shared.actions.ledger.claim_queued`, so a redelivered or concurrent tick asks once) and
publishes ``action.requested`` to ``action-requests-<provider>`` as ``scheduler``. The vault
checks, as for any request, that the action is pending and the requester's own before sealing
a fresh envelope; ``act-P`` then takes a slot (or queues it again) and resumes by marker when
an earlier attempt was recorded, so nothing is posted twice. The scheduler never sees a token.
A publish that fails puts the action back on the queue (due now) and raises, so the tick is
redelivered.
"""

from __future__ import annotations

from datetime import datetime

from shared import ids, messages
from shared.actions import ledger
from shared.actions.model import COLLECTION, PENDING
from shared.clock import isoformat
from shared.log import get_logger
from shared.ports import Filter, Order, Ports

COMPONENT = "scheduler"
BATCH = 200
log = get_logger("keyway.scheduler")


def sweep(ports: Ports, now: datetime) -> int:
    """Re-request the queued actions that are due; returns how many."""
    due = ports.business.query(COLLECTION, [
        Filter("status", "==", PENDING), Filter("queued_until", "<=", isoformat(now))],
        order_by=[Order("queued_until")], limit=BATCH)
    asked = 0
    for snap in due:
        tenant, action_id = ids.split(snap.id, 2)
        doc = ledger.claim_queued(ports, action_id, tenant, now)
        action = (doc or {}).get("queued_action")
        if doc is None or not isinstance(action, dict):
            continue
        try:
            messages.publish(ports.bus, COMPONENT, f"action-requests-{doc['provider']}",
                             "action.requested", {
                                 "tenant": tenant, "user": doc["user"], "action_id": action_id,
                                 "connection": doc["connection"], "action": action,
                                 "requested_at": isoformat(now), "reason": "queued"},
                             ordering_key=action_id)
        except Exception:  # back on the queue for the next tick, then let the tick retry
            ledger.queue(ports, action_id, tenant, now, "action.requeue_failed", action)
            raise
        asked += 1
    if asked:
        log.info("scheduler.actions_requeued", extra={"fields": {"count": asked}})
    return asked
