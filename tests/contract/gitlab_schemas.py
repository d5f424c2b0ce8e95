"""Hand-written JSON schemas (draft 4) of the GitLab REST v4 answers keyway reads.

GitLab publishes no machine-readable description usable here (its ``openapi_v2.yaml`` lives in
GitLab's own repository and covers few of these endpoints), so each schema below is derived
from the fields its GitLab documentation page lists (page titles in ``docs/PROVIDERS.md``),
limited to what keyway reads plus the fields that identify an object. ``required`` lists what
the page shows in every answer; ``nullable`` fields are the ones the page shows as ``null``.
"""

from __future__ import annotations

from typing import Any


def _null(kind: str | dict[str, Any]) -> dict[str, Any]:
    schema = {"type": kind} if isinstance(kind, str) else kind
    return {"anyOf": [schema, {"type": "null"}]}


def _obj(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "object", "required": sorted(required),
            "properties": {**required, **(optional or {})}}


TIME = {"type": "string", "format": "date-time"}
URL = {"type": "string", "format": "uri"}
ID = {"type": "integer", "minimum": 1}

# "Users API" (basic user, as embedded in merge requests, issues, notes and approvals)
BASIC_USER = _obj({"id": ID, "username": {"type": "string"}, "name": {"type": "string"},
                   "state": {"type": "string"}, "web_url": URL},
                  {"avatar_url": _null("string"), "locked": {"type": "boolean"}})
# "Users API", GET /user
CURRENT_USER = _obj({"id": ID, "username": {"type": "string"}, "name": {"type": "string"},
                     "state": {"type": "string"}, "web_url": URL})
NAMESPACE = _obj({"id": ID, "name": {"type": "string"}, "path": {"type": "string"},
                  "kind": {"enum": ["group", "user"]}, "full_path": {"type": "string"}},
                 {"parent_id": _null("integer"), "web_url": URL})
# "Projects API"
PROJECT = _obj({
    "id": ID, "name": {"type": "string"}, "path": {"type": "string"},
    "path_with_namespace": {"type": "string"}, "name_with_namespace": {"type": "string"},
    "description": _null("string"), "default_branch": _null("string"),
    "visibility": {"enum": ["private", "internal", "public"]}, "web_url": URL,
    "namespace": NAMESPACE, "created_at": TIME, "last_activity_at": TIME,
    "archived": {"type": "boolean"},
}, {"updated_at": _null(TIME), "issues_enabled": {"type": "boolean"},
    "issues_access_level": {"enum": ["disabled", "private", "enabled"]}})
SINGLE_PROJECT = {"allOf": [PROJECT, _obj({
    "issues_access_level": {"enum": ["disabled", "private", "enabled"]},
    "merge_requests_access_level": {"enum": ["disabled", "private", "enabled"]}})]}
_THREAD = {
    "id": ID, "iid": ID, "project_id": ID, "title": {"type": "string"},
    "description": _null("string"), "created_at": TIME, "updated_at": TIME,
    "closed_at": _null(TIME), "labels": {"type": "array", "items": {"type": "string"}},
    "author": BASIC_USER, "assignees": {"type": "array", "items": BASIC_USER},
    "web_url": URL,
}
# "Merge requests API"
MERGE_REQUEST = _obj({
    **_THREAD, "state": {"enum": ["opened", "closed", "locked", "merged"]},
    "merged_at": _null(TIME), "source_branch": {"type": "string"},
    "target_branch": {"type": "string"}, "draft": {"type": "boolean"},
    "sha": _null("string"), "merge_commit_sha": _null("string"),
}, {"work_in_progress": {"type": "boolean"}})
# "Issues API"
ISSUE = _obj({**_THREAD, "state": {"enum": ["opened", "closed"]}})
# "Notes API" (and "Discussions API" for a diff note's position)
NOTE = _obj({
    "id": ID, "body": {"type": "string"}, "author": BASIC_USER, "created_at": TIME,
    "updated_at": TIME, "system": {"type": "boolean"}, "noteable_id": ID,
    "noteable_type": {"enum": ["Issue", "MergeRequest"]},
    "type": {"enum": [None, "DiffNote", "DiscussionNote"]},
}, {"noteable_iid": ID, "project_id": ID, "position": _obj({
    "new_path": {"type": "string"}, "old_path": {"type": "string"},
    "head_sha": {"type": "string"}}, {"new_line": _null("integer"),
                                      "old_line": _null("integer")})})
# "Merge request approvals API"
APPROVALS = _obj({
    "id": ID, "iid": ID, "project_id": ID, "approved": {"type": "boolean"},
    "approvals_required": {"type": "integer"}, "approvals_left": {"type": "integer"},
    "approved_by": {"type": "array", "items": _obj({"user": BASIC_USER},
                                                   {"approved_at": _null(TIME)})},
}, {"updated_at": TIME})
# "Labels API"
LABEL = _obj({"id": ID, "name": {"type": "string"},
              "color": {"type": "string", "pattern": "^#[0-9A-Fa-f]{6}$"},
              "description": _null("string"), "text_color": {"type": "string"}})
# "Project webhooks API"
HOOK = _obj({"id": ID, "url": URL, "project_id": ID, "created_at": TIME,
             "push_events": {"type": "boolean"}, "issues_events": {"type": "boolean"},
             "merge_requests_events": {"type": "boolean"}, "note_events": {"type": "boolean"},
             "enable_ssl_verification": {"type": "boolean"}})
HOOK["not"] = {"required": ["token"]}  # a hook's secret token is never sent back
# "Project webhooks API", "Get a list of project webhook events" (GitLab 17.3)
HOOK_EVENT = _obj({"id": ID, "url": URL, "trigger": {"type": "string"},
                   "request_headers": {"type": "object", "properties": {
                       "X-Gitlab-Event": {"type": "string"},
                       "X-Gitlab-Event-UUID": {"type": "string", "minLength": 1},
                       "X-Gitlab-Token": {"const": "[REDACTED]"}},
                       "required": ["X-Gitlab-Event", "X-Gitlab-Event-UUID"]},
                   "request_data": {"type": "object"}, "response_headers": {"type": "object"},
                   "response_body": {"type": "string"}, "execution_duration": {"type": "number"},
                   "response_status": {"type": "string"}})


def page(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}
