"""What a GitHub sync walks. Every list is newest-first from a stable first page (ETag → 304).

Reviews have no list-wide REST endpoint (one ``GET …/pulls/{n}/reviews`` per pull request), so
the reviews of changed pull requests are read through GraphQL instead: up to 100 pull requests
per query by their REST ``node_id`` (documents in ``graphql.py``, vetted by the provider
table). :data:`REST_REVIEWS` is the per-pull-request REST list, kept for plans that want it.
"""

from __future__ import annotations

from shared.fetch.plan import BatchSpec, ListSpec, Parent, ProviderPlan
from shared.records import github as normalize
from shared.records import model as m

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


def _repository(raw, ctx, parent):
    return normalize.repository(raw, ctx)


USER_REPOSITORIES = ListSpec("repositories", "GET /user/repos", {"sort": "full_name"},
                             "repositories", _repository, full=True)
# A GitHub App installation token is refused on /user/repos ("Resource not accessible by
# integration"): it lists its installation's repositories, an object page.
INSTALLATION_REPOSITORIES = ListSpec(
    "repositories", "GET /installation/repositories", {}, "repositories", _repository,
    full=True, items_key="repositories")


def _repositories_for(connection: dict) -> ListSpec:
    return INSTALLATION_REPOSITORIES if connection.get("installation_id") else USER_REPOSITORIES


REST_REVIEWS = ListSpec(
    "reviews", "GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews", {}, "reviews",
    lambda raw, ctx, p: normalize.review(raw, ctx, p.number))

PLAN = ProviderPlan(
    provider="github",
    repositories=USER_REPOSITORIES,
    repositories_for=_repositories_for,
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
    children={"reviews": BatchSpec(
        "reviews", "reviews", "pull_request_reviews", "pull_request_reviews_page", "reviews",
        node_id=lambda raw: m.text(raw, "node_id"),
        normalize=lambda node, ctx, p: normalize.graphql_review(node, ctx, p.number))},
    parent_of=_parent,
)
