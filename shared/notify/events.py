"""Recording a notification event: the outbox, then the ``notifications`` topic.

An event is ``{"id", "type", "created_at", "tenant", "data"}``. Its id is derived from the
fact it reports (``evt_`` + 32 hex digits of SHA-256 over the type and a natural key: the
health change, the sync run, the action, the identity's change), so recording the same fact
twice — a redelivered message repeating its work — yields the same id and one event.

:func:`emit` is called by the component that has just committed the fact. It never raises
into that caller's main work:

1. it creates ``notification_outbox/<id>`` (``state: pending``) in a transaction — an id
   already there is not emitted again;
2. it publishes ``notification.event`` on ``notifications`` in the acting component's name
   (:mod:`shared.acting`) and marks the outbox document ``published``.

A failed step 2 (bus down, no acting component: a CLI command) leaves the event ``pending``
and logs ``notify.publish_deferred``; :func:`sweep`, run by ``scheduler`` on every tick,
publishes pending events older than :data:`SWEEP_AFTER`. A failed step 1 (the store down right
after the fact was committed) logs ``notify.emit_failed`` with the type and id: that event is
lost, the one window where it can be, since the fact and its event are two writes.
Published outbox documents expire after :data:`RETAIN` (``purge_at``).
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from shared import acting, messages, retention
from shared.clock import isoformat
from shared.log import get_logger
from shared.ports import Filter, Ports

COLLECTION = "notification_outbox"
TOPIC, MESSAGE_TYPE = "notifications", "notification.event"
TYPES = ("connection.health_changed", "sync.completed", "sync.failed", "action.completed",
         "action.failed", "identity.needs_reauth")
SWEEP_AFTER = timedelta(seconds=30)
SWEEP_BATCH = 100
RETAIN = timedelta(days=7)
SWEEPER = "scheduler"
log = get_logger("keyway.notify")


def event_id(type_: str, key: str) -> str:
    return "evt_" + hashlib.sha256(f"{type_}\n{key}".encode()).hexdigest()[:32]


def emit(ports: Ports, tenant: str | None, type_: str, key: str,
         data: dict[str, Any]) -> str | None:
    """Record and publish one event (module docstring); its id, or ``None`` when it could not
    be recorded. Never raises."""
    if type_ not in TYPES or not tenant:
        log.error("notify.bad_event", extra={"fields": {"type": type_}})
        return None
    event = {"id": event_id(type_, key), "type": type_,
             "created_at": isoformat(ports.clock.now()), "tenant": tenant, "data": data}
    try:
        created = _stage(ports, event)
    except Exception as e:  # noqa: BLE001 — the caller's work is done; say what was lost
        log.error("notify.emit_failed", extra={"fields": {
            "type": type_, "event_id": event["id"], "error": type(e).__name__}})
        return None
    if created:
        publish(ports, event, acting.current())
    return event["id"]


def _stage(ports: Ports, event: dict[str, Any]) -> bool:
    def write(tx) -> bool:
        if tx.get(COLLECTION, event["id"]) is not None:
            return False
        tx.put(COLLECTION, event["id"], {"event": event, "tenant": event["tenant"],
                                         "state": "pending", "created_at": event["created_at"]})
        return True

    return ports.business.transaction(write)


def publish(ports: Ports, event: dict[str, Any], sender: str | None) -> bool:
    """Publish a staged event as ``sender`` and mark it published; False (logged) if not."""
    fields = {"type": event["type"], "event_id": event["id"], "sender": sender}
    try:
        if sender is None:
            raise LookupError("no acting component")
        messages.publish(ports.bus, sender, TOPIC, MESSAGE_TYPE, {"event": event})
        now = ports.clock.now()
        ports.business.put(COLLECTION, event["id"], {
            "event": event, "tenant": event["tenant"], "state": "published",
            "created_at": event["created_at"], "published_at": isoformat(now),
            **retention.purge_at(now + RETAIN)})
    except Exception as e:  # noqa: BLE001 — the outbox keeps it; the sweep publishes it
        log.warning("notify.publish_deferred", extra={"fields": {
            **fields, "error": type(e).__name__}})
        return False
    return True


def sweep(ports: Ports) -> int:
    """Publish outbox events still pending after :data:`SWEEP_AFTER`; how many. Never raises.

    Idempotent: an event published twice (a sweep racing a late first publish) is delivered
    once, because ``notify`` dedupes on the event id."""
    cutoff = isoformat(ports.clock.now() - SWEEP_AFTER)
    try:
        pending = ports.business.query(COLLECTION, [Filter("state", "==", "pending")],
                                       limit=SWEEP_BATCH)
    except Exception as e:  # noqa: BLE001
        log.error("notify.sweep_failed", extra={"fields": {"error": type(e).__name__}})
        return 0
    due = [s.data["event"] for s in pending if s.data.get("created_at", "") <= cutoff]
    return sum(publish(ports, event, SWEEPER) for event in due)
