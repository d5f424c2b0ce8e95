"""GitLab webhook objects → the REST (v4) shapes :mod:`shared.records.gitlab` reads.

Unlike GitHub's, GitLab's hook objects differ from its REST objects:

* timestamps may be ``2015-05-17 18:21:36 UTC`` (→ ISO-8601, :func:`iso`);
* the author is only ``author_id``; the top-level ``user`` is whoever triggered the event. The
  author's login is the user's when the ids match, else the stored record's when its author has
  that id (:func:`author`); otherwise the author is unknown (``None``) rather than wrong;
* label objects carry ``title`` (REST: ``name``); issue assignees may lack ids, which come in
  order from ``assignee_ids``;
* a hook gives no ``closed_at`` / ``merged_at``: when the event closes or merges the object
  they are its ``updated_at``; otherwise the stored values are kept while the state still says
  closed/merged (:func:`ended`);
* the URL is ``url`` (REST: ``web_url``), the head commit ``last_commit.id`` (REST: ``sha``),
  a note's text ``note`` (REST: ``body``).
"""

from __future__ import annotations

import re
from typing import Any

from shared.records import model as m

_HOOK_TIME = re.compile(r"^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?) (UTC|[+-]\d{4})$")


def iso(value: Any) -> Any:
    """``2015-05-17 18:21:36 UTC`` / ``… +0200`` → ISO-8601; anything else unchanged."""
    match = _HOOK_TIME.match(value) if isinstance(value, str) else None
    if match is None:
        return value
    day, clock, zone = match.groups()
    offset = "+00:00" if zone == "UTC" else f"{zone[:3]}:{zone[3:]}"
    return f"{day}T{clock}{offset}"


def author(payload: dict[str, Any], author_id: Any, stored: dict | None) -> dict | None:
    """A REST-style ``{"id", "username"}`` for ``author_id``, when it can be known."""
    if author_id is None:
        return None
    user = payload.get("user")
    if isinstance(user, dict) and user.get("id") == author_id and user.get("username"):
        return {"id": author_id, "username": user["username"]}
    known = (stored or {}).get("author")
    if isinstance(known, dict) and str(known.get("external_id")) == str(author_id):
        return {"id": author_id, "username": known.get("login")}
    return None


def assignees(payload: dict[str, Any], attrs: dict[str, Any]) -> list[dict]:
    """Assignees with ids: as given, or paired in order with ``assignee_ids``."""
    people = [p for p in payload.get("assignees") or () if isinstance(p, dict)]
    ids = attrs.get("assignee_ids")
    if isinstance(ids, list) and len(ids) == len(people):
        people = [{**p, "id": p.get("id", pid)} for p, pid in zip(people, ids, strict=True)]
    return [{"id": p["id"], "username": p["username"]} for p in people
            if p.get("id") is not None and p.get("username")]


def labels(payload: dict[str, Any], attrs: dict[str, Any]) -> list[dict]:
    """The event's label objects as REST labels (``name``, ``color``, ``description``)."""
    found = payload.get("labels") if payload.get("labels") is not None else attrs.get("labels")
    return [{"id": item.get("id"), "name": item.get("title"), "color": item.get("color"),
             "description": item.get("description")}
            for item in found or () if isinstance(item, dict)]


def ended(attrs: dict[str, Any], stored: dict | None, field: str, states: set[str],
          actions: set[str]) -> Any:
    """``closed_at`` / ``merged_at`` for a hook object (see the module docstring)."""
    if attrs.get(field) is not None:
        return iso(attrs[field])
    if attrs.get("state") not in states:
        return None
    if attrs.get("action") in actions:
        return iso(attrs.get("updated_at"))
    return (stored or {}).get(field)


def merge_request(payload: dict[str, Any], stored: dict | None) -> dict[str, Any]:
    attrs = m.obj(payload.get("object_attributes"), "object_attributes")
    last = attrs.get("last_commit") if isinstance(attrs.get("last_commit"), dict) else {}
    return {
        "id": attrs.get("id"), "iid": attrs.get("iid"), "title": attrs.get("title"),
        "project_id": attrs.get("target_project_id", attrs.get("project_id")),
        "state": attrs.get("state"), "web_url": attrs.get("url"),
        "draft": attrs.get("draft", attrs.get("work_in_progress")),
        "created_at": iso(attrs.get("created_at")), "updated_at": iso(attrs.get("updated_at")),
        "closed_at": ended(attrs, stored, "closed_at", {"closed"}, {"close"}),
        "merged_at": ended(attrs, stored, "merged_at", {"merged"}, {"merge"}),
        "author": author(payload, attrs.get("author_id"), stored),
        "assignees": assignees(payload, attrs),
        "labels": [label["name"] for label in labels(payload, attrs)],
        "source_branch": attrs.get("source_branch"), "target_branch": attrs.get("target_branch"),
        "sha": last.get("id"), "merge_commit_sha": attrs.get("merge_commit_sha"),
    }


def issue(payload: dict[str, Any], stored: dict | None) -> dict[str, Any]:
    attrs = m.obj(payload.get("object_attributes"), "object_attributes")
    return {
        "id": attrs.get("id"), "iid": attrs.get("iid"), "title": attrs.get("title"),
        "project_id": attrs.get("project_id"), "state": attrs.get("state"),
        "web_url": attrs.get("url"),
        "created_at": iso(attrs.get("created_at")), "updated_at": iso(attrs.get("updated_at")),
        "closed_at": ended(attrs, stored, "closed_at", {"closed"}, {"close"}),
        "author": author(payload, attrs.get("author_id"), stored),
        "assignees": assignees(payload, attrs),
        "labels": [label["name"] for label in labels(payload, attrs)],
    }


def note(payload: dict[str, Any], stored: dict | None) -> dict[str, Any]:
    attrs = m.obj(payload.get("object_attributes"), "object_attributes")
    return {
        "id": attrs.get("id"), "body": attrs.get("note"), "system": attrs.get("system"),
        "type": attrs.get("type"), "position": attrs.get("position"),
        "project_id": attrs.get("project_id"), "commit_id": attrs.get("commit_id") or None,
        "created_at": iso(attrs.get("created_at")), "updated_at": iso(attrs.get("updated_at")),
        "author": author(payload, attrs.get("author_id"), stored),
    }
