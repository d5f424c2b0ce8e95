"""GitLab's JSON shapes for the metadata endpoints (REST API v4 as docs.gitlab.com/api/
{merge_requests,issues,notes,merge_request_approvals,labels} show them), rendered from the
simulator's stored items with every URL pointing at the simulator. Times carry milliseconds
(``2024-05-01T10:00:00.000Z``) as GitLab's do.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from keyway.simulators.activity import Item, iso, sha
from keyway.simulators.gitlab_api import project_json

ZERO_TIME = {"time_estimate": 0, "total_time_spent": 0, "human_time_estimate": None,
             "human_total_time_spent": None}
NO_TASKS = {"count": 0, "completed_count": 0}


def _when(epoch: int | None) -> str | None:
    return None if epoch is None else iso(epoch, millis=True)


@dataclass(frozen=True)
class Site:
    """A project's addresses on the simulator (``host`` ends with ``/``)."""

    host: str
    project: dict[str, Any]

    @property
    def web(self) -> str:
        return self.host.rstrip("/")

    @property
    def path(self) -> str:
        return self.project["path_with_namespace"]

    @property
    def page(self) -> str:
        return f"{self.web}/{self.path}"

    @property
    def api(self) -> str:
        return f"{self.web}/api/v4/projects/{self.project['id']}"


def user_json(user: Item | None, site: Site) -> dict[str, Any] | None:
    """A "basic user" (an author, assignee or approver)."""
    if user is None:
        return None
    return {"id": user["id"], "username": user["username"], "name": user["name"],
            "state": "active", "locked": False,
            "avatar_url": f"{site.web}/uploads/-/system/user/avatar/{user['id']}/avatar.png",
            "web_url": f"{site.web}/{user['username']}"}


def _common(item: Item, site: Site) -> dict[str, Any]:
    """The fields merge requests and issues share."""
    assignee = user_json(item["assignee"], site)
    return {"id": item["id"], "iid": item["iid"], "project_id": item["project_id"],
            "title": item["title"], "description": item["description"],
            "state": item["state"], "created_at": _when(item["created"]),
            "updated_at": _when(item["updated"]),
            "closed_at": _when(item["closed"]) if item["state"] == "closed" else None,
            "labels": [label["name"] for label in item["labels"]], "milestone": None,
            "author": user_json(item["user"], site), "assignee": assignee,
            "assignees": [assignee] if assignee else [], "user_notes_count": item["notes"],
            "upvotes": 0, "downvotes": 0, "discussion_locked": None,
            "time_stats": dict(ZERO_TIME), "task_completion_status": dict(NO_TASKS)}


def merge_request_json(item: Item, site: Site) -> dict[str, Any]:
    """A merge request as ``/projects/:id/merge_requests`` lists it."""
    iid, state = item["iid"], item["state"]
    closer = user_json(item["assignee"] or item["user"], site)
    merged = state == "merged"
    return {
        **_common(item, site), "merged_by": closer if merged else None,
        "merge_user": closer if merged else None,
        "merged_at": _when(item["closed"]) if merged else None,
        "closed_by": closer if state == "closed" else None, "target_branch": "main",
        "source_branch": f"feature-{iid}", "reviewers": [],
        "source_project_id": item["project_id"], "target_project_id": item["project_id"],
        "draft": item["draft"], "work_in_progress": item["draft"], "imported": False,
        "imported_from": "none", "merge_when_pipeline_succeeds": False,
        "merge_status": "can_be_merged",
        "detailed_merge_status": "mergeable" if state == "opened" else "not_open",
        "sha": sha(site.path, iid, "head"),
        "merge_commit_sha": sha(site.path, iid, "merge") if merged else None,
        "squash_commit_sha": None, "should_remove_source_branch": None,
        "force_remove_source_branch": True, "prepared_at": _when(item["created"]),
        "reference": f"!{iid}", "references": {"short": f"!{iid}", "relative": f"!{iid}",
                                               "full": f"{site.path}!{iid}"},
        "web_url": f"{site.page}/-/merge_requests/{iid}", "squash": False,
        "squash_on_merge": False, "has_conflicts": False,
        "blocking_discussions_resolved": True, "approvals_before_merge": None,
    }


def issue_json(item: Item, site: Site) -> dict[str, Any]:
    """An issue as ``/projects/:id/issues`` lists it."""
    iid, api = item["iid"], f"{site.api}/issues/{item['iid']}"
    closed = item["state"] == "closed"
    return {
        **_common(item, site), "type": "ISSUE", "issue_type": "issue",
        "closed_by": user_json(item["assignee"] or item["user"], site) if closed else None,
        "merge_requests_count": 0, "due_date": None, "confidential": False,
        "web_url": f"{site.page}/-/issues/{iid}", "blocking_issues_count": 0,
        "has_tasks": False, "severity": "UNKNOWN", "moved_to_id": None,
        "service_desk_reply_to": None, "imported": False, "imported_from": "none",
        "_links": {"self": api, "notes": f"{api}/notes", "award_emoji": f"{api}/award_emoji",
                   "project": site.api, "closed_as_duplicate_of": None},
        "references": {"short": f"#{iid}", "relative": f"#{iid}",
                       "full": f"{site.path}#{iid}"},
    }


def note_json(note: Item, site: Site) -> dict[str, Any]:
    """A note; system notes have ``system: true``, diff notes a ``position``."""
    body = {"id": note["id"], "type": note["type"], "body": note["body"], "attachment": None,
            "author": user_json(note["user"], site), "created_at": _when(note["created"]),
            "updated_at": _when(note["updated"]), "system": note["system"],
            "noteable_id": note["noteable_id"], "noteable_type": note["noteable_type"],
            "project_id": note["project_id"], "commit_id": None,
            "resolvable": note["type"] == "DiffNote", "confidential": False,
            "internal": False, "imported": False, "imported_from": "none",
            "noteable_iid": note["iid"], "commands_changes": {}}
    if note["type"] == "DiffNote":
        head = sha(site.path, note["iid"], "head")
        body.update(resolved=False, resolved_by=None, resolved_at=None, position={
            "base_sha": sha(site.path, note["iid"], "base"), "start_sha": head,
            "head_sha": head, "old_path": note["path"], "new_path": note["path"],
            "position_type": "text", "old_line": None, "new_line": note["line"],
            "line_range": None})
    return body


def approvals_json(item: Item, approvals: list[Item], site: Site) -> dict[str, Any]:
    """``GET /projects/:id/merge_requests/:iid/approvals`` (one approval required)."""
    return {"id": item["id"], "iid": item["iid"], "project_id": item["project_id"],
            "title": item["title"], "description": item["description"],
            "state": item["state"], "created_at": _when(item["created"]),
            "updated_at": _when(item["updated"]), "merge_status": "can_be_merged",
            "approved": bool(approvals), "approvals_required": 1,
            "approvals_left": 0 if approvals else 1, "require_password_to_approve": False,
            "approved_by": [{"user": user_json(a["user"], site)} for a in approvals],
            "suggested_approvers": [], "approvers": [], "approver_groups": [],
            "user_has_approved": False, "user_can_approve": True,
            "approval_rules_left": [], "has_approval_rules": False,
            "merge_request_approvers_available": True,
            "multiple_approval_rules_available": True, "invalid_approvers_rules": []}


def label_json(label: Item) -> dict[str, Any]:
    return {"id": label["id"], "name": label["name"], "color": label["color"],
            "text_color": "#FFFFFF", "description": label["description"],
            "description_html": f"<p>{html.escape(label['description'])}</p>",
            "open_issues_count": label.get("open_issues_count", 0),
            "closed_issues_count": label.get("closed_issues_count", 0),
            "open_merge_requests_count": label.get("open_merge_requests_count", 0),
            "subscribed": False, "priority": None, "is_project_label": True}


def project_full_json(project: dict[str, Any], host: str, open_issues: int) -> dict[str, Any]:
    """``GET /projects/:id``: the list shape plus the single project's fields."""
    api = f"{host.rstrip('/')}/api/v4/projects/{project['id']}"
    links = {"self": api, "issues": f"{api}/issues", "merge_requests": f"{api}/merge_requests",
             "repo_branches": f"{api}/repository/branches", "labels": f"{api}/labels",
             "events": f"{api}/events", "members": f"{api}/members"}
    return {**project_json(project, host), "_links": links, "open_issues_count": open_issues,
            "issues_enabled": True, "merge_requests_enabled": True, "wiki_enabled": True,
            "jobs_enabled": True, "snippets_enabled": True, "issues_access_level": "enabled",
            "merge_requests_access_level": "enabled", "creator_id": 1,
            "import_status": "none", "shared_with_groups": [],
            "permissions": {"project_access": {"access_level": 30, "notification_level": 3},
                            "group_access": None}}
