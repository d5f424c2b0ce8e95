"""Bitbucket Cloud webhook events → records: a routing table of ``X-Event-Key`` → normalizer.

Webhook entities have the REST 2.0 shapes, so :mod:`shared.records.bitbucket` — the fetcher's
own functions — normalizes them. Handled:

* ``pullrequest:created|updated|fulfilled|rejected`` → the pull request;
* ``pullrequest:comment_created|comment_updated`` → the comment, ``comment_deleted`` → its
  tombstone (just after the comment's ``updated_on``, or the arrival when later);
* ``pullrequest:approved`` / ``changes_request_created`` → that reviewer's review, versioned
  by the event's own ``date``; ``unapproved`` / ``changes_request_removed`` → the review's
  tombstone as of that date, only while the stored decision is the one withdrawn (an approval
  replaces a change request under the same key, and is not deleted by its removal);
* ``issue:created|updated`` → the issue, ``issue:comment_created`` → the comment.

Anything else (pushes, repository events, comment resolution) is acknowledged and ignored.
"""

from __future__ import annotations

from typing import Any

from shared.ingest.event import Change, Event, Tombstone, Upsert, deleted_at
from shared.ingest.routes import Route
from shared.ports import Ports
from shared.records import bitbucket
from shared.records import model as m
from shared.records.model import Context, record_id

DECISIONS = {"pullrequest:approved": ("approval", "approved"),
             "pullrequest:changes_request_created": ("changes_request", "changes_requested")}
WITHDRAWALS = {"pullrequest:unapproved": ("approval", "approved"),
               "pullrequest:changes_request_removed": ("changes_request", "changes_requested")}


def _part(event: Event, name: str) -> dict[str, Any]:
    return m.obj(event.payload.get(name), name)


def _number(event: Event, name: str) -> int:
    return m.integer(_part(event, name), "id")


def pull_request(event: Event, ctx: Context, ports: Ports) -> list[Change]:
    return [Upsert(bitbucket.pull_request(_part(event, "pullrequest"), ctx))]


def pr_comment(event: Event, ctx: Context, ports: Ports) -> list[Change]:
    raw = _part(event, "comment")
    if event.name == "pullrequest:comment_deleted":
        rid = record_id(ctx.tenant, ctx.provider, "comments",
                        bitbucket.comment_key("pull_request", raw))
        return [Tombstone("comments", rid, deleted_at(event, raw, "updated_on"))]
    record = bitbucket.comment(raw, ctx, "pull_request", _number(event, "pullrequest"))
    return [Upsert(record)] if record is not None else []


def _review_id(ctx: Context, number: int, user: Any) -> str:
    uuid = m.obj(user, "user").get("uuid")
    return record_id(ctx.tenant, ctx.provider, "reviews", f"{m.numbered_key(ctx, number)}:{uuid}")


def decision(event: Event, ctx: Context, ports: Ports) -> list[Change]:
    field, state = DECISIONS[event.name]
    raw = _part(event, field)
    return [Upsert(bitbucket.review(raw.get("user"), ctx, _number(event, "pullrequest"), state,
                                    m.require(raw, "date")))]


def withdrawal(event: Event, ctx: Context, ports: Ports) -> list[Change]:
    field, state = WITHDRAWALS[event.name]
    raw = _part(event, field)
    rid = _review_id(ctx, _number(event, "pullrequest"), raw.get("user"))
    stored = ports.business.get("reviews", rid)
    if stored is not None and not stored.get("deleted") and stored.get("state") != state:
        return []  # the reviewer's current decision is another one: nothing is withdrawn
    return [Tombstone("reviews", rid, m.convert(m.require(raw, "date"), "date"))]


def issue(event: Event, ctx: Context, ports: Ports) -> list[Change]:
    return [Upsert(bitbucket.issue(_part(event, "issue"), ctx))]


def issue_comment(event: Event, ctx: Context, ports: Ports) -> list[Change]:
    record = bitbucket.comment(_part(event, "comment"), ctx, "issue", _number(event, "issue"))
    return [Upsert(record)] if record is not None else []


def repository_of(payload: dict[str, Any]) -> Any:
    repo = payload.get("repository")
    return repo.get("uuid") if isinstance(repo, dict) else None


def event_name(event: Event) -> str:
    """Bitbucket names the event in ``X-Event-Key`` (``pullrequest:created``)."""
    return event.name


ROUTES: dict[str, Route] = {
    **{f"pullrequest:{action}": Route("repository", pull_request)
       for action in ("created", "updated", "fulfilled", "rejected")},
    **{f"pullrequest:comment_{action}": Route("repository", pr_comment)
       for action in ("created", "updated", "deleted")},
    **{name: Route("repository", decision) for name in DECISIONS},
    **{name: Route("repository", withdrawal) for name in WITHDRAWALS},
    "issue:created": Route("repository", issue),
    "issue:updated": Route("repository", issue),
    "issue:comment_created": Route("repository", issue_comment),
}
