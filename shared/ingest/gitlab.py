"""GitLab webhook events → records: a routing table of ``object_kind`` → normalizer.

Handled: merge request events (``merge_request``), issue events (``issue``; confidential
issues too) and comment events (``note``) on merge requests and issues. Labels have no event
of their own in GitLab's project and group hooks: the label objects that merge request and
issue events carry (``labels``, and ``changes.labels.current``) are upserted as label records.
Comments on commits and snippets are acknowledged and ignored (keyway keeps neither). GitLab
sends no event when a comment is deleted (its documented note actions are ``create`` and
``update``), so deleted notes are left to the sync.

Hook objects are reshaped into REST objects (:mod:`shared.ingest.gitlab_shapes`) and
normalized by :mod:`shared.records.gitlab`, the fetcher's own functions.
"""

from __future__ import annotations

from typing import Any

from shared.ingest import gitlab_shapes as shapes
from shared.ingest.event import Change, Event, Upsert
from shared.ingest.routes import Route
from shared.ports import Ports
from shared.records import gitlab
from shared.records import model as m
from shared.records.model import Context, record_id

NOTE_PARENTS = {"MergeRequest": ("pull_request", "merge_request"), "Issue": ("issue", "issue")}


def _attrs(event: Event) -> dict[str, Any]:
    return m.obj(event.payload.get("object_attributes"), "object_attributes")


def _stored(ports: Ports, ctx: Context, kind: str, key: str) -> dict | None:
    return ports.business.get(kind, record_id(ctx.tenant, ctx.provider, kind, key))


def _labels(event: Event, ctx: Context) -> list[Change]:
    attrs = _attrs(event)
    changes = event.payload.get("changes")
    current = ((changes or {}).get("labels") or {}).get("current") \
        if isinstance(changes, dict) else None
    found = {item["id"]: item for source in ({"labels": current}, event.payload)
             for item in shapes.labels(source, attrs) if item.get("id") is not None}
    return [Upsert(gitlab.label(item, ctx)) for item in found.values()]


def merge_request(event: Event, ctx: Context, ports: Ports) -> list[Change]:
    key = m.numbered_key(ctx, m.integer(_attrs(event), "iid"))
    raw = shapes.merge_request(event.payload, _stored(ports, ctx, "pull_requests", key))
    return [Upsert(gitlab.pull_request(raw, ctx)), *_labels(event, ctx)]


def issue(event: Event, ctx: Context, ports: Ports) -> list[Change]:
    key = m.numbered_key(ctx, m.integer(_attrs(event), "iid"))
    raw = shapes.issue(event.payload, _stored(ports, ctx, "issues", key))
    record = gitlab.issue(raw, ctx)
    return [*([Upsert(record)] if record is not None else []), *_labels(event, ctx)]


def note(event: Event, ctx: Context, ports: Ports) -> list[Change]:
    parent_kind, field = NOTE_PARENTS[_attrs(event).get("noteable_type")]
    parent = m.obj(event.payload.get(field), field)
    stored = _stored(ports, ctx, "comments", m.ident(_attrs(event)))
    record = gitlab.comment(shapes.note(event.payload, stored), ctx, parent_kind,
                            m.integer(parent, "iid"))
    return [Upsert(record)] if record is not None else []


def _skip_note(event: Event) -> str | None:
    kind = (event.payload.get("object_attributes") or {}).get("noteable_type")
    return None if kind in NOTE_PARENTS else f"note on {str(kind)[:40]}"


def repository_of(payload: dict[str, Any]) -> Any:
    project = payload.get("project")
    if isinstance(project, dict) and project.get("id") is not None:
        return project["id"]
    return payload.get("project_id")


def event_name(event: Event) -> str:
    """GitLab names the event in the body's ``object_kind`` (``X-Gitlab-Event`` is a label)."""
    kind = event.payload.get("object_kind")
    return kind if isinstance(kind, str) else ""


ROUTES: dict[str, Route] = {
    "merge_request": Route("repository", merge_request),
    "issue": Route("repository", issue),
    "note": Route("repository", note, skip=_skip_note),
}
