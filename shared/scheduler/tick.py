"""``refresh.tick`` → one ``sync.requested`` per connection whose refresh is due.

Idempotent: a sync request names the connection and the due time it answers
(``due_at``); vault-P treats a repeated (connection, due_at) as the same request, and after
publishing, the connection's ``next_sync_at`` moves one interval forward so a redelivered
tick (second or third attempt) finds nothing new to do. Ticks older than ``STALE_AFTER`` are
acknowledged without work: a newer tick has already covered them.
"""

from __future__ import annotations

from datetime import timedelta

from shared import messages
from shared.clock import isoformat, parse_iso
from shared.errors import InvalidInput
from shared.log import get_logger
from shared.ports import Filter, Order, Ports

COMPONENT = "scheduler"
CONNECTIONS = "connections"
STALE_AFTER = timedelta(minutes=10)
DEFAULT_INTERVAL = timedelta(minutes=15)
BATCH = 200
log = get_logger("keyway.scheduler")


def on_tick(ports: Ports, inbound: messages.Inbound) -> None:
    try:
        tick_time = parse_iso(str(inbound.body["tick_time"]))
    except (KeyError, ValueError):
        raise InvalidInput("tick without a valid tick_time", key="scheduler.bad_tick") from None
    now = ports.clock.now()
    if now - tick_time > STALE_AFTER:
        log.info("scheduler.stale_tick", extra={"fields": {"tick_time": isoformat(tick_time)}})
        return
    due = ports.business.query(
        CONNECTIONS,
        where=[Filter("status", "==", "active"), Filter("next_sync_at", "<=", isoformat(now))],
        order_by=[Order("next_sync_at")],
        limit=BATCH,
    )
    for snap in due:
        _request_sync(ports, snap.id, snap.data)
    log.info("scheduler.tick", extra={"fields": {"due": len(due)}})


def _request_sync(ports: Ports, connection_id: str, connection: dict) -> None:
    provider = connection["provider"]
    due_at = connection["next_sync_at"]
    messages.publish(
        ports.bus, COMPONENT, f"sync-requests-{provider}", "sync.requested",
        {"tenant": connection["tenant"], "connection": connection_id, "scope": "all",
         "due_at": due_at, "reason": "scheduled"},
        ordering_key=connection_id,
    )
    interval = timedelta(seconds=int(connection.get("interval_seconds") or
                                     DEFAULT_INTERVAL.total_seconds()))

    def advance(tx):
        current = tx.get(CONNECTIONS, connection_id)
        if current is None or current.get("next_sync_at") != due_at:
            return
        current["next_sync_at"] = isoformat(max(parse_iso(due_at) + interval, ports.clock.now()))
        tx.put(CONNECTIONS, connection_id, current)

    ports.business.transaction(advance)
