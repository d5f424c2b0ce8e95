"""Jira Cloud REST (v3) payloads → normalized records (see ``docs/DATA_MODEL.md``).

Same function names as :mod:`shared.records.github` where Jira has the object: projects are
the model's repositories, issues its issues (Jira has no pull requests), comments its comments
(always on an issue). Jira labels are bare names on issues with no id, colour or description,
listed site-wide only (``GET /rest/api/3/label`` says nothing of projects), so a label record
is a name *used* on an issue of a project: :func:`labels` makes them from an issue.

Ids: project and comment ids (``10000``) repeat on every Jira site, so a project's record key
is ``<cloud id>:<project id>`` (``Context.site``), a comment's ``<cloud id>:<comment id>``, and
issues and labels are keyed under their project's key; ``external_id`` stays the provider's
own id. An issue's ``number`` is the
numeric part of its key (``ED-42`` → 42), unique within its project.

Jira has no user names: a person's ``login`` is the ``displayName`` and ``external_id`` the
``accountId``. Comment bodies are ADF in REST v3 and plain strings in webhooks; both become
plain text (:mod:`shared.records.adf`). Timestamps such as ``2024-05-01T10:00:00.000+0000``
are converted like every other provider's.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from shared.errors import InvalidInput
from shared.records import adf
from shared.records import model as m
from shared.records.model import Context

DONE = "done"  # the statusCategory key of resolved issues


def site(ctx: Context) -> str:
    """The cloud id of the context's site (required: Jira ids are unique per site only)."""
    if not ctx.site:
        raise InvalidInput("context: site is required for Jira records")
    return ctx.site


def project_key(ctx: Context, project_id: Any) -> str:
    """The record key of project ``project_id`` on the context's site."""
    return f"{site(ctx)}:{project_id}"


def _fields(raw: dict) -> dict[str, Any]:
    return m.obj(m.require(raw, "fields"), "fields")


def comment_key(ctx: Context, comment_id: str) -> str:
    """``<cloud id>:<comment id>``: comment ids, too, are unique per site only. The site is the
    one of the context's repository, so no ``Context.site`` is needed for a comment."""
    repo_key = m.parse_record_id(m.repository_of(ctx))[3]
    return f"{repo_key.split(':', 1)[0]}:{comment_id}"


def person(raw: Any) -> dict[str, str] | None:
    """``{"login": displayName, "external_id": accountId}``; None for no user."""
    if raw is None:
        return None
    user = m.obj(raw, "user")
    return {"login": str(user.get("displayName") or m.text(user, "accountId")),
            "external_id": m.text(user, "accountId")}


def number_of(key: Any) -> int:
    """``ED-42`` → 42."""
    prefix, _, digits = str(key).rpartition("-")
    if not prefix or not digits.isdigit():
        raise InvalidInput("key: expected an issue key such as ED-42")
    return int(digits)


def browse_url(raw: dict, key: str, suffix: str = "") -> str | None:
    """The issue's page on the site, when ``self`` is a site URL (not the API gateway)."""
    parts = urlsplit(str(raw.get("self") or ""))
    if parts.scheme != "https" or not parts.path.startswith("/rest/"):
        return None
    return f"https://{parts.netloc}/browse/{key}{suffix}"


def check_project(ctx: Context, project_id: Any) -> None:
    """Refuse an issue whose project is not the context's repository."""
    if m.parse_record_id(m.repository_of(ctx))[3] != project_key(ctx, project_id):
        raise InvalidInput("project: payload belongs to another project than the context")


def repository(raw: dict, ctx: Context) -> dict:
    """A project (``GET /rest/api/3/project/search``); projects carry no timestamps."""
    project_id = m.ident(raw)
    lead = raw.get("lead")
    return m.make(
        "repositories", ctx, external_id=project_id, key=project_key(ctx, project_id),
        url=None, created_at=None, updated_at=m.updated(ctx, None),
        name=m.text(raw, "key"), full_name=m.text(raw, "name"),
        private=bool(raw.get("isPrivate")), archived=bool(raw.get("archived")),
        default_branch=None, owner=person(lead) if isinstance(lead, dict) else None,
        has_issues=True,  # a Jira project is an issue tracker
        node_id=None,
    )


def issue(raw: dict, ctx: Context) -> dict:
    """An issue (``GET /rest/api/3/search/jql`` with fields, or a webhook's ``issue``)."""
    fields, key = _fields(raw), m.text(raw, "key")
    project = m.obj(m.require(fields, "project"), "fields.project")
    check_project(ctx, m.ident(project))
    status = m.obj(m.require(fields, "status"), "fields.status")
    category = (status.get("statusCategory") or {}).get("key")
    assignee = fields.get("assignee")
    return m.make(
        "issues", ctx, external_id=m.ident(raw), key=m.numbered_key(ctx, number_of(key)),
        url=browse_url(raw, key), created_at=m.timestamp(fields, "created"),
        updated_at=m.timestamp(fields, "updated"), number=number_of(key),
        title=m.text(fields, "summary"), state="closed" if category == DONE else "open",
        author=person(fields.get("reporter") or fields.get("creator")),
        labels=[str(name) for name in fields.get("labels") or ()],
        assignees=[p for p in [person(assignee)] if p is not None],
        closed_at=m.timestamp(fields, "resolutiondate", required=False)
        if category == DONE else None,
    )


def labels(raw: dict, ctx: Context) -> list[dict]:
    """The labels an issue carries, as label records of its project; their version is the
    issue's ``updated`` (when it was last seen in use)."""
    fields = _fields(raw)
    when = m.timestamp(fields, "updated")
    repo_key = m.parse_record_id(m.repository_of(ctx))[3]
    return [m.make("labels", ctx, external_id=str(name), key=f"{repo_key}#{name}", url=None,
                   created_at=None, updated_at=when, name=str(name), color=None,
                   description=None)
            for name in dict.fromkeys(fields.get("labels") or ())]


def issue_with_labels(raw: dict, ctx: Context) -> list[dict]:
    """:func:`issue` followed by :func:`labels` (what a sync writes per issue)."""
    return [issue(raw, ctx), *labels(raw, ctx)]


def comment(raw: dict, ctx: Context, parent_kind: str, parent_number: int,
            issue_key: str | None = None) -> dict:
    """An issue comment (REST v3 ADF body, or a webhook's plain-text body)."""
    if parent_kind != "issue":
        raise InvalidInput("parent_kind: Jira comments belong to issues")
    text = adf.to_text(m.obj(raw).get("body"))
    body, truncated = m.cap(text or "")
    url = browse_url(raw, issue_key, f"?focusedCommentId={raw.get('id')}") if issue_key else None
    return m.make(
        "comments", ctx, external_id=m.ident(raw), key=comment_key(ctx, m.ident(raw)), url=url,
        created_at=m.timestamp(raw, "created"), updated_at=m.timestamp(raw, "updated"),
        parent_kind="issue", parent=m.parent_id(ctx, "issue", parent_number),
        author=person(raw.get("author")), body=body, body_truncated=truncated,
        review_comment=False, path=None, line=None, commit_sha=None,
    )


def user(raw: dict, ctx: Context) -> dict:
    """A user (``GET /rest/api/3/myself``); Jira users carry no timestamps."""
    avatars = m.obj(raw).get("avatarUrls")
    avatar = avatars.get("48x48") if isinstance(avatars, dict) else None
    return m.make(
        "users", ctx, external_id=m.text(raw, "accountId"), url=None, created_at=None,
        updated_at=m.updated(ctx, None),
        login=str(raw.get("displayName") or raw["accountId"]),
        name=m.optional_text(raw, "displayName"),
        avatar_url=avatar if isinstance(avatar, str) else None,
    )
