"""``refresh.tick`` → one ``sync.requested`` per connection whose refresh is due.

Per connection: ``interval_seconds`` (default 15 min) plus up to 10 % jitter so connections
created together do not sync together; after failed syncs the interval doubles per
consecutive failure (capped at 64×); a connection whose token budget is spent until its reset
— the REST budget, or the GraphQL one for a provider whose sync needs GraphQL (GitHub's
reviews) — is not asked to sync before then.

Idempotent: a sync request names the connection and the due time it answers (``due_at``), and
after publishing, the connection's ``next_sync_at`` moves forward in a transaction that checks
it still holds that due time — so a redelivered tick (second or third attempt) finds nothing
new to do. Ticks older than ``STALE_AFTER`` are acknowledged without work: a newer tick has
already covered them.

Recovery: each tick also re-requests, resuming from their checkpoints, the syncs that stopped
without finishing — a run whose lease ran out, a transient failure whose ``retry_at`` has
come, a continuation or retry request that was lost — found by one range query on
``sync_status.recover_at`` (:mod:`shared.fetch.recovery`, which claims each in a transaction,
so a redelivered tick asks once). Each tick also publishes the notification events still
pending in the outbox (:func:`shared.notify.events.sweep`, idempotent by event id), deletes
what is due of disconnected connections (:mod:`shared.scheduler.purge`), asks again for the
queued actions whose time has come (:mod:`shared.scheduler.queued`), ends the actions
nobody will finish (:mod:`shared.scheduler.abandoned`) and asks for the rounds of webhook gap
recovery that are due (:mod:`shared.scheduler.deliveries`).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from shared import bootstrap, messages
from shared.clock import isoformat, parse_iso
from shared.errors import InvalidInput
from shared.fetch import recovery
from shared.fetch.budget import TokenBudget, budget_key
from shared.log import get_logger
from shared.notify import events as notify_events
from shared.ports import Filter, Order, Ports
from shared.providers import registry
from shared.scheduler import abandoned, deliveries, purge, queued

COMPONENT = "scheduler"
CONNECTIONS = "connections"
STALE_AFTER = timedelta(minutes=10)
DEFAULT_INTERVAL = timedelta(minutes=15)
MAX_BACKOFF_FACTOR = 64
BATCH = 200
log = get_logger("keyway.scheduler")


def on_tick(ports: Ports, inbound: messages.Inbound) -> None:
    now = ports.clock.now()
    try:  # Cloud Scheduler sends a fixed body without one: such a tick is "now"
        tick_time = parse_iso(str(inbound.body.get("tick_time") or isoformat(now)))
    except ValueError:
        raise InvalidInput("tick with an invalid tick_time", key="scheduler.bad_tick") from None
    if now - tick_time > STALE_AFTER:
        log.info("scheduler.stale_tick", extra={"fields": {"tick_time": isoformat(tick_time)}})
        return
    due = ports.business.query(
        CONNECTIONS,
        where=[Filter("status", "==", "active"), Filter("next_sync_at", "<=", isoformat(now))],
        order_by=[Order("next_sync_at")],
        limit=BATCH,
    )
    requested = sum(_consider(ports, snap.id, snap.data, now) for snap in due)
    recovered = _recover(ports, now)
    purged = purge.sweep(ports, now)
    requeued = queued.sweep(ports, now)
    abandoned_actions = abandoned.sweep(ports, now)
    recoveries = deliveries.sweep(ports, now)  # webhook gap recovery rounds (vault-P reads)
    log.info("scheduler.tick", extra={"fields": {"due": len(due), "requested": requested,
                                                 "delivery_recoveries": recoveries,
                                                 "recovered": recovered, "purged": purged,
                                                 "abandoned_actions": abandoned_actions,
                                                 "requeued_actions": requeued}})
    notify_events.sweep(ports)  # notifications whose first publish failed (shared.notify)


def _recover(ports: Ports, now: datetime) -> int:
    """Re-request the syncs whose ``recover_at`` has passed (see the module docstring)."""
    stuck = ports.business.query(
        "sync_status", where=[Filter("recover_at", "<=", isoformat(now))],
        order_by=[Order("recover_at")], limit=BATCH)
    lease = timedelta(seconds=bootstrap.config().sync_lease_seconds)
    return sum(recovery.recover(ports, snap.id, COMPONENT, lease) == "requested"
               for snap in stuck)


def next_due(ports: Ports, connection_id: str, connection: dict, now: datetime) -> datetime:
    """Now + interval × 2^failures (capped) + up to 10 % jitter."""
    interval = timedelta(seconds=int(connection.get("interval_seconds")
                                     or DEFAULT_INTERVAL.total_seconds()))
    sync = ports.business.get("sync_status", connection_id) or {}
    factor = min(2 ** int(sync.get("consecutive_failures") or 0), MAX_BACKOFF_FACTOR)
    jitter = interval * random.uniform(0, 0.1)
    return now + interval * factor + jitter


def _consider(ports: Ports, connection_id: str, connection: dict, now: datetime) -> bool:
    provider, due_at = connection["provider"], connection["next_sync_at"]
    blocked = _blocked_until(ports, provider, connection_id)
    if blocked is not None and blocked > now:
        _advance(ports, connection_id, due_at, blocked)
        log.info("scheduler.budget_spent", extra={"fields": {"connection": connection_id}})
        return False
    messages.publish(
        ports.bus, COMPONENT, f"sync-requests-{provider}", "sync.requested",
        {"tenant": connection["tenant"], "connection": connection_id, "scope": "all",
         "due_at": due_at, "reason": "scheduled", "requested_at": isoformat(now)},
        ordering_key=connection_id,
    )
    _advance(ports, connection_id, due_at, next_due(ports, connection_id, connection, now))
    return True


def _blocked_until(ports: Ports, provider: str, connection_id: str) -> datetime | None:
    """The latest reset among the connection's spent budgets (REST, and GraphQL when the
    provider table has GraphQL documents), or None."""
    core = TokenBudget(ports.business, ports.clock, budget_key(provider, connection_id))
    graphql = registry.get(provider).api.graphql
    budgets = [core] + ([core.for_resource(graphql.resource)]
                       if graphql and graphql.resource != core.resource else [])
    return max((b for b in (x.blocked_until() for x in budgets) if b is not None),
               default=None)


def _advance(ports: Ports, connection_id: str, due_at: str, until: datetime) -> None:
    def write(tx):
        current = tx.get(CONNECTIONS, connection_id)
        if current is None or current.get("next_sync_at") != due_at:
            return
        tx.put(CONNECTIONS, connection_id, {**current, "next_sync_at": isoformat(until)})

    ports.business.transaction(write)
