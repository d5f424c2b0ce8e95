"""Where a comment goes, per (provider, parent kind): a table, not an if-chain.

GitHub comments on pull requests and issues alike through the issue comments endpoint (a pull
request's conversation is its issue's); GitLab has one notes endpoint per noteable; Bitbucket
one comments endpoint per pull request and per issue, taking ``{"content": {"raw": …}}`` and
listing pages of ``values``. Every template here is in the provider table's allowlist
(``shared/providers/providers.json``), so :class:`~shared.fetch.client.ProviderClient` accepts
them and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.fetch.bitbucket.plan import PLAN as BITBUCKET_PLAN
from shared.fetch.github.plan import PLAN as GITHUB_PLAN
from shared.fetch.gitlab.plan import PLAN as GITLAB_PLAN
from shared.records import bitbucket as bitbucket_records
from shared.records import github as github_records
from shared.records import gitlab as gitlab_records

Normalize = Callable[..., dict | None]


def _body(text: str) -> dict[str, Any]:
    return {"body": text}


@dataclass(frozen=True)
class Target:
    """The endpoints of one kind of comment thread."""

    post: str  # POST template
    listing: str  # GET template of the same thread's comments (reconciliation)
    number_param: str  # the path parameter naming the pull/merge request or issue
    list_params: Mapping[str, str]  # newest first where the provider can sort
    web_path: str | None  # GitLab: where a note lives under the project's web URL
    payload: Callable[[str], dict[str, Any]] = _body  # the POST body for a comment text
    items: str | None = None  # the listing's pages hold their items under this key


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
    **{("bitbucket", kind): Target(
        f"POST /repositories/{{workspace}}/{{repo_slug}}/{path}/{{{param}}}/comments",
        f"GET /repositories/{{workspace}}/{{repo_slug}}/{path}/{{{param}}}/comments",
        param, {"sort": "-created_on"}, None,
        lambda text: {"content": {"raw": text}}, "values")
       for kind, path, param in (("pull_request", "pullrequests", "pull_request_id"),
                                 ("issue", "issues", "issue_id"))},
}
_REPO_PARAMS: dict[str, Callable[[dict], dict[str, str]]] = {
    "github": GITHUB_PLAN.repo_params, "gitlab": GITLAB_PLAN.repo_params,
    "bitbucket": BITBUCKET_PLAN.repo_params}
NORMALIZE: dict[str, Normalize] = {"github": github_records.comment,
                                   "gitlab": gitlab_records.comment,
                                   "bitbucket": bitbucket_records.comment}
SINCE_PARAM = {"github": "since"}  # GitHub lists a thread's comments oldest first
MARKER_STYLE = {"bitbucket": "markdown"}  # Bitbucket escapes HTML comments
AUTHOR = {"github": ("user", "id"), "gitlab": ("author", "id"), "bitbucket": ("user", "uuid")}
PROVIDERS: tuple[str, ...] = ("github", "gitlab", "bitbucket")


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


def marker_style(provider: str) -> str:
    return MARKER_STYLE.get(provider, "html")


def comment_text(provider: str, raw: dict[str, Any]) -> Any:
    """A listed comment's text (Bitbucket: ``content.raw``)."""
    if provider == "bitbucket":
        content = raw.get("content")
        return content.get("raw") if isinstance(content, dict) else None
    return raw.get("body")


def comment_url(provider: str, raw: dict[str, Any], repository: dict[str, Any],
                parent_kind: str, number: int) -> str | None:
    """The comment's web address: GitHub and Bitbucket say it; for GitLab it is built from the
    project's."""
    if provider in ("github", "bitbucket"):
        links = raw.get("links") if provider == "bitbucket" else None
        html = links.get("html") if isinstance(links, dict) else None
        url = html.get("href") if isinstance(html, dict) else raw.get("html_url")
        return url if isinstance(url, str) else None
    web, where = repository.get("url"), target_for(provider, parent_kind).web_path
    if not isinstance(web, str) or where is None:
        return None
    return f"{web.rstrip('/')}/-/{where}/{number}#note_{raw.get('id')}"


def author_id(provider: str, raw: dict[str, Any]) -> str | None:
    """The external id of a comment's author (GitHub ``user.id``, GitLab ``author.id``,
    Bitbucket ``user.uuid``)."""
    field, key = AUTHOR[provider]
    who = raw.get(field)
    ident = who.get(key) if isinstance(who, dict) else None
    return None if ident is None else str(ident)
