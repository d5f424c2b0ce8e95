"""A connection's health, derived from facts, and the log of its changes.

Facts: the connection document (``status`` and ``status_reason``, written by the OAuth
callback, the vault, fetch and the api) and its ``sync_status`` (:mod:`shared.fetch.status`).
:func:`derive` turns them into one state, checked in this order (reason in brackets):

1. ``disconnected`` — ``status`` is ``disconnecting`` or ``disconnected``
   (``connection.disconnected``);
2. ``needs_reauth`` — ``status`` is ``needs_reauth``: the provider refused the token
   (``provider.token_rejected``, ``provider.insufficient_scope``), a refresh got
   ``invalid_grant`` (``vault.needs_reauth``), the GitHub App installation is gone
   (``github_app.installation_gone``) or the stored token no longer decrypts
   (``vault.undecryptable``) — the stored ``status_reason``;
3. ``syncing`` — a run holds a live lease, or a continuation is queued (shown only, see
   below);
4. ``degraded`` — a run's lease expired without an end, a crashed fetch (``sync.stalled``);
   the last run failed (``sync.failed: <its key>``); a transient failure's retry is scheduled
   (``sync.retrying: <its key>``); it waits for a rate limit more than
   :data:`RATE_LIMIT_PATIENCE` away (``sync.rate_limited``);
5. ``connecting`` — no sync has finished successfully yet;
6. ``degraded`` — a part of the data is refused (the first ``missing`` reason, e.g.
   ``reviews.unavailable: permission``, :mod:`shared.fetch.status`);
7. ``active`` — otherwise.

``syncing`` is what a reader sees while a run is live (with the run's counts so far); it is
not a change of health: :func:`observe` records the *settled* state (what :func:`derive` says
with ``live=False``), so a healthy connection does not flap active → syncing → active every
sync. Each settled change is written once, in one transaction, as ``health`` on the connection
(``{"state", "reason", "since"}``) and as a document of ``health_events``
(``{"tenant", "connection", "from", "to", "reason", "at"}``); a repeated observation of the same
state writes nothing. Each change recorded is also a ``connection.health_changed``
notification (:mod:`shared.notify`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.clock import isoformat, parse_iso
from shared.notify import sources as notify
from shared.ports import Ports

CONNECTIONS, SYNC_STATUS, EVENTS = "connections", "sync_status", "health_events"
RATE_LIMIT_PATIENCE = timedelta(hours=1)
STATES = ("connecting", "active", "syncing", "degraded", "needs_reauth", "disconnected")


@dataclass(frozen=True)
class Health:
    state: str
    reason: str | None = None


def derive(connection: dict[str, Any], sync: dict[str, Any] | None, now: datetime, *,
           live: bool = True) -> Health:
    """The health the facts give (module docstring); ``live=False``: never ``syncing``."""
    status = connection.get("status")
    if status in ("disconnecting", "disconnected"):
        return Health("disconnected", "connection.disconnected")
    if status == "needs_reauth":
        return Health("needs_reauth", connection.get("status_reason") or "connection.needs_reauth")
    sync = sync or {}
    state = sync.get("state")
    lease = sync.get("lease") or {}
    leased = bool(lease) and parse_iso(lease["until"]) > now
    if live and (state == "running" and leased or state == "continuing"):
        return Health("syncing")
    if state == "running" and lease and not leased:
        return Health("degraded", "sync.stalled")
    if state == "failed":
        return Health("degraded", f"sync.failed: {sync.get('reason') or 'unknown'}")
    if state == "retrying":
        return Health("degraded", f"sync.retrying: {sync.get('reason') or 'unknown'}")
    if state == "waiting" and sync.get("retry_at") and (
            parse_iso(sync["retry_at"]) - now > RATE_LIMIT_PATIENCE):
        return Health("degraded", "sync.rate_limited")
    if not sync.get("last_success_at"):
        return Health("connecting")
    missing = sync.get("missing") or []
    if missing:
        return Health("degraded", missing[0].get("reason"))
    return Health("active")


def view(connection: dict[str, Any], sync: dict[str, Any] | None, now: datetime
         ) -> dict[str, Any]:
    """What readers see: the live state, its reason, since when the settled state holds, and
    while syncing the run's counts so far."""
    health = derive(connection, sync, now)
    recorded = connection.get("health") or {}
    out: dict[str, Any] = {"state": health.state, "reason": health.reason,
                           "since": recorded.get("since")}
    if health.state == "syncing":
        out["progress"] = (sync or {}).get("progress")
    return out


def observe(ports: Ports, connection: str) -> tuple[str | None, Health] | None:
    """Record the connection's settled health if it changed: ``(previous, new)``, or ``None``
    when nothing changed (or there is no such connection)."""
    now = ports.clock.now()
    written: list[dict[str, Any]] = []

    def write(tx) -> tuple[str | None, Health] | None:
        written.clear()
        doc = tx.get(CONNECTIONS, connection)
        if doc is None:
            return None
        health = derive(doc, tx.get(SYNC_STATUS, connection), now, live=False)
        recorded = doc.get("health") or {}
        if (recorded.get("state"), recorded.get("reason")) == (health.state, health.reason):
            return None
        at = isoformat(now)
        written.append({**doc, "health": {"state": health.state, "reason": health.reason,
                                          "since": at}})
        tx.put(CONNECTIONS, connection, written[0])
        tx.put(EVENTS, _event_id(connection, at, health), {
            "tenant": doc.get("tenant"), "connection": connection,
            "from": recorded.get("state"), "to": health.state, "reason": health.reason,
            "at": at})
        return recorded.get("state"), health

    change = ports.business.transaction(write)
    if change is not None:
        notify.health_changed(ports, connection, written[0], change[0], isoformat(now))
    return change


def mark(ports: Ports, tenant: str, connection: str, status: str,
         reason: str | None = None) -> None:
    """Set the tenant's connection ``status`` and ``status_reason`` (a stable key) with when
    they changed, then :func:`observe` it. A ``disconnected`` connection stays so."""
    def write(tx) -> None:
        doc = tx.get(CONNECTIONS, connection)
        if doc is None or doc.get("tenant") != tenant:
            return
        if doc.get("status") == "disconnected" and status != "disconnected":
            return
        tx.put(CONNECTIONS, connection, dict(doc, status=status, status_reason=reason,
                                             status_changed_at=isoformat(ports.clock.now())))

    ports.business.transaction(write)
    observe(ports, connection)


def _event_id(connection: str, at: str, health: Health) -> str:
    digest = hashlib.sha256(f"{connection}\n{at}\n{health.state}\n{health.reason}".encode())
    return digest.hexdigest()[:40]
