"""GitHub App installation events: a connection's installation state and its repositories.

* ``installation``: ``created`` / ``unsuspend`` / ``new_permissions_accepted`` → a follow-up
  sync (the fetcher reads what the installation now covers); ``suspend``, ``unsuspend``,
  ``deleted`` (and ``created``) set the connection's ``installation_state`` — only if the event
  is newer than the state already recorded (``installation_state_at``), so an old event never
  wins; ``deleted`` also tombstones every repository of the connection and every record under
  them, reason ``access_lost``.
* ``installation_repositories``: ``repositories_removed`` → those repositories and every record
  under them are tombstoned as of the event, reason ``access_lost``; ``repositories_added`` →
  a follow-up sync, after clearing a tombstone older than the event (a repository removed and
  later added again), because the repository's own ``updated_at`` may be older than its
  removal and would not win against it; such a repository's id sweep is made due at once
  (:mod:`shared.fetch.reconcile`), which restores the records under it that still exist.

Webhook repository objects are partial (no owner, no default branch, no timestamps), so an
added repository is never written from the payload: the sync writes the full record.
"""

from __future__ import annotations

from typing import Any

from shared.fetch import reconcile_state
from shared.ingest.event import Change, Event, RepositoryGone
from shared.ingest.sync import request_sync
from shared.ports import Filter, Ports, Transaction
from shared.records import model as m
from shared.records.model import Context, record_id

STATES = {"created": "active", "unsuspend": "active", "suspend": "suspended",
          "deleted": "deleted"}
SYNC_ON = frozenset({"created", "unsuspend", "new_permissions_accepted"})


def _set_state(ports: Ports, connection: str, state: str, at: str) -> None:
    def attempt(tx: Transaction) -> None:
        doc = tx.get("connections", connection)
        if doc is None or str(doc.get("installation_state_at") or "") >= at:
            return
        tx.put("connections", connection,
               {**doc, "installation_state": state, "installation_state_at": at})

    ports.business.transaction(attempt)


def installation(event: Event, ctx: Context, ports: Ports) -> list[Change]:
    action = event.action or ""
    if action in STATES:
        _set_state(ports, ctx.connection, STATES[action], event.received_at)
    if action in SYNC_ON:
        request_sync(ports, event, ctx)
    if action != "deleted":
        return []
    repos = ports.business.query("repositories", [Filter("connection", "==", ctx.connection),
                                                  Filter("deleted", "==", False)])
    return [RepositoryGone(s.id, event.received_at, "access_lost") for s in repos
            if s.data.get("tenant") == ctx.tenant]


def _repository_ids(ctx: Context, items: Any) -> list[str]:
    if not isinstance(items, list):
        return []
    return [record_id(ctx.tenant, ctx.provider, "repositories", m.ident(m.obj(item, "repository")))
            for item in items]


def _clear_old_tombstone(ports: Ports, rid: str, at: str) -> None:
    def attempt(tx: Transaction) -> None:
        stored = tx.get("repositories", rid)
        if stored is not None and stored.get("deleted") and str(stored.get("deleted_at")) < at:
            tx.delete("repositories", rid)

    ports.business.transaction(attempt)


def repositories(event: Event, ctx: Context, ports: Ports) -> list[Change]:
    added = _repository_ids(ctx, event.payload.get("repositories_added"))
    removed = _repository_ids(ctx, event.payload.get("repositories_removed"))
    for rid in added:
        _clear_old_tombstone(ports, rid, event.received_at)
        reconcile_state.mark_due(ports.business, rid, event.received_at, ctx.connection)
    if added:
        request_sync(ports, event, ctx)
    return [RepositoryGone(rid, event.received_at, "access_lost") for rid in removed]
