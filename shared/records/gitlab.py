"""GitLab REST (v4) payloads → normalized records (see ``docs/DATA_MODEL.md``).

Same function names as :mod:`shared.records.github`. GitLab's merge requests are the model's
pull requests, projects its repositories, notes its comments and approvals its reviews. Only
named fields are read: diff positions keep their file path, line and head SHA, never the
lines themselves; ``runners_token``, e-mail addresses and statistics are dropped by the
allowlist in :func:`shared.records.model.make`.
"""

from __future__ import annotations

from typing import Any

from shared.errors import InvalidInput
from shared.records import common
from shared.records import model as m
from shared.records.model import Context

_MR_STATES = {"opened": "open", "locked": "open", "closed": "closed", "merged": "merged"}
_ISSUE_STATES = {"opened": "open", "closed": "closed"}


def _state(raw: dict, table: dict[str, str]) -> str:
    state = table.get(m.text(raw, "state"))
    if state is None:
        raise InvalidInput(f"state: unknown state {raw['state']!r}")
    return state


def _labels(raw: dict) -> list[str]:
    """Label names, whether listed as strings or (``with_labels_details``) as objects."""
    names = []
    for item in raw.get("labels") or ():
        names.append(item if isinstance(item, str) else m.text(m.obj(item, "labels[]"), "name"))
    return names


def repository(raw: dict, ctx: Context) -> dict:
    """A project (``GET /projects``); ``private`` means not public (internal counts)."""
    namespace = m.obj(m.require(raw, "namespace"), "namespace")
    changed = "updated_at" if raw.get("updated_at") is not None else "last_activity_at"
    return m.make(
        "repositories", ctx, external_id=m.ident(raw), url=m.optional_text(raw, "web_url"),
        created_at=m.timestamp(raw, "created_at", required=False),
        updated_at=m.updated(ctx, m.timestamp(raw, changed, required=False)),
        name=m.text(raw, "path"), full_name=m.text(raw, "path_with_namespace"),
        private=raw.get("visibility") != "public", archived=bool(raw.get("archived")),
        default_branch=m.optional_text(raw, "default_branch"),
        owner={"login": m.text(namespace, "full_path"), "external_id": m.ident(namespace)},
        has_issues=_issues_enabled(raw), node_id=None,
    )


def _issues_enabled(raw: dict) -> bool | None:
    """``issues_enabled``, else ``issues_access_level`` (newer GitLab), else unknown."""
    if isinstance(raw.get("issues_enabled"), bool):
        return raw["issues_enabled"]
    level = raw.get("issues_access_level")
    return level != "disabled" if isinstance(level, str) else None


def pull_request(raw: dict, ctx: Context) -> dict:
    """A merge request (``GET /projects/:id/merge_requests``, merge request events)."""
    number = m.integer(raw, "iid")
    m.check_repository(ctx, m.obj(raw).get("project_id"), "project_id")
    draft = raw.get("draft") if "draft" in raw else raw.get("work_in_progress")
    return m.make(
        "pull_requests", ctx, external_id=m.ident(raw), key=m.numbered_key(ctx, number),
        url=m.optional_text(raw, "web_url"), created_at=m.timestamp(raw, "created_at"),
        updated_at=m.timestamp(raw, "updated_at"),
        number=number, title=m.text(raw, "title"), state=_state(raw, _MR_STATES),
        draft=bool(draft), author=m.person(raw.get("author"), "username"),
        labels=_labels(raw), assignees=m.people(raw.get("assignees"), "username"),
        closed_at=m.timestamp(raw, "closed_at", required=False),
        merged_at=m.timestamp(raw, "merged_at", required=False),
        source_branch=m.text(raw, "source_branch"), target_branch=m.text(raw, "target_branch"),
        head_sha=m.optional_text(raw, "sha"),
        merge_commit_sha=m.optional_text(raw, "merge_commit_sha"),
    )


def issue(raw: dict, ctx: Context) -> dict | None:
    """A project issue (``GET /projects/:id/issues``); never ``None`` on GitLab."""
    number = m.integer(raw, "iid")
    m.check_repository(ctx, m.obj(raw).get("project_id"), "project_id")
    return m.make(
        "issues", ctx, external_id=m.ident(raw), key=m.numbered_key(ctx, number),
        url=m.optional_text(raw, "web_url"), created_at=m.timestamp(raw, "created_at"),
        updated_at=m.timestamp(raw, "updated_at"),
        number=number, title=m.text(raw, "title"), state=_state(raw, _ISSUE_STATES),
        author=m.person(raw.get("author"), "username"), labels=_labels(raw),
        assignees=m.people(raw.get("assignees"), "username"),
        closed_at=m.timestamp(raw, "closed_at", required=False),
    )


def _position(raw: dict) -> tuple[str | None, int | None, str | None]:
    """``(path, line, head_sha)`` of a diff note's position (metadata only)."""
    position = raw.get("position") or {}
    m.obj(position, "position")
    path = position.get("new_path") or position.get("old_path")
    line = position.get("new_line") if position.get("new_line") is not None \
        else position.get("old_line")
    sha = position.get("head_sha") or raw.get("commit_id")
    return (path if isinstance(path, str) else None, line if isinstance(line, int) else None,
            sha if isinstance(sha, str) else None)


def comment(raw: dict, ctx: Context, parent_kind: str, parent_number: int) -> dict | None:
    """A merge request or issue note; ``None`` for a system note (GitLab's own event text)."""
    if m.obj(raw).get("system"):
        return None
    parent = m.parent_id(ctx, parent_kind, parent_number)
    m.check_repository(ctx, raw.get("project_id"), "project_id")
    review_comment = raw.get("type") == "DiffNote"
    path, line, sha = _position(raw) if review_comment else (None, None, None)
    body, truncated = m.cap(raw.get("body"))
    return m.make(
        "comments", ctx, external_id=m.ident(raw), url=None,
        created_at=m.timestamp(raw, "created_at"), updated_at=m.timestamp(raw, "updated_at"),
        parent_kind=parent_kind, parent=parent, author=m.person(raw.get("author"), "username"),
        body=body, body_truncated=truncated, review_comment=review_comment,
        path=path, line=line, commit_sha=sha,
    )


def review(raw: dict, ctx: Context, pull_number: int) -> dict | list[dict]:
    """Approvals as reviews (state ``approved``).

    Given the whole ``GET …/merge_requests/:iid/approvals`` response (it has ``approved_by``),
    returns one record per approver, like :func:`reviews`; given one ``approved_by`` entry
    (``{"user": {...}, "approved_at"?: ...}``), returns that approver's record.
    """
    if "approved_by" in m.obj(raw):
        return reviews(raw, ctx, pull_number)
    return _approval(raw, ctx, pull_number)


def _approval(raw: dict, ctx: Context, pull_number: int) -> dict:
    """One approver. Approvals have no id: the external id is ``<project id>#<iid>:<user id>``.

    ``updated_at`` is the entry's ``approved_at``, else its ``updated_at`` (:func:`reviews`
    copies the response's), else ``ctx.observed_at``. A withdrawn approval is simply absent from
    the next response: the caller tombstones it (:func:`shared.records.store.mark_deleted`).
    """
    approver = m.obj(m.require(raw, "user"), "user")
    approved_at = m.timestamp(raw, "approved_at", required=False)
    fallback = m.timestamp(raw, "updated_at", required=False)
    external_id = f"{m.numbered_key(ctx, pull_number)}:{m.ident(approver)}"
    return m.make(
        "reviews", ctx, external_id=external_id, url=None, created_at=approved_at,
        updated_at=m.updated(ctx, approved_at or fallback),
        pull_request=m.parent_id(ctx, "pull_request", pull_number),
        author=m.person(approver, "username"), state="approved", submitted_at=approved_at,
    )


def reviews(raw: dict, ctx: Context, pull_number: int) -> list[dict]:
    """One review record per approver of ``GET …/merge_requests/:iid/approvals``."""
    m.check_repository(ctx, m.obj(raw).get("project_id"), "project_id")
    if raw.get("iid") is not None and raw["iid"] != pull_number:
        raise InvalidInput("iid: approvals of another merge request")
    entries: Any = raw.get("approved_by") or []
    if not isinstance(entries, list):
        raise InvalidInput("approved_by: expected a JSON array")
    return [_approval({"updated_at": raw.get("updated_at"), **m.obj(entry, "approved_by[]")},
                      ctx, pull_number) for entry in entries]


label = common.label


def user(raw: dict, ctx: Context) -> dict:
    """A user (``GET /user``)."""
    return common.user(raw, ctx, url_field="web_url", login_field="username")
