"""``notify``: one ``notification.event`` → a signed POST to each matching subscription.

Idempotent. Dedupe key: ``notification_deliveries/<event id>:<subscription id>``, claimed in
a transaction before anything is sent. A delivery already ``delivered`` or ``failed`` is
never sent again, whatever redelivers the message (the bus, a replayed dead letter, an outbox
sweep that raced the first publish); one whose attempt another instance holds (a live lease)
is left to that instance, and the message is redelivered to look again later. Each attempt
is appended to the delivery with its time, HTTP status or stable error key and duration.

Retries: a non-2xx answer, a timeout or a connection error leaves the delivery ``pending``
and the handler raises :class:`DeliveryPending`, so Pub/Sub redelivers the message with the
subscription's backoff (10 s doubling to 600 s); the deliveries already done are skipped. The
:data:`MAX_ATTEMPTS`-th failed attempt (the subscription's own maximum, so the message never
has to dead-letter for it) turns the delivery ``failed`` with ``reason`` the last error. A
redirect (``notify.redirect_refused``: never followed) or an address the SSRF guard refuses
(``ssrf.refused``, checked at every attempt) fails it at once. So on the third redelivery
only the deliveries still pending are attempted again.

Too old: an event created more than :data:`MAX_AGE` ago (a dead letter replayed late) is
acknowledged with ``notify.event_too_old`` and sent nowhere. Each event is also published,
once per id as far as this handler knows, on the outlet topic ``keyway-events``
(``notification_outlet/<event id>``), for consumers inside the product.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shared import messages, retention, topology
from shared.clock import isoformat, parse_iso
from shared.errors import InvalidInput, RetryableError
from shared.log import get_logger
from shared.notify import send, subscriptions
from shared.notify.events import MESSAGE_TYPE, TYPES
from shared.ports import Filter, Order, Ports

DELIVERIES, OUTLET_MARKS = "notification_deliveries", "notification_outlet"
OUTLET = "keyway-events"
MAX_ATTEMPTS = topology.MAX_ATTEMPTS
LEASE = timedelta(seconds=60)
MAX_AGE = timedelta(days=3)
RETAIN = timedelta(days=30)
COMPONENT = "notify"
log = get_logger("keyway.notify")


class DeliveryPending(RetryableError):
    key, title = "notify.delivery_pending", "A notification delivery will be retried"


def event_of(body: dict[str, Any]) -> dict[str, Any]:
    event = body.get("event")
    if (not isinstance(event, dict) or event.get("type") not in TYPES
            or not all(isinstance(event.get(k), str) and event.get(k)
                       for k in ("id", "tenant", "created_at"))
            or not isinstance(event.get("data"), dict)):
        raise InvalidInput("not a notification event", key="notify.bad_message")
    try:
        parse_iso(event["created_at"])
    except ValueError:
        raise InvalidInput("not a notification event", key="notify.bad_message") from None
    return {k: event[k] for k in ("id", "type", "created_at", "tenant", "data")}


def on_event(ports: Ports, inbound: messages.Inbound) -> None:
    """Deliver one event to each matching subscription.

    Idempotent on ``(event id, subscription id)``: a redelivery — the third one too — sends
    only to subscriptions whose delivery is still ``pending`` and unleased; an event older
    than :data:`MAX_AGE` is acknowledged unsent (module docstring)."""
    event = event_of(inbound.body)
    now = ports.clock.now()
    if now - parse_iso(event["created_at"]) > MAX_AGE:
        log.info("notify.event_too_old", extra={"fields": {"event_id": event["id"]}})
        return
    _forward(ports, event)
    pending = 0
    for subscription, doc in subscriptions.matching(ports, event["tenant"], event["type"]):
        pending += attempt(ports, event, subscription, doc) == "pending"
    if pending:
        raise DeliveryPending(f"{pending} deliveries of {event['id']} will be retried")


def _forward(ports: Ports, event: dict[str, Any]) -> None:
    if ports.business.get(OUTLET_MARKS, event["id"]) is not None:
        return
    messages.publish(ports.bus, COMPONENT, OUTLET, MESSAGE_TYPE, {"event": event})
    now = ports.clock.now()
    ports.business.put(OUTLET_MARKS, event["id"], {
        "at": isoformat(now), **retention.purge_at(now + RETAIN)})


def attempt(ports: Ports, event: dict[str, Any], subscription: str,
            sub: dict[str, Any]) -> str:
    """One attempt unless the delivery is settled or leased: its state afterwards."""
    key = f"{event['id']}:{subscription}"
    claimed = _claim(ports, key, event, subscription)
    if claimed in ("settled", "busy"):  # busy: ask again once the holder is done
        return "settled" if claimed == "settled" else "pending"
    number = len(claimed.get("attempts") or []) + 1
    try:
        result = send.post(ports, event, subscription, sub["url"], number)
    except Exception:
        _release(ports, key)  # the secrets port down: nothing was sent, try again soon
        raise
    return _record(ports, key, result, number)


def _claim(ports: Ports, key: str, event: dict[str, Any],
           subscription: str) -> dict[str, Any] | str:
    """The delivery with this caller's lease on it, or ``settled`` / ``busy``."""
    now = ports.clock.now()

    def write(tx) -> dict[str, Any] | str:
        doc = tx.get(DELIVERIES, key) or {
            "event_id": event["id"], "type": event["type"], "tenant": event["tenant"],
            "subscription": subscription, "created_at": isoformat(now), "state": "pending",
            "listed_by": f"{subscription} {isoformat(now)}", "attempts": [],
            **retention.purge_at(now + RETAIN)}
        if doc["state"] != "pending":
            return "settled"
        if (doc.get("lease_until") or "") > isoformat(now):
            return "busy"
        doc["lease_until"] = isoformat(now + LEASE)
        tx.put(DELIVERIES, key, doc)
        return doc

    return ports.business.transaction(write)


def _release(ports: Ports, key: str) -> None:
    def write(tx) -> None:
        doc = tx.get(DELIVERIES, key)
        if doc is not None:
            tx.put(DELIVERIES, key, {**doc, "lease_until": None})

    ports.business.transaction(write)


def _record(ports: Ports, key: str, result: send.Result, number: int) -> str:
    now = isoformat(ports.clock.now())

    def write(tx) -> str:
        doc = tx.get(DELIVERIES, key)
        attempts = [*(doc.get("attempts") or []), {
            "at": now, "status": result.status, "error": result.error,
            "duration_ms": result.duration_ms}]
        doc.update(attempts=attempts, lease_until=None, updated_at=now)
        if result.ok:
            doc.update(state="delivered", delivered_at=now, reason=None)
        elif result.final or len(attempts) >= MAX_ATTEMPTS:
            doc.update(state="failed", failed_at=now, reason=result.error)
        tx.put(DELIVERIES, key, doc)
        return doc["state"]

    state = ports.business.transaction(write)
    level = log.info if state != "failed" else log.warning
    level(f"notify.delivery_{state}", extra={"fields": {
        "delivery": key, "attempt": number, "status": result.status, "error": result.error}})
    return state


def recent(ports: Ports, subscription: str, limit: int) -> list[dict[str, Any]]:
    """The subscription's newest deliveries with their attempts (what the api lists).

    Ranged and ordered on the one field ``listed_by`` (``"<subscription> <created_at>"``), so
    Firestore serves it from its automatic single-field index: no composite index to deploy.
    """
    snaps = ports.business.query(
        DELIVERIES, [Filter("listed_by", ">", f"{subscription} "),
                     Filter("listed_by", "<", f"{subscription}!")],
        [Order("listed_by", True)], limit)
    keys = ("event_id", "type", "state", "reason", "created_at", "delivered_at", "failed_at",
            "attempts")
    return [{k: s.data.get(k) for k in keys} for s in snaps]


HANDLERS = {MESSAGE_TYPE: on_event}
