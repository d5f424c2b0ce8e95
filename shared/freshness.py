"""How fresh a connection's records are: per record kind, the last time they were known
complete.

A list walk that reached its end without a gap — a full walk, an incremental one that reached
its cursor, a ``304`` (nothing changed), a walk resumed from its checkpoint in a continuation
and finished there — makes its kind complete as of the time that walk began
(:attr:`shared.fetch.walk.Walker.fresh`). A walk cut by the time budget, a rate limit or a
failure advances nothing. A list's walk also completes the kinds of its children (GitLab's
notes and approvals, GitHub's reviews: read for every item that changed, so complete when the
list is); children the provider refused are not held back here but listed in the sync
status's ``missing`` (:mod:`shared.fetch.status`). Where several lists complete one kind
(GitHub's issue and review comments), the kind is as fresh as the oldest of them, and only
once each has finished.

Stored where it is cheap, one write per repository per run and one per connection per run:

* the repository record: ``fresh_as_of: {kind: time}`` (kept across provider updates,
  :mod:`shared.records.store`); only ever moves forward;
* the connection: ``freshness: {"fresh_as_of": {kind: time}, "never": {kind: n},
  "repositories": n, "updated_at"}`` rewritten at the end of every run: for the
  ``repositories`` kind the time of the connection's repositories list, for every other kind
  the oldest ``fresh_as_of`` across its live repositories that have that kind (a tracker that
  is off has no issues), and ``never``, how many of them have never completed that kind
  (``null`` time when none has).

:func:`tenant_view` answers ``GET /v1/freshness`` from the connection summaries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from shared.clock import isoformat
from shared.ports import DocumentStore, Filter, Ports

REPOSITORIES = "repositories"


def complete_kinds(lists: Iterable[tuple[str, str]], finished: dict[str, str | None]
                   ) -> dict[str, str]:
    """Per kind of ``lists`` ((list name, kind) of one repository), the oldest time among
    ``finished`` (list name → fresh time) — only kinds whose every list finished."""
    by_kind: dict[str, list[str | None]] = {}
    for name, kind in lists:
        by_kind.setdefault(kind, []).append(finished.get(name))
    return {kind: min(times) for kind, times in by_kind.items()  # type: ignore[type-var]
            if all(t is not None for t in times)}


def record_repository(store: DocumentStore, repository: str, fresh: dict[str, str]) -> None:
    """Move the repository record's ``fresh_as_of`` forward to ``fresh`` (one transaction)."""
    if not fresh:
        return

    def write(tx) -> None:
        doc = tx.get(REPOSITORIES, repository)
        if doc is None or doc.get("deleted"):
            return
        stored = dict(doc.get("fresh_as_of") or {})
        merged = {**stored, **{k: max(v, stored.get(k) or v) for k, v in fresh.items()}}
        if merged != stored:
            tx.put(REPOSITORIES, repository, {**doc, "fresh_as_of": merged})

    store.transaction(write)


def summarize(repositories: Iterable[dict], kinds_of: Callable[[dict], set[str]],
              listed: str | None) -> dict[str, Any]:
    """A connection's summary from its live repository records (module docstring)."""
    oldest: dict[str, str | None] = {}
    never: dict[str, int] = {}
    count = 0
    for repo in repositories:
        count += 1
        fresh = repo.get("fresh_as_of") or {}
        for kind in sorted(kinds_of(repo)):
            at = fresh.get(kind)
            oldest.setdefault(kind, None)
            never[kind] = never.get(kind, 0) + (at is None)
            if at is not None and (oldest[kind] is None or at < oldest[kind]):
                oldest[kind] = at
    return {"fresh_as_of": {REPOSITORIES: listed, **oldest}, "never": never,
            "repositories": count}


def record_connection(ports: Ports, connection: str, kinds_of: Callable[[dict], set[str]],
                      listed: str | None) -> None:
    """Rewrite the connection's ``freshness`` summary; ``listed``: when its repositories list
    finished in this run (``None``: keep the stored time)."""
    repos = [s.data for s in ports.business.query(
        REPOSITORIES, [Filter("connection", "==", connection), Filter("deleted", "==", False)])]

    def write(tx) -> None:
        doc = tx.get("connections", connection)
        if doc is None:
            return
        stored = ((doc.get("freshness") or {}).get("fresh_as_of") or {}).get(REPOSITORIES)
        summary = summarize(repos, kinds_of, max(listed or "", stored or "") or None)
        summary["updated_at"] = isoformat(ports.clock.now())
        tx.put("connections", connection, {**doc, "freshness": summary})

    ports.business.transaction(write)


def connection_view(doc: dict[str, Any]) -> dict[str, Any]:
    """One connection's freshness as readers see it (never ``None``)."""
    summary = doc.get("freshness") or {}
    return {"fresh_as_of": summary.get("fresh_as_of") or {}, "never": summary.get("never") or {},
            "repositories": summary.get("repositories"), "updated_at": summary.get("updated_at")}


def tenant_view(store: DocumentStore, tenant: str) -> dict[str, Any]:
    """``GET /v1/freshness``: per connection its summary; per kind across the tenant the
    oldest time (of those that completed it; ``null`` if none did) and how many repositories
    never completed it. Disconnected connections are left out."""
    items: list[dict[str, Any]] = []
    oldest: dict[str, str | None] = {}
    never: dict[str, int] = {}
    for snap in sorted(store.query("connections", [Filter("tenant", "==", tenant)]),
                       key=lambda s: s.id):
        if snap.data.get("status") in ("disconnecting", "disconnected"):
            continue
        view = connection_view(snap.data)
        items.append({"connection": snap.id, "provider": snap.data.get("provider"), **view})
        for kind, at in view["fresh_as_of"].items():
            seen = oldest.get(kind)
            oldest[kind] = min(t for t in (seen, at) if t) if seen or at else None
        for kind, n in view["never"].items():
            never[kind] = never.get(kind, 0) + n
    return {"fresh_as_of": oldest, "never": never, "connections": items}
