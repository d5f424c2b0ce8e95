"""Sync status per connection (``sync_status/<connection>``): what the API shows, and the
lease that keeps two fetches of one connection from running at once.

States: ``running`` → ``done`` | ``continuing`` (the time budget ran out; a continuation is
queued) | ``waiting`` (rate limit or budget spent; resumes at ``retry_at``) | ``retrying`` (a
transient failure, or a run that died: ``reason`` says which, ``attempt`` counts the tries of
this sync, ``retry_at`` is when the next one is or was asked for) | ``failed`` (with a stable
``reason``).

Recovery (:mod:`shared.fetch.recovery`): every state that expects more work carries
``recover_at`` — ``running``: the end of its lease; ``continuing``: the lease after the
continuation was queued; ``retrying``: ``retry_at``, then a lease after the retry was asked
for. The scheduler's tick re-requests every sync whose ``recover_at`` has passed, so a run
that died, a continuation or retry request that was lost or dead-lettered, never leaves a
sync ``running`` or ``retrying`` with nothing scheduled.

Reasons (``reason``, stable keys): a transient error's key while ``retrying`` and after the
last attempt (``provider.unavailable``, ``provider.malformed``, ``backend.unavailable``,
``bus.topic_missing``, …); ``fetch.lease_expired`` (the run died),
``fetch.continuation_lost``, ``fetch.retry_lost``; ``provider.rate_limited`` or
``budget.exhausted`` while ``waiting``; for ``failed`` also ``provider.token_rejected``,
``provider.insufficient_scope``, any other permanent error's key (``fetch.error`` for an
unexpected one), ``fetch.unknown_connection``, and a connection's own ``status_reason`` once
it is no longer active (``vault.needs_reauth``, ``vault.undecryptable``).

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
from shared.notify import sources as notify
from shared.ports import Ports

COLLECTION = "sync_status"
LEASE = timedelta(minutes=5)


def begin(ports: Ports, tenant: str, connection: str,
          lease_time: timedelta = LEASE) -> str | None:
    """Take the connection's sync lease for ``lease_time`` (``KEYWAY_SYNC_LEASE_SECONDS``);
    ``None`` if another live run holds it."""
    owner = uuid.uuid4().hex
    now = ports.clock.now()
    until = isoformat(now + lease_time)

    def take(tx) -> str | None:
        doc = tx.get(COLLECTION, connection) or {"tenant": tenant}
        lease = doc.get("lease")
        if lease and lease["owner"] != owner and parse_iso(lease["until"]) > now:
            return None
        doc.update(tenant=tenant, state="running", started_at=isoformat(now),
                   lease={"owner": owner, "until": until}, recover_at=until)
        tx.put(COLLECTION, connection, doc)
        return owner

    return ports.business.transaction(take)


def end(ports: Ports, connection: str, owner: str, state: str, *,
        retry_at: datetime | None = None, reason: str | None = None,
        stats: dict[str, Any] | None = None, recover_at: datetime | None = None,
        attempt: int | None = None) -> None:
    """End the run ``owner`` in ``state``; ``recover_at``: when the sync is to be re-requested
    if nothing else has moved it on; ``attempt``: the sync's tries so far (``done`` and
    ``continuing`` made progress: 0)."""
    now = isoformat(ports.clock.now())
    missing = pending.summary(ports.business, connection)

    def write(tx) -> None:
        doc = tx.get(COLLECTION, connection) or {}
        if (doc.get("lease") or {}).get("owner") not in (owner, None):
            return  # a newer run took over; its status wins
        doc.update(state=state, lease=None, finished_at=now, reason=reason,
                   retry_at=isoformat(retry_at) if retry_at else None,
                   recover_at=isoformat(recover_at) if recover_at else None,
                   missing=missing, degraded=bool(missing))
        tries = 0 if state in ("done", "continuing") else attempt
        doc["attempt"] = tries if tries is not None else int(doc.get("attempt") or 0)
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
    notify.sync_ended(ports, connection, state, now)  # sync.completed / sync.failed
