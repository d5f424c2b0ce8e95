"""What a Bitbucket Cloud sync walks.

Bitbucket sends no ETags, so nothing is free: every list is newest first (``sort=-updated_on``)
and, once a cursor exists, its first page is narrowed with ``q=updated_on > <cursor - 5 min>``.
An unchanged connection therefore costs 1 request for the workspaces, 1 page of repositories
per workspace (the list is walked whole, to reconcile deletions) and, per repository, 1
(empty) page of pull requests plus 1 of issues where the issue tracker is on. Children are
fetched only for items whose record changed: a pull request's comments and its participants
(``GET …/pullrequests/{id}``, whose approvals are reconciled within that pull request), an
issue's comments.

Pages are as large as Bitbucket serves them: the table's ``pagelen`` 50 (the pull request
list's maximum), 100 where the list allows it (repositories, issues, comments). The pull
request list is asked for its ``participants`` too (``fields=+values.participants``), so a
changed pull request's approvals come with it and its comments are read only when its
``comment_count`` is not 0 (:attr:`~shared.fetch.plan.ListSpec.embedded`): a changed pull
request costs one request (``ceil(comments / 100)``) or none, a changed issue one (Bitbucket's
issue carries no comment count).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC

from shared.clock import parse_iso
from shared.fetch.plan import ListSpec, Params, Parent, ProviderPlan, ScopeList
from shared.records import bitbucket as normalize

REPO = "/repositories/{workspace}/{repo_slug}"
NEWEST_FIRST = {"sort": "-updated_on"}
FULL_PAGE = {"pagelen": "100"}  # every list but the pull requests' (50, the table's size)
WITH_PARTICIPANTS = {"fields": "+values.participants"}  # a partial-response addition
PR_STATES = ("OPEN", "MERGED", "DECLINED", "SUPERSEDED")  # only OPEN when not asked
_NUMBER_PARAM = {"pr_comments": "pull_request_id", "participants": "pull_request_id",
                 "issue_comments": "issue_id"}


def updated_since(params: Mapping[str, str], stop: str | None) -> Params:
    """BBQL for "updated after ``stop``": ``updated_on > 2024-05-01T10:00:00.000000+00:00``
    (no filter on a first or full walk)."""
    if stop is None:
        return {}
    moment = parse_iso(stop).astimezone(UTC).isoformat(timespec="microseconds")
    return {"q": f"updated_on > {moment}"}


def _list(name: str, path: str, kind: str, normalize_, params: Params = NEWEST_FIRST,
          **extra) -> ListSpec:
    return ListSpec(name, f"GET {REPO}{path}", params, kind, normalize_, items_key="values",
                    updated_key="updated_on", query=updated_since, **extra)


def repo_params(repo: dict) -> dict[str, str]:
    """``workspace/repo_slug`` of a repository record's ``full_name``."""
    workspace, slug = repo["full_name"].split("/", 1)
    return {"workspace": workspace, "repo_slug": slug}


def _has_tracker(repo: dict) -> bool:
    """Issues are listed where the tracker is on (a repository that does not say is tried)."""
    return repo.get("has_issues") is not False


def _participants(raw: dict) -> dict | None:
    """The pull request itself, when the list carried its participants."""
    return raw if isinstance(raw.get("participants"), list) else None


def _no_comments(raw: dict) -> dict | None:
    """An empty comment page where ``comment_count`` says there is none."""
    count = raw.get("comment_count")
    return {"values": []} if type(count) is int and count == 0 else None


def _parent(name: str, raw: dict, params) -> Parent:
    kind = "issue" if name == "issue_comments" else "pull_request"
    return Parent(kind, int(raw["id"]), {**params, _NUMBER_PARAM[name]: str(raw["id"])})


PLAN = ProviderPlan(
    provider="bitbucket",
    repository_scopes=ScopeList("GET /user/workspaces", FULL_PAGE,
                                lambda access: {"workspace": access["workspace"]["slug"]},
                                items_key="values"),
    repositories=ListSpec("repositories", "GET /repositories/{workspace}",
                          {"role": "member", "pagelen": "100"},  # a list ending in {workspace}
                          "repositories", lambda raw, ctx, p: normalize.repository(raw, ctx),
                          full=True, items_key="values", updated_key="updated_on"),
    repo_params=repo_params,
    resources=(
        _list("pullrequests", "/pullrequests", "pull_requests",
              lambda raw, ctx, p: normalize.pull_request(raw, ctx),
              {**NEWEST_FIRST, **WITH_PARTICIPANTS, "state": PR_STATES},
              children=("pr_comments", "participants")),
        _list("issues", "/issues", "issues", lambda raw, ctx, p: normalize.issue(raw, ctx),
              {**NEWEST_FIRST, **FULL_PAGE}, children=("issue_comments",),
              applies=_has_tracker),
    ),
    children={
        "pr_comments": _list(
            "pr_comments", "/pullrequests/{pull_request_id}/comments", "comments",
            lambda raw, ctx, p: normalize.comment(raw, ctx, "pull_request", p.number),
            {**NEWEST_FIRST, **FULL_PAGE}, embedded=_no_comments),
        "participants": ListSpec(
            "participants", f"GET {REPO}/pullrequests/{{pull_request_id}}", {}, "reviews",
            lambda raw, ctx, p: normalize.reviews(raw, ctx, p.number), single=True, full=True,
            embedded=_participants),
        "issue_comments": _list(
            "issue_comments", "/issues/{issue_id}/comments", "comments",
            lambda raw, ctx, p: normalize.comment(raw, ctx, "issue", p.number),
            {**NEWEST_FIRST, **FULL_PAGE}),
    },
    parent_of=_parent,
)
