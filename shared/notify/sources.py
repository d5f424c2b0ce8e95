"""One function per kind of fact the product is notified of; each source calls one line.

Called after the fact is committed (never inside the transaction that writes it: a
transaction may run more than once). Each builds the event's data from what was recorded and
hands it to :func:`shared.notify.events.emit`, which never raises. No event carries a token
or a secret: only ids, states, stable reasons, counts and times.
"""

from __future__ import annotations

from typing import Any

from shared.clock import parse_iso
from shared.notify.events import emit
from shared.ports import Ports


def health_changed(ports: Ports, connection: str, doc: dict[str, Any], previous: str | None,
                   at: str) -> None:
    """``connection.health_changed`` (from :func:`shared.health.observe`)."""
    health = doc.get("health") or {}
    emit(ports, doc.get("tenant"), "connection.health_changed",
         f"{connection}\n{at}\n{health.get('state')}\n{health.get('reason')}",
         {"connection": connection, "provider": doc.get("provider"), "from": previous,
          "to": health.get("state"), "reason": health.get("reason"), "at": at})


def sync_ended(ports: Ports, connection: str, state: str, finished_at: str) -> None:
    """``sync.completed`` / ``sync.failed`` for a run :func:`shared.fetch.status.end` ended
    (``continuing`` and ``waiting`` are not ends). Nothing when a newer run took over."""
    if state not in ("done", "failed"):
        return
    doc = ports.business.get("sync_status", connection) or {}
    if doc.get("state") != state or doc.get("finished_at") != finished_at:
        return
    started = doc.get("started_at")
    data: dict[str, Any] = {"connection": connection, "started_at": started,
                            "finished_at": finished_at, "duration_seconds": _seconds(
                                started, finished_at)}
    if state == "done":
        data.update(counts=doc.get("last_run") or {}, degraded=bool(doc.get("degraded")))
        kind = "sync.completed"
    else:
        data.update(reason=doc.get("reason"),
                    consecutive_failures=doc.get("consecutive_failures"))
        kind = "sync.failed"
    emit(ports, doc.get("tenant"), kind, f"{connection}\n{started}\n{finished_at}", data)


def action_ended(ports: Ports, tenant: str, action_id: str, doc: dict[str, Any]) -> None:
    """``action.completed`` / ``action.failed`` once an action reached its final status."""
    status = doc.get("status")
    if status not in ("done", "failed"):
        return
    data = {"action": action_id, "connection": doc.get("connection"),
            "provider": doc.get("provider"), "user": doc.get("user"), "kind": doc.get("kind"),
            "finished_at": doc.get("finished_at")}
    if status == "done":
        data.update(provider_comment_id=doc.get("provider_comment_id"), url=doc.get("url"))
    else:
        data["reason"] = doc.get("reason")
    emit(ports, tenant, "action.completed" if status == "done" else "action.failed",
         f"{tenant}\n{action_id}", data)


def identity_needs_reauth(ports: Ports, tenant: str, identity: str, doc: dict[str, Any]
                          ) -> None:
    """``identity.needs_reauth`` when a linked identity turned ``needs_reauth``."""
    if doc.get("status") != "needs_reauth":
        return
    emit(ports, tenant, "identity.needs_reauth",
         f"{identity}\n{doc.get('status_changed_at')}",
         {"identity": identity, "provider": doc.get("provider"), "user": doc.get("user"),
          "reason": doc.get("status_reason"), "at": doc.get("status_changed_at")})


def _seconds(start: str | None, end: str) -> float | None:
    if not start:
        return None
    return round((parse_iso(end) - parse_iso(start)).total_seconds(), 3)
