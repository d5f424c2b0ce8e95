"""GitHub webhook events → records: a routing table of event name → normalizer.

Webhook objects have the REST shapes, so each normalizer hands them to
:mod:`shared.records.github` — the same functions the fetcher uses, so a webhook and a sync of
one object land on one record. Differences handled here: review states arrive lower-case
(``commented``), and deletions (``action: deleted``; an issue ``transferred`` away, reason
``transferred``) become tombstones. ``repository`` events: ``deleted`` / ``transferred``
tombstone the repository and every record under it (reason ``deleted`` / ``transferred``; a
repository transferred to an owner the connection still reaches reappears in the follow-up
sync's repository list, which clears its tombstone, and its records in the id sweep made due
here, :mod:`shared.fetch.reconcile`), and also ask for a follow-up sync; ``renamed`` (and
``edited``) rewrites the repository record from the payload — its records keep their identity,
because ids use the repository's id, never its name. Installation events are handled by
:mod:`shared.ingest.installations`.
"""

from __future__ import annotations

from typing import Any

from shared.fetch import reconcile_state
from shared.ingest import installations
from shared.ingest.event import Change, Event, RepositoryGone, Tombstone, Upsert, deleted_at
from shared.ingest.routes import Route
from shared.ingest.sync import request_sync
from shared.ports import Ports
from shared.records import github
from shared.records import model as m
from shared.records.model import Context, record_id

GONE = frozenset({"deleted"})


def _part(event: Event, name: str) -> dict[str, Any]:
    return m.obj(event.payload.get(name), name)


def _tombstone(event: Event, ctx: Context, kind: str, key: str, raw: dict,
               reason: str = "deleted") -> Tombstone:
    return Tombstone(kind, record_id(ctx.tenant, ctx.provider, kind, key), deleted_at(event, raw),
                     reason)


def pull_request(event: Event, ctx: Context, ports: Ports) -> list[Change]:
    return [Upsert(github.pull_request(_part(event, "pull_request"), ctx))]


def issue(event: Event, ctx: Context, ports: Ports) -> list[Change]:
    raw = _part(event, "issue")
    if event.action in GONE | {"transferred"}:
        key = m.numbered_key(ctx, m.integer(raw, "number"))
        reason = "transferred" if event.action == "transferred" else "deleted"
        return [_tombstone(event, ctx, "issues", key, raw, reason)]
    record = github.issue(raw, ctx)
    return [Upsert(record)] if record is not None else []


def issue_comment(event: Event, ctx: Context, ports: Ports) -> list[Change]:
    parent, raw = _part(event, "issue"), _part(event, "comment")
    if event.action in GONE:
        return [_tombstone(event, ctx, "comments", m.ident(raw), raw)]
    kind = "pull_request" if parent.get("pull_request") is not None else "issue"
    return [Upsert(github.comment(raw, ctx, kind, m.integer(parent, "number")))]


def label(event: Event, ctx: Context, ports: Ports) -> list[Change]:
    raw = _part(event, "label")
    if event.action in GONE:
        return [_tombstone(event, ctx, "labels", m.ident(raw), raw)]
    return [Upsert(github.label(raw, ctx))]


def review(event: Event, ctx: Context, ports: Ports) -> list[Change]:
    raw, pull = _part(event, "review"), _part(event, "pull_request")
    state = raw.get("state")
    shaped = {**raw, "state": state.upper()} if isinstance(state, str) else raw
    return [Upsert(github.review(shaped, ctx, m.integer(pull, "number")))]


def review_comment(event: Event, ctx: Context, ports: Ports) -> list[Change]:
    raw, pull = _part(event, "comment"), _part(event, "pull_request")
    if event.action in GONE:
        return [_tombstone(event, ctx, "comments", f"review:{m.ident(raw)}", raw)]
    return [Upsert(github.comment(raw, ctx, "pull_request", m.integer(pull, "number")))]


REPOSITORY_GONE = {"deleted": "deleted", "transferred": "transferred"}
RECOVERED = "provider_api"  # verified_by of a delivery vault-P took from the provider's log
REPOSITORY_EDITS = frozenset({"renamed", "edited", "archived", "unarchived", "privatized",
                              "publicized"})


def repository(event: Event, ctx: Context, ports: Ports) -> list[Change]:
    """``repository`` events (see the module docstring); other actions are ignored."""
    raw = _part(event, "repository")
    if event.action in REPOSITORY_GONE:
        # still within reach after a transfer: the follow-up sync's repository list restores
        # it, and its due id sweep (run after that sync) restores the records under it
        reconcile_state.mark_due(ports.business, m.repository_of(ctx), event.received_at,
                                 ctx.connection)
        request_sync(ports, event, ctx)
        return [RepositoryGone(m.repository_of(ctx), event.received_at,
                               REPOSITORY_GONE[event.action])]
    if event.action not in REPOSITORY_EDITS:
        return []
    record = github.repository(raw, ctx)
    if event.verified_by == RECOVERED:
        # read from a delivery log, maybe an hour late: its arrival says nothing of when the
        # edit happened, so an older rename must not win over a newer one; the sync it asks
        # for reads the repository as it is now
        request_sync(ports, event, ctx)
        return [Upsert(record)]
    # the rename is news as of the webhook's arrival even when the payload's updated_at lags
    return [Upsert({**record, "updated_at": max(record["updated_at"], event.received_at)})]


def repository_of(payload: dict[str, Any]) -> Any:
    repo = payload.get("repository")
    return repo.get("id") if isinstance(repo, dict) else None


def installation_of(payload: dict[str, Any]) -> Any:
    inst = payload.get("installation")
    return inst.get("id") if isinstance(inst, dict) else None


def event_name(event: Event) -> str:
    """GitHub names the event in ``X-GitHub-Event``."""
    return event.name


ROUTES: dict[str, Route] = {
    "pull_request": Route("repository", pull_request),
    "issues": Route("repository", issue),
    "issue_comment": Route("repository", issue_comment),
    "label": Route("repository", label),
    "pull_request_review": Route("repository", review),
    "pull_request_review_comment": Route("repository", review_comment),
    "repository": Route("repository", repository),
    "installation": Route("installation", installations.installation),
    "installation_repositories": Route("installation", installations.repositories),
}
