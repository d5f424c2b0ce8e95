"""Retention of a disconnected connection's data, swept on each scheduler tick.

A disconnect (``DELETE /v1/connections/{id}``) stamps the connection with ``disconnected_at``
and ``purge_at`` (:mod:`shared.api.retention`); until then its records stay readable, and each
one read through the data API carries ``connection_ended_at``. Once ``purge_at`` has passed and
the vault has finished (``status`` ``disconnected``), each tick deletes up to :data:`BUDGET`
documents of such connections: the records that connection wrote (every kind of
:data:`shared.records.model.KINDS` whose ``connection`` is it), its cursors, pending children,
reconciliation state
and sync status. When nothing is left the connection gets ``purged_at`` and loses ``purge_at``
(so it leaves the sweep's query: purged connections never crowd out due ones); its document
stays, without data, as the record that it existed.

A record another connection of the tenant also reads (the same repository through two
accounts) carries the id of whichever wrote it last; one purged with this connection comes
back at that connection's next full sync.

Idempotent: every step is a delete of what is still there; a redelivered tick finds less.
"""

from __future__ import annotations

from datetime import datetime

from shared.clock import isoformat
from shared.fetch import cursor, pending, reconcile_state
from shared.fetch import status as sync_status
from shared.log import get_logger
from shared.ports import Filter, Ports
from shared.records.model import KINDS

BUDGET = 500  # documents deleted per tick, across connections
log = get_logger("keyway.scheduler")
_PER_CONNECTION = (*KINDS, cursor.COLLECTION, pending.COLLECTION, reconcile_state.COLLECTION)


def sweep(ports: Ports, now: datetime, budget: int = BUDGET) -> int:
    """Delete what is due; returns how many documents went."""
    due = ports.business.query("connections", [
        Filter("status", "==", "disconnected"), Filter("purge_at", "<=", isoformat(now))],
        limit=20)
    deleted = 0
    for snap in due:
        if deleted >= budget:
            break
        gone, finished = _purge(ports, snap.id, budget - deleted)
        deleted += gone
        if finished:
            _finish(ports, snap.id, now)
    return deleted


def _purge(ports: Ports, connection: str, budget: int) -> tuple[int, bool]:
    deleted = 0
    for collection in _PER_CONNECTION:
        left = budget - deleted
        if left <= 0:
            return deleted, False
        found = ports.business.query(collection, [Filter("connection", "==", connection)],
                                     limit=left + 1)
        for snap in found[:left]:
            ports.business.delete(collection, snap.id)
        deleted += len(found[:left])
        if len(found) > left:
            return deleted, False
    return deleted, True


def _finish(ports: Ports, connection: str, now: datetime) -> None:
    ports.business.delete(sync_status.COLLECTION, connection)

    def write(tx) -> None:
        doc = tx.get("connections", connection)
        if doc is not None and doc.get("status") == "disconnected":  # purge_at goes: it leaves
            tx.put("connections", connection, {  # the sweep's query for good
                **{k: v for k, v in doc.items() if k != "purge_at"}, "purged_at": isoformat(now)})

    ports.business.transaction(write)
    log.info("scheduler.connection_purged", extra={"fields": {"connection": connection}})
