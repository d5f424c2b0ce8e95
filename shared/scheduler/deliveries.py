"""Each tick: a round of webhook gap recovery per provider with a delivery log, every
``KEYWAY_DELIVERY_RECOVERY_SECONDS`` (default 3600; 0 turns it off).

The scheduler holds no provider credential, so it only asks: one ``deliveries.recover`` on
``delivery-recovery-P`` per target — the GitHub App's own webhook (``target: app``, when
``KEYWAY_GITHUB_APP_ID`` names one), and each
active connection of the provider (``target: connection``; ``vault-P`` reads the hooks that
connection registered, :mod:`shared.webhooks.recovery_job`). A provider has a delivery log when
its table allowlists one (``api.allowlist.recover`` not empty: GitHub and Jira).

Idempotent: a round is claimed in a transaction on ``delivery_recovery/<provider>``
(``next_at`` moves forward only if it is still due), so a redelivered tick asks nothing twice.
A round whose publishing fails part-way leaves the rest for the next round: the watermarks
are in the store, so a later round reads what this one did not.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from shared import bootstrap, messages
from shared.clock import isoformat
from shared.log import get_logger
from shared.policy import PROVIDERS
from shared.ports import Filter, Ports
from shared.providers import registry

COMPONENT = "scheduler"
APP_ID_ENV = "KEYWAY_GITHUB_APP_ID"  # a GitHub App is configured (its key: vault-github only)
ROUNDS = "delivery_recovery"
MAX_CONNECTIONS = 2000  # per provider and round
log = get_logger("keyway.scheduler")


def with_logs() -> list[str]:
    """The providers whose table allowlists a delivery log."""
    return [p for p in PROVIDERS if registry.get(p).api.purposes.get("recover")]


def sweep(ports: Ports, now: datetime) -> int:
    """Ask for the rounds that are due; the number of requests published."""
    seconds = bootstrap.config().delivery_recovery_seconds
    if seconds <= 0:
        return 0
    asked = 0
    for provider in with_logs():
        if _claim(ports, provider, now, timedelta(seconds=seconds)):
            asked += _round(ports, provider, now)
    return asked


def _claim(ports: Ports, provider: str, now: datetime, interval: timedelta) -> bool:
    def attempt(tx) -> bool:
        current = tx.get(ROUNDS, provider) or {}
        if str(current.get("next_at") or "") > isoformat(now):
            return False
        tx.put(ROUNDS, provider, {"provider": provider, "next_at": isoformat(now + interval),
                                  "started_at": isoformat(now)})
        return True

    return ports.business.transaction(attempt)


def _round(ports: Ports, provider: str, now: datetime) -> int:
    topic, requested = f"delivery-recovery-{provider}", isoformat(now)
    asked = 0
    if provider == "github" and os.environ.get(APP_ID_ENV, "").strip():
        messages.publish(ports.bus, COMPONENT, topic, "deliveries.recover",
                         {"target": "app", "requested_at": requested})
        asked += 1
    active = ports.business.query("connections", where=[
        Filter("provider", "==", provider), Filter("status", "==", "active")],
        limit=MAX_CONNECTIONS)
    if len(active) == MAX_CONNECTIONS:
        log.warning("deliveries.round_truncated", extra={"fields": {"provider": provider}})
    for snap in active:
        if snap.data.get("register_webhooks") is False:
            continue  # registers no hook: no log of its own to read (an App's is read above)
        messages.publish(ports.bus, COMPONENT, topic, "deliveries.recover",
                         {"target": "connection", "tenant": snap.data.get("tenant"),
                          "connection": snap.id, "requested_at": requested},
                         ordering_key=snap.id)
        asked += 1
    return asked
