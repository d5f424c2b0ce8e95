"""Jira Cloud's REST v3 JSON shapes (developer.atlassian.com/cloud/jira/platform/rest/v3:
users, projects, issues with ``fields``, comments with ADF bodies), rendered from the
simulator's stored items. Times are Jira's ``2024-05-01T20:00:00.000+1000``, in the time zone
of the user who asks (as Jira renders them); ``self`` links point at the site URL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from keyway.simulators.jira_data import Item, Project


def when(ms: int | None, zone: str) -> str | None:
    """Epoch milliseconds → ``2024-05-01T20:00:00.000+1000`` in ``zone``."""
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms / 1000, ZoneInfo(zone))
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}" + moment.strftime("%z")


def adf(text: Any) -> dict[str, Any]:
    """A stored body as ADF: posted bodies are ADF already; seeded ones are plain text."""
    if isinstance(text, dict):
        return text
    return {"type": "doc", "version": 1, "content": [
        {"type": "paragraph", "content": [{"type": "text", "text": str(text)}]}]}


def user_json(user: Item | None, site: str, zone: str | None = None) -> dict[str, Any] | None:
    if user is None:
        return None
    account = user["accountId"]
    found = {"self": f"{site}/rest/api/3/user?accountId={account}", "accountId": account,
             "accountType": "atlassian", "displayName": user["displayName"], "active": True,
             "avatarUrls": {size: f"https://avatar.example/{account}/{size}"
                            for size in ("48x48", "24x24", "16x16", "32x32")}}
    if zone is not None:
        found["timeZone"] = zone
    return found


def project_json(project: Project, site: str) -> dict[str, Any]:
    return {"expand": "description,lead,issueTypes,url,projectKeys,permissions,insight",
            "self": f"{site}/rest/api/3/project/{project.id}", "id": str(project.id),
            "key": project.key, "name": project.name,
            "avatarUrls": {"48x48": f"{site}/rest/api/3/universal_avatar/view/type/project"},
            "projectTypeKey": "software", "simplified": False, "style": "classic",
            "isPrivate": False, "properties": {}}


def _status(status: tuple[str, str], site: str) -> dict[str, Any]:
    name, category = status
    ids = {"new": 2, "indeterminate": 4, "done": 3}
    return {"self": f"{site}/rest/api/3/status/{ids[category]}", "description": "",
            "name": name, "id": str(ids[category]), "statusCategory": {
                "self": f"{site}/rest/api/3/statuscategory/{ids[category]}",
                "id": ids[category], "key": category, "name": name}}


def comment_page(issue: Item, comments: list[Item], site: str, zone: str,
                 cap: int) -> dict[str, Any]:
    """An issue's ``comment`` field: the first ``cap`` of its ``comments`` (oldest first) and
    their ``total`` — a page like the comment list's first (``PageOfComments``)."""
    return {"comments": [comment_json(c, site, zone, False) for c in comments[:cap]],
            "self": f"{site}/rest/api/3/issue/{issue['id']}/comment", "maxResults": cap,
            "total": len(comments), "startAt": 0}


def issue_json(issue: Item, project: Project, site: str, zone: str,
               fields: set[str], comments: dict[str, Any] | None = None) -> dict[str, Any]:
    """An issue with the requested ``fields`` (``*all`` for every one we keep); ``comments``:
    its ``comment`` field (:func:`comment_page`), when asked for."""
    every = {
        "summary": issue["summary"], "status": _status(issue["status"], site),
        "created": when(issue["created"], zone), "updated": when(issue["updated"], zone),
        "resolutiondate": when(issue["resolved"], zone),
        "reporter": user_json(issue["reporter"], site),
        "creator": user_json(issue["reporter"], site),
        "assignee": user_json(issue["assignee"], site), "labels": list(issue["labels"]),
        "project": {"self": f"{site}/rest/api/3/project/{project.id}", "id": str(project.id),
                    "key": project.key, "name": project.name, "projectTypeKey": "software",
                    "simplified": False},
        **({"comment": comments} if comments is not None else {}),
    }
    chosen = every if "*all" in fields else {k: v for k, v in every.items() if k in fields}
    return {"expand": "renderedFields,names,schema,operations,editmeta,changelog",
            "id": str(issue["id"]), "self": f"{site}/rest/api/3/issue/{issue['id']}",
            "key": issue["key"], **({"fields": chosen} if chosen else {})}


def comment_json(comment: Item, site: str, zone: str, properties: bool) -> dict[str, Any]:
    author = user_json(comment["author"], site)
    found = {"self": f"{site}/rest/api/3/issue/{comment['issue']}/comment/{comment['id']}",
             "id": str(comment["id"]), "author": author, "body": adf(comment["body"]),
             "updateAuthor": author, "created": when(comment["created"], zone),
             "updated": when(comment["updated"], zone), "jsdPublic": True}
    if properties:
        found["properties"] = list(comment["properties"])
    return found


ISSUE_EVENT_TYPES = {"jira:issue_created": "issue_created", "jira:issue_updated": "issue_generic",
                     "jira:issue_deleted": "issue_deleted"}


def webhook_event(event: str, issue: Item, project: Project, site: str, user: Item,
                  now_ms: int, comment: Item | None = None) -> dict[str, Any]:
    """A webhook body as Jira sends it (REST v2 shapes: a comment body is a string); times in
    UTC. ``matchedWebhookIds`` is added by the delivery."""
    body: dict[str, Any] = {"timestamp": now_ms, "webhookEvent": event,
                            "user": user_json(user, site)}
    if comment is None:
        body["issue_event_type_name"] = ISSUE_EVENT_TYPES.get(event, "issue_generic")
        body["issue"] = issue_json(issue, project, site, "UTC", {"*all"})
        return body
    text = comment["body"] if isinstance(comment["body"], str) else _plain(comment["body"])
    body["comment"] = {**comment_json(comment, site, "UTC", False), "body": text}
    body["issue"] = issue_json(issue, project, site, "UTC", {"summary", "status", "project"})
    return body


def _plain(node: Any) -> str:
    """The text of an ADF body (what a REST v2 payload carries instead)."""
    if isinstance(node, dict):
        return str(node.get("text") or "") + "".join(_plain(c) for c in node.get("content", []))
    return ""
