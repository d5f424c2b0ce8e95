"""Where a comment goes, per (provider, parent kind): a table, not an if-chain.

GitHub comments on pull requests and issues alike through the issue comments endpoint (a pull
request's conversation is its issue's); GitLab has one notes endpoint per noteable. Every
template here is in the provider table's allowlist (``shared/providers/providers.json``), so
:class:`~shared.fetch.client.ProviderClient` accepts them and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.fetch.github.plan import PLAN as GITHUB_PLAN
from shared.fetch.gitlab.plan import PLAN as GITLAB_PLAN
from shared.records import github as github_records
from shared.records import gitlab as gitlab_records

Normalize = Callable[..., dict | None]


@dataclass(frozen=True)
class Target:
    """The endpoints of one kind of comment thread."""

    post: str  # POST template
    listing: str  # GET template of the same thread's comments (reconciliation)
    number_param: str  # the path parameter naming the pull/merge request or issue
    list_params: Mapping[str, str]  # newest first where the provider can sort
    web_path: str | None  # GitLab: where a note lives under the project's web URL


_GITHUB_THREAD = Target("POST /repos/{owner}/{repo}/issues/{issue_number}/comments",
                        "GET /repos/{owner}/{repo}/issues/{issue_number}/comments",
                        "issue_number", {}, None)
_GITLAB_NEWEST = {"order_by": "created_at", "sort": "desc"}
TARGETS: dict[tuple[str, str], Target] = {
    ("github", "pull_request"): _GITHUB_THREAD,
    ("github", "issue"): _GITHUB_THREAD,
    ("gitlab", "pull_request"): Target(
        "POST /projects/{id}/merge_requests/{merge_request_iid}/notes",
        "GET /projects/{id}/merge_requests/{merge_request_iid}/notes",
        "merge_request_iid", _GITLAB_NEWEST, "merge_requests"),
    ("gitlab", "issue"): Target(
        "POST /projects/{id}/issues/{issue_iid}/notes",
        "GET /projects/{id}/issues/{issue_iid}/notes",
        "issue_iid", _GITLAB_NEWEST, "issues"),
}
_REPO_PARAMS: dict[str, Callable[[dict], dict[str, str]]] = {
    "github": GITHUB_PLAN.repo_params, "gitlab": GITLAB_PLAN.repo_params}
NORMALIZE: dict[str, Normalize] = {"github": github_records.comment,
                                   "gitlab": gitlab_records.comment}
SINCE_PARAM = {"github": "since"}  # GitHub lists a thread's comments oldest first
PROVIDERS: tuple[str, ...] = ("github", "gitlab")


def supports(provider: str) -> bool:
    return provider in PROVIDERS


def target_for(provider: str, parent_kind: str) -> Target:
    return TARGETS[(provider, parent_kind)]


def path_params(provider: str, repository: dict[str, Any], parent_kind: str,
                number: int) -> dict[str, str]:
    """The path parameters of a thread: the repository's (as the fetcher builds them) and
    the pull/merge request or issue number."""
    params = dict(_REPO_PARAMS[provider](repository))
    params[target_for(provider, parent_kind).number_param] = str(number)
    return params


def comment_url(provider: str, raw: dict[str, Any], repository: dict[str, Any],
                parent_kind: str, number: int) -> str | None:
    """The comment's web address: GitHub says it; for GitLab it is built from the project's."""
    if provider == "github":
        url = raw.get("html_url")
        return url if isinstance(url, str) else None
    web, where = repository.get("url"), target_for(provider, parent_kind).web_path
    if not isinstance(web, str) or where is None:
        return None
    return f"{web.rstrip('/')}/-/{where}/{number}#note_{raw.get('id')}"


def author_id(provider: str, raw: dict[str, Any]) -> str | None:
    """The external id of a comment's author (``user`` on GitHub, ``author`` on GitLab)."""
    who = raw.get("user" if provider == "github" else "author")
    ident = who.get("id") if isinstance(who, dict) else None
    return None if ident is None else str(ident)
