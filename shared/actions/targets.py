"""Where a comment goes, per (provider, parent kind): a table, not an if-chain.

GitHub comments on pull requests and issues alike through the issue comments endpoint (a pull
request's conversation is its issue's); GitLab has one notes endpoint per noteable; Bitbucket
one comments endpoint per pull request and per issue, listing pages of ``values``; Jira has
issues only, addressed by key (``<project key>-<number>``). What is posted differs too:
GitHub and GitLab take ``{"body"}`` with the invisible marker appended (an HTML comment);
Bitbucket takes ``{"content": {"raw"}}`` and, as it escapes HTML, the marker is a Markdown
link reference that renders as nothing (:data:`shared.actions.model.MARKERS`); Jira takes an
ADF body and keeps the action id out of sight as a comment property (``keyway.action``), which
its comment listing returns with ``expand=properties``. Every template here is in the provider
table's allowlist (``shared/providers/providers.json``), so
:class:`~shared.fetch.client.ProviderClient` accepts them and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shared import ids
from shared.actions.model import has_marker, with_marker
from shared.fetch.bitbucket.plan import PLAN as BITBUCKET_PLAN
from shared.fetch.github.plan import PLAN as GITHUB_PLAN
from shared.fetch.gitlab.plan import PLAN as GITLAB_PLAN
from shared.records import adf
from shared.records import bitbucket as bitbucket_records
from shared.records import github as github_records
from shared.records import gitlab as gitlab_records
from shared.records import jira as jira_records

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
    **{("bitbucket", kind): Target(
        f"POST /repositories/{{workspace}}/{{repo_slug}}/{path}/{{{param}}}/comments",
        f"GET /repositories/{{workspace}}/{{repo_slug}}/{path}/{{{param}}}/comments",
        param, {"sort": "-created_on"}, None)
       for kind, path, param in (("pull_request", "pullrequests", "pull_request_id"),
                                 ("issue", "issues", "issue_id"))},
    ("jira", "issue"): Target(
        "POST /rest/api/3/issue/{issueIdOrKey}/comment",
        "GET /rest/api/3/issue/{issueIdOrKey}/comment",
        "issueIdOrKey", {"orderBy": "-created", "expand": "properties"}, None),
}
JIRA_PROPERTY = "keyway.action"


def _jira_issue(repository: dict[str, Any], number: int) -> dict[str, str]:
    return {"issueIdOrKey": f"{repository['name']}-{number}"}


_REPO_PARAMS: dict[str, Callable[[dict], dict[str, str]]] = {
    "github": GITHUB_PLAN.repo_params, "gitlab": GITLAB_PLAN.repo_params,
    "bitbucket": BITBUCKET_PLAN.repo_params}
_THREAD_PARAMS: dict[str, Callable[[dict[str, Any], int], dict[str, str]]] = {
    "jira": _jira_issue}
NORMALIZE: dict[str, Normalize] = {"github": github_records.comment,
                                   "gitlab": gitlab_records.comment,
                                   "bitbucket": bitbucket_records.comment,
                                   "jira": jira_records.comment}
SINCE_PARAM = {"github": "since"}  # GitHub lists a thread's comments oldest first
# a page of comments is an object with its list under this key
ITEMS_KEY = {"bitbucket": "values", "jira": "comments"}
MARKER_STYLE = {"bitbucket": "markdown"}  # Bitbucket escapes HTML comments
# where a comment names its author: (object, id field)
AUTHOR = {"github": ("user", "id"), "gitlab": ("author", "id"), "bitbucket": ("user", "uuid"),
          "jira": ("author", "accountId")}
PROVIDERS: tuple[str, ...] = ("github", "gitlab", "bitbucket", "jira")


def supports(provider: str, parent_kind: str | None = None) -> bool:
    """Whether ``provider`` takes comments (on ``parent_kind``, when given)."""
    if parent_kind is not None:
        return (provider, parent_kind) in TARGETS
    return provider in PROVIDERS


def payload(provider: str, body: str, action_id: str) -> dict[str, Any]:
    """What is POSTed: the body with the action's marker (see the module docstring)."""
    if provider == "jira":
        return {"body": adf.from_text(body),
                "properties": [{"key": JIRA_PROPERTY, "value": {"action_id": action_id}}]}
    text = with_marker(body, action_id, MARKER_STYLE.get(provider, "html"))
    return {"content": {"raw": text}} if provider == "bitbucket" else {"body": text}


def marked(provider: str, raw: dict[str, Any], action_id: str) -> bool:
    """Whether a listed comment carries ``action_id``'s marker."""
    if provider != "jira":
        return has_marker(comment_text(provider, raw), action_id)
    return any(isinstance(p, dict) and p.get("key") == JIRA_PROPERTY
               and (p.get("value") or {}).get("action_id") == action_id
               for p in raw.get("properties") or ())


def target_for(provider: str, parent_kind: str) -> Target:
    return TARGETS[(provider, parent_kind)]


def path_params(provider: str, repository: dict[str, Any], parent_kind: str,
                number: int) -> dict[str, str]:
    """The path parameters of a thread: the repository's (as the fetcher builds them) and
    the pull/merge request or issue number."""
    if provider in _THREAD_PARAMS:
        return _THREAD_PARAMS[provider](repository, number)
    params = dict(_REPO_PARAMS[provider](repository))
    params[target_for(provider, parent_kind).number_param] = str(number)
    return params


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
    if provider == "jira":
        key = _jira_issue(repository, number)["issueIdOrKey"]
        return jira_records.browse_url(raw, key, f"?focusedCommentId={raw.get('id')}")
    web, where = repository.get("url"), target_for(provider, parent_kind).web_path
    if not isinstance(web, str) or where is None:
        return None
    return f"{web.rstrip('/')}/-/{where}/{number}#note_{raw.get('id')}"


def author_id(provider: str, raw: dict[str, Any]) -> str | None:
    """The external id of a comment's author (GitHub ``user.id``, GitLab ``author.id``,
    Bitbucket ``user.uuid``, Jira ``author.accountId``)."""
    field, key = AUTHOR[provider]
    who = raw.get(field)
    ident = who.get(key) if isinstance(who, dict) else None
    return None if ident is None else str(ident)


def repository_of(ports: Any, tenant: str, connection_id: str, connection: Mapping[str, Any],
                  repository_id: str) -> dict[str, Any] | None:
    """The live repository record ``repository_id`` of this tenant's connection, or None: a
    repository another connection synced (even of the same tenant and provider) is not a
    target of this one — its path would be sent to this connection's host."""
    repository = ports.business.get("repositories", repository_id)
    if (repository is None or repository.get("tenant") != tenant
            or repository.get("connection") != connection_id
            or repository.get("provider") != connection.get("provider")
            or repository.get("deleted")):
        return None
    return repository


def identity_for(ports: Any, tenant: str, user: str,
                 connection: Mapping[str, Any]) -> dict[str, Any] | None:
    """The user's linked identity usable on ``connection``: same provider and same host
    (``base_url``; None is the provider's cloud). The personal token behind an identity was
    issued by that host and must never be sent to another."""
    identity = ports.business.get("identities",
                                  ids.identity_id(connection.get("provider"), tenant, user))
    if identity is None or identity.get("base_url") != connection.get("base_url"):
        return None
    return identity
