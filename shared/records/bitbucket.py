"""Bitbucket Cloud (REST 2.0) payloads → normalized records (see ``docs/DATA_MODEL.md``).

Same function names as :mod:`shared.records.github`. Bitbucket differs in ways the common model
absorbs here, so nothing Bitbucket-only reaches a record:

* every object is identified by a ``uuid`` (``{…}``, braces included); users have no numeric
  id, so a person is ``{"login": nickname (else display name), "external_id": uuid}``;
* pull requests and issues are numbered per repository by ``id``; their external id is the
  numbered key ``<repository uuid>#<id>`` because Bitbucket has no global id for them;
* pull request comments and issue comments are numbered independently: issue comments are
  keyed ``issue:<id>``; inline comments keep ``inline.path`` and line, never code;
* approvals live in a pull request's ``participants``: a participant whose ``state`` is
  ``approved`` or ``changes_requested`` is one review (``<pr key>:<user uuid>``, versioned by
  ``participated_on``); anyone else has not reviewed and yields none;
* a pull request carries no close or merge time, so ``closed_at``/``merged_at`` stay null;
  Bitbucket has no labels and pull requests no assignees (``[]``);
* timestamps are ``created_on``/``updated_on``; a deleted comment (``deleted: true``) is skipped
  (the ``comment_deleted`` webhook tombstones it).
"""

from __future__ import annotations

from typing import Any

from shared.errors import InvalidInput
from shared.records import model as m
from shared.records.model import Context

_PR_STATES = {"OPEN": "open", "MERGED": "merged", "DECLINED": "closed", "SUPERSEDED": "closed"}
_ISSUE_STATES = {"new": "open", "open": "open", "on hold": "open", "submitted": "open",
                 "resolved": "closed", "duplicate": "closed", "invalid": "closed",
                 "wontfix": "closed", "closed": "closed"}
REVIEW_STATES = {"approved": "approved", "changes_requested": "changes_requested"}


def _href(raw: dict, rel: str = "html") -> str | None:
    links = raw.get("links")
    link = links.get(rel) if isinstance(links, dict) else None
    href = link.get("href") if isinstance(link, dict) else None
    return href if isinstance(href, str) else None


def person(raw: Any) -> dict[str, str] | None:
    """``{"login", "external_id"}`` of a Bitbucket account; ``None`` without one (or without a
    uuid: a deleted "Former user" can no longer be told apart)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("uuid"), str):
        return None
    login = raw.get("nickname") or raw.get("display_name") or raw["uuid"]
    return {"login": str(login), "external_id": raw["uuid"]}


def _uuid(raw: Any, field: str) -> str:
    value = m.obj(raw, field).get("uuid")
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{field}.uuid: expected a uuid")
    return value


def repository(raw: dict, ctx: Context) -> dict:
    """A repository (``GET /repositories/{workspace}``, ``/{workspace}/{repo_slug}``)."""
    full_name = m.text(raw, "full_name")
    workspace = raw.get("workspace") if isinstance(raw.get("workspace"), dict) else None
    main = raw.get("mainbranch") if isinstance(raw.get("mainbranch"), dict) else {}
    return m.make(
        "repositories", ctx, external_id=_uuid(raw, "repository"), url=_href(raw),
        created_at=m.timestamp(raw, "created_on", required=False),
        updated_at=m.updated(ctx, m.timestamp(raw, "updated_on", required=False)),
        name=m.optional_text(raw, "slug") or full_name.rsplit("/", 1)[-1], full_name=full_name,
        private=bool(raw.get("is_private")), archived=bool(raw.get("is_archived")),
        default_branch=m.optional_text(main, "name"),
        owner={"login": m.text(workspace, "slug"), "external_id": _uuid(workspace, "workspace")}
        if workspace else None,
        has_issues=m.flag(raw, "has_issues"), node_id=None,
    )


def _state(raw: dict, table: dict[str, str], what: str) -> str:
    state = table.get(m.text(raw, "state"))
    if state is None:
        raise InvalidInput(f"state: unknown {what} state {raw['state']!r}")
    return state


def _side(raw: dict, name: str) -> dict:
    return m.obj(m.require(raw, name), name)


def pull_request(raw: dict, ctx: Context) -> dict:
    """A pull request (``GET …/pullrequests``, webhook ``pullrequest``)."""
    number = m.integer(raw, "id")
    source, target = _side(raw, "source"), _side(raw, "destination")
    repo = target.get("repository")
    m.check_repository(ctx, repo.get("uuid") if isinstance(repo, dict) else None,
                       "destination.repository.uuid")
    head = source.get("commit") if isinstance(source.get("commit"), dict) else {}
    merged = raw.get("merge_commit") if isinstance(raw.get("merge_commit"), dict) else {}
    key = m.numbered_key(ctx, number)
    return m.make(
        "pull_requests", ctx, external_id=key, key=key, url=_href(raw),
        created_at=m.timestamp(raw, "created_on"), updated_at=m.timestamp(raw, "updated_on"),
        number=number, title=m.text(raw, "title"), state=_state(raw, _PR_STATES, "pull request"),
        draft=bool(raw.get("draft")), author=person(raw.get("author")), labels=[], assignees=[],
        closed_at=None, merged_at=None,
        source_branch=m.text(_side(source, "branch"), "name"),
        target_branch=m.text(_side(target, "branch"), "name"),
        head_sha=m.optional_text(head, "hash"), merge_commit_sha=m.optional_text(merged, "hash"),
    )


def issue(raw: dict, ctx: Context) -> dict:
    """An issue of a repository's tracker (``GET …/issues``, webhook ``issue``)."""
    number = m.integer(raw, "id")
    repo = raw.get("repository")
    m.check_repository(ctx, repo.get("uuid") if isinstance(repo, dict) else None,
                       "repository.uuid")
    assignee = person(raw.get("assignee"))
    key = m.numbered_key(ctx, number)
    return m.make(
        "issues", ctx, external_id=key, key=key, url=_href(raw),
        created_at=m.timestamp(raw, "created_on"), updated_at=m.timestamp(raw, "updated_on"),
        number=number, title=m.text(raw, "title"), state=_state(raw, _ISSUE_STATES, "issue"),
        author=person(raw.get("reporter")), labels=[],
        assignees=[assignee] if assignee else [], closed_at=None,
    )


def comment_key(parent_kind: str, raw: dict) -> str:
    """Pull request comments are keyed by id; issue comments, numbered apart, ``issue:<id>``."""
    return m.ident(raw) if parent_kind == "pull_request" else f"issue:{m.ident(raw)}"


def comment(raw: dict, ctx: Context, parent_kind: str, parent_number: int) -> dict | None:
    """A pull request or issue comment; ``None`` for one Bitbucket lists as deleted."""
    if m.obj(raw).get("deleted") is True:
        return None
    parent = m.parent_id(ctx, parent_kind, parent_number)
    content = raw.get("content") if isinstance(raw.get("content"), dict) else {}
    body, truncated = m.cap(content.get("raw"))
    inline = raw.get("inline") if isinstance(raw.get("inline"), dict) else None
    if inline is not None and parent_kind != "pull_request":
        raise InvalidInput("inline: an inline comment belongs to a pull request")
    line = None if inline is None else inline.get("to") if inline.get("to") is not None \
        else inline.get("from")
    return m.make(
        "comments", ctx, external_id=m.ident(raw), key=comment_key(parent_kind, raw),
        url=_href(raw), created_at=m.timestamp(raw, "created_on"),
        updated_at=m.timestamp(raw, "updated_on", required=False)
        or m.timestamp(raw, "created_on"),
        parent_kind=parent_kind, parent=parent, author=person(raw.get("user")),
        body=body, body_truncated=truncated, review_comment=inline is not None,
        path=m.optional_text(inline, "path") if inline else None,
        line=line if isinstance(line, int) and not isinstance(line, bool) else None,
        commit_sha=None,
    )


def review(user: Any, ctx: Context, pull_number: int, state: str, at: Any) -> dict:
    """One reviewer's decision on pull request ``pull_number`` as of ``at`` (ISO time)."""
    who = m.obj(user, "user")
    if state not in REVIEW_STATES.values():
        raise InvalidInput(f"state: unknown review state {state!r}")
    when = m.convert(at, "participated_on")
    key = f"{m.numbered_key(ctx, pull_number)}:{_uuid(who, 'user')}"
    return m.make(
        "reviews", ctx, external_id=key, url=None, created_at=when, updated_at=when,
        pull_request=m.parent_id(ctx, "pull_request", pull_number), author=person(who),
        state=state, submitted_at=when,
    )


def reviews(raw: dict, ctx: Context, pull_number: int) -> list[dict]:
    """Every decision among a pull request's ``participants`` (``GET …/pullrequests/{id}``)."""
    if m.integer(raw, "id") != pull_number:
        raise InvalidInput("id: participants of another pull request")
    found = []
    for entry in raw.get("participants") or ():
        entry = m.obj(entry, "participants[]")
        state = entry.get("state") or ("approved" if entry.get("approved") is True else None)
        if state in REVIEW_STATES and entry.get("participated_on"):
            found.append(review(entry.get("user"), ctx, pull_number, REVIEW_STATES[state],
                                entry["participated_on"]))
    return found


def user(raw: dict, ctx: Context) -> dict:
    """The authenticated account (``GET /user``)."""
    who = person(m.obj(raw))
    if who is None:
        raise InvalidInput("missing required field: uuid")
    return m.make(
        "users", ctx, external_id=who["external_id"], url=_href(raw),
        created_at=m.timestamp(raw, "created_on", required=False),
        updated_at=m.updated(ctx, None), login=who["login"],
        name=m.optional_text(raw, "display_name"), avatar_url=_href(raw, "avatar"),
    )
