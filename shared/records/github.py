"""GitHub REST payloads → normalized records (see ``docs/DATA_MODEL.md``).

Each function reads only the fields it names; everything else in the payload — ``diff_hunk``,
``patch``/``diff`` URLs, bodies of pull requests and issues, e-mail addresses, permissions —
is dropped because :func:`shared.records.model.make` accepts nothing outside the field list.
The same names exist in :mod:`shared.records.gitlab`.
"""

from __future__ import annotations

from shared.errors import InvalidInput
from shared.records import common
from shared.records import model as m
from shared.records.model import Context

_REVIEW_STATES = {
    "APPROVED": "approved", "CHANGES_REQUESTED": "changes_requested", "COMMENTED": "commented",
    "DISMISSED": "dismissed", "PENDING": "pending",
}
_ISSUE_STATES = {"open": "open", "closed": "closed"}


def repository(raw: dict, ctx: Context) -> dict:
    """A repository (``GET /user/repos``, ``/orgs/{org}/repos``, webhook ``repository``)."""
    m.obj(raw)
    return m.make(
        "repositories", ctx, external_id=m.ident(raw),
        url=m.optional_text(raw, "html_url"),
        created_at=m.timestamp(raw, "created_at", required=False),
        updated_at=m.updated(ctx, m.timestamp(raw, "updated_at", required=False)),
        name=m.text(raw, "name"), full_name=m.text(raw, "full_name"),
        private=bool(raw.get("private")), archived=bool(raw.get("archived")),
        default_branch=m.optional_text(raw, "default_branch"),
        owner=m.person(raw.get("owner"), "login"), has_issues=m.flag(raw, "has_issues"),
        node_id=m.optional_text(raw, "node_id"),
    )


def _pr_state(raw: dict) -> str:
    """``merged`` when ``merged_at`` is set (GitHub never reopens a merged pull request)."""
    if raw.get("merged_at") is not None:
        return "merged"
    state = m.text(raw, "state")
    if state not in _ISSUE_STATES:
        raise InvalidInput(f"state: unknown pull request state {state!r}")
    return state


def _branch(raw: dict, side: str) -> tuple[str, str | None]:
    ref = m.obj(m.require(raw, side), side)
    return m.text(ref, "ref"), m.optional_text(ref, "sha")


def pull_request(raw: dict, ctx: Context) -> dict:
    """A pull request (``GET /repos/{o}/{r}/pulls``, webhook ``pull_request``)."""
    number = m.integer(raw, "number")
    base_repo = m.obj(m.require(raw, "base"), "base").get("repo") or {}
    m.check_repository(ctx, m.obj(base_repo, "base.repo").get("id"), "base.repo.id")
    source, head_sha = _branch(raw, "head")
    target, _ = _branch(raw, "base")
    return m.make(
        "pull_requests", ctx, external_id=m.ident(raw), key=m.numbered_key(ctx, number),
        url=m.optional_text(raw, "html_url"), created_at=m.timestamp(raw, "created_at"),
        updated_at=m.timestamp(raw, "updated_at"),
        number=number, title=m.text(raw, "title"), state=_pr_state(raw),
        draft=bool(raw.get("draft")), author=m.person(raw.get("user"), "login"),
        labels=_labels(raw), assignees=m.people(raw.get("assignees"), "login"),
        closed_at=m.timestamp(raw, "closed_at", required=False),
        merged_at=m.timestamp(raw, "merged_at", required=False),
        source_branch=source, target_branch=target, head_sha=head_sha,
        merge_commit_sha=m.optional_text(raw, "merge_commit_sha"),
    )


def _labels(raw: dict) -> list[str]:
    return [m.text(m.obj(item, "labels[]"), "name") for item in raw.get("labels") or ()]


def issue(raw: dict, ctx: Context) -> dict | None:
    """An issue (``GET /repos/{o}/{r}/issues``); ``None`` for an item that is a pull request."""
    if m.obj(raw).get("pull_request") is not None:
        return None
    number = m.integer(raw, "number")
    state = m.text(raw, "state")
    if state not in _ISSUE_STATES:
        raise InvalidInput(f"state: unknown issue state {state!r}")
    return m.make(
        "issues", ctx, external_id=m.ident(raw), key=m.numbered_key(ctx, number),
        url=m.optional_text(raw, "html_url"), created_at=m.timestamp(raw, "created_at"),
        updated_at=m.timestamp(raw, "updated_at"),
        number=number, title=m.text(raw, "title"), state=state,
        author=m.person(raw.get("user"), "login"), labels=_labels(raw),
        assignees=m.people(raw.get("assignees"), "login"),
        closed_at=m.timestamp(raw, "closed_at", required=False),
    )


def comment(raw: dict, ctx: Context, parent_kind: str, parent_number: int) -> dict | None:
    """An issue comment or a pull request review comment (never ``None`` on GitHub).

    Review comments (they carry ``diff_hunk``/``path``) keep only ``path``, ``line`` and the
    commit id; the diff hunk is code and is never read. Their key is ``review:<id>`` because
    issue comments and review comments are numbered independently.
    """
    parent = m.parent_id(ctx, parent_kind, parent_number)
    review_comment = any(k in m.obj(raw) for k in ("pull_request_review_id", "diff_hunk", "path"))
    if review_comment and parent_kind != "pull_request":
        raise InvalidInput("parent_kind: a review comment belongs to a pull request")
    external_id = m.ident(raw)
    body, truncated = m.cap(raw.get("body"))
    line = raw.get("line") if raw.get("line") is not None else raw.get("original_line")
    return m.make(
        "comments", ctx, external_id=external_id,
        key=f"review:{external_id}" if review_comment else external_id,
        url=m.optional_text(raw, "html_url"), created_at=m.timestamp(raw, "created_at"),
        updated_at=m.timestamp(raw, "updated_at"),
        parent_kind=parent_kind, parent=parent, author=m.person(raw.get("user"), "login"),
        body=body, body_truncated=truncated, review_comment=review_comment,
        path=m.optional_text(raw, "path") if review_comment else None,
        line=line if review_comment and isinstance(line, int) else None,
        commit_sha=m.optional_text(raw, "commit_id") if review_comment else None,
    )


def review(raw: dict, ctx: Context, pull_number: int) -> dict:
    """A pull request review (``GET …/pulls/{n}/reviews``, webhook ``pull_request_review``).

    GitHub gives reviews no ``updated_at``: it is ``submitted_at``, one microsecond later for a
    dismissed review (dismissal is final and keeps ``submitted_at``, so it must win the tie),
    and the epoch for a pending review (it sorts before any submitted version of itself).
    """
    state = _REVIEW_STATES.get(m.text(raw, "state"))
    if state is None:
        raise InvalidInput(f"state: unknown review state {raw['state']!r}")
    submitted = m.timestamp(raw, "submitted_at", required=state != "pending")
    version = submitted or m.EPOCH
    if state == "dismissed":
        version = m.convert(version, "submitted_at", plus_microseconds=1)
    return m.make(
        "reviews", ctx, external_id=m.ident(raw), url=m.optional_text(raw, "html_url"),
        created_at=submitted, updated_at=version,
        pull_request=m.parent_id(ctx, "pull_request", pull_number),
        author=m.person(raw.get("user"), "login"), state=state, submitted_at=submitted,
    )


def graphql_review(node: dict, ctx: Context, pull_number: int) -> dict:
    """A review as GraphQL selects it (``shared/fetch/github/graphql.py``): the same record as
    :func:`review` of the REST payload. ``fullDatabaseId`` is the REST ``id``, ``url`` the
    ``html_url``, the author's ``databaseId`` the REST ``user.id``. An author without a database
    id (``null``, or an actor type that has none) is no author (``None``)."""
    m.obj(node, "review")
    author = node.get("author")
    user = None
    if isinstance(author, dict) and author.get("databaseId") is not None:
        user = {"login": author.get("login"), "id": author["databaseId"]}
    return review({"id": m.require(node, "fullDatabaseId"), "state": node.get("state"),
                   "submitted_at": node.get("submittedAt"), "html_url": node.get("url"),
                   "user": user}, ctx, pull_number)


def reviews(raw: list, ctx: Context, pull_number: int) -> list[dict]:
    """Every review of one page of ``GET …/pulls/{n}/reviews``."""
    if not isinstance(raw, list):
        raise InvalidInput("reviews: expected a JSON array")
    return [review(item, ctx, pull_number) for item in raw]


label = common.label


def user(raw: dict, ctx: Context) -> dict:
    """A user (``GET /user``)."""
    return common.user(raw, ctx, url_field="html_url", login_field="login")
