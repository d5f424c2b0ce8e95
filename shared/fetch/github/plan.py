"""What a GitHub sync walks. Every list is newest-first from a stable first page (ETag → 304)."""

from __future__ import annotations

from shared.fetch.plan import ListSpec, Parent, ProviderPlan
from shared.records import github as normalize

NEWEST_FIRST = {"sort": "updated", "direction": "desc"}


def _number(url: str) -> int:
    return int(url.rstrip("/").rsplit("/", 1)[1])


def _conversation_comment(raw, ctx, parent):
    # GitHub links a comment on a pull request's conversation as .../pull/N#issuecomment-…
    kind = "pull_request" if "/pull/" in str(raw.get("html_url", "")) else "issue"
    return normalize.comment(raw, ctx, kind, _number(raw["issue_url"]))


def _repo_params(repo: dict) -> dict[str, str]:
    owner, name = repo["full_name"].split("/", 1)
    return {"owner": owner, "repo": name}


def _parent(name: str, raw: dict, params) -> Parent:
    return Parent("pull_request", int(raw["number"]),
                  {**params, "pull_number": str(raw["number"])})


PLAN = ProviderPlan(
    provider="github",
    repositories=ListSpec("repositories", "GET /user/repos", {"sort": "full_name"},
                          "repositories", lambda raw, ctx, p: normalize.repository(raw, ctx),
                          full=True),
    repo_params=_repo_params,
    resources=(
        ListSpec("pulls", "GET /repos/{owner}/{repo}/pulls", {"state": "all", **NEWEST_FIRST},
                 "pull_requests", lambda raw, ctx, p: normalize.pull_request(raw, ctx),
                 children=("reviews",)),
        ListSpec("issues", "GET /repos/{owner}/{repo}/issues", {"state": "all", **NEWEST_FIRST},
                 "issues", lambda raw, ctx, p: normalize.issue(raw, ctx)),
        ListSpec("issue_comments", "GET /repos/{owner}/{repo}/issues/comments", NEWEST_FIRST,
                 "comments", _conversation_comment),
        ListSpec("review_comments", "GET /repos/{owner}/{repo}/pulls/comments", NEWEST_FIRST,
                 "comments", lambda raw, ctx, p: normalize.comment(
                     raw, ctx, "pull_request", _number(raw["pull_request_url"]))),
        ListSpec("labels", "GET /repos/{owner}/{repo}/labels", {}, "labels",
                 lambda raw, ctx, p: normalize.label(raw, ctx), full=True),
    ),
    children={"reviews": ListSpec(
        "reviews", "GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews", {}, "reviews",
        lambda raw, ctx, p: normalize.review(raw, ctx, p.number))},
    parent_of=_parent,
)
