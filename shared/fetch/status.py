"""Sync status per connection (``sync_status/<connection>``): what the API shows, and the
lease that keeps two fetches of one connection from running at once.

States: ``running`` → ``done`` | ``continuing`` (the time budget ran out; a continuation is
queued) | ``waiting`` (rate limit or budget spent; resumes at ``retry_at``) | ``failed``
(with a stable ``reason``).

What is missing: when the provider permanently refused a part of the data — a child list of
some items (:mod:`shared.fetch.pending`) — the sync still ends ``done``, but the status is
``degraded: true`` and ``missing`` lists, per child and reason, ``{"child", "reason",
"parents", "repositories", "first_seen"}``: how many items (pull requests, issues) lack that
child, in how many repositories, since when. ``missing`` is rewritten at the end of every run
from what is still pending, so it empties (and ``degraded`` turns false) once a later sync has
read them. ``reason`` is ``<child>.unavailable: <why>``, where ``<child>`` is the plan's
child name (``reviews``; GitLab ``mr_notes``, ``issue_notes``, ``approvals``; Bitbucket
``pr_comments``, ``issue_comments``, ``participants``; Jira ``comments``) and ``<why>`` one of:

* ``permission`` — the provider answered 403 or GraphQL ``FORBIDDEN`` (the token or its user
  may not read it: grant the access, or accept that part missing);
* ``not_found`` — 404, 410, GraphQL ``NOT_FOUND`` for the whole query, or no GraphQL endpoint
  (GitHub Enterprise Server with GraphQL off);
* ``refused`` — any other permanent refusal (400, 422, another GraphQL error type).

The next sync tries them again first (then, while still refused, at most hourly, backing off
to daily: :mod:`shared.fetch.pending`); transient failures (5xx, timeouts, rate limits) never
land here: they fail or defer the run as before.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from shared import health
from shared.clock import isoformat, parse_iso
from shared.fetch import pending
from shared.ports import Ports

COLLECTION = "sync_status"
LEASE = timedelta(minutes=5)


def begin(ports: Ports, tenant: str, connection: str) -> str | None:
    """Take the connection's sync lease; ``None`` if another live run holds it."""
    owner = uuid.uuid4().hex
    now = ports.clock.now()

    def take(tx) -> str | None:
        doc = tx.get(COLLECTION, connection) or {"tenant": tenant}
        lease = doc.get("lease")
        if lease and lease["owner"] != owner and parse_iso(lease["until"]) > now:
            return None
        doc.update(tenant=tenant, state="running", started_at=isoformat(now),
                   lease={"owner": owner, "until": isoformat(now + LEASE)})
        tx.put(COLLECTION, connection, doc)
        return owner

    return ports.business.transaction(take)


def end(ports: Ports, connection: str, owner: str, state: str, *,
        retry_at: datetime | None = None, reason: str | None = None,
        stats: dict[str, Any] | None = None) -> None:
    now = isoformat(ports.clock.now())
    missing = pending.summary(ports.business, connection)

    def write(tx) -> None:
        doc = tx.get(COLLECTION, connection) or {}
        if (doc.get("lease") or {}).get("owner") not in (owner, None):
            return  # a newer run took over; its status wins
        doc.update(state=state, lease=None, finished_at=now, reason=reason,
                   retry_at=isoformat(retry_at) if retry_at else None,
                   missing=missing, degraded=bool(missing))
        if stats is not None:
            doc["last_run"] = stats
        if state == "done":
            doc["last_success_at"] = now
            doc["consecutive_failures"] = 0
        elif state == "failed":
            doc["consecutive_failures"] = int(doc.get("consecutive_failures") or 0) + 1
        tx.put(COLLECTION, connection, doc)

    ports.business.transaction(write)
    health.observe(ports, connection)
