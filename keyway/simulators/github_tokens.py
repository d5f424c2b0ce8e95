"""Which GitHub token may call what: the simulator's one table of token kinds, GitHub App
permissions and OAuth scopes, applied by every GitHub endpoint (REST through
``GitHubApi._call`` / ``RepoEndpoints._repo_call``, GraphQL nodes, hooks, comments).

Token kinds (:func:`caller`):

* ``installation`` - a GitHub App installation token (``ghs_``; ``TokenInfo.client_id``
  starts with ``github-app:``). It is refused with GitHub's 403 ``Resource not accessible by
  integration`` on every endpoint GitHub does not enable for GitHub Apps
  (:data:`NOT_FOR_INSTALLATIONS`; GitHub docs: "REST API endpoints available for GitHub App
  installation access tokens"), and on an endpoint whose permission it lacks
  (:data:`APP_PERMISSIONS`; "Permissions required for GitHub Apps"). It sees only its
  installation's repositories - all of the account's, or the selected ones - private ones
  included; any other repository answers 404 (GitHub hides what a token may not see).
* ``oauth`` - an OAuth App token (``gho_``, never expires) with classic scopes ("Scopes for
  OAuth apps"): without ``repo`` a private repository does not exist for it (absent from
  lists, 404 on its endpoints, ``NOT_FOUND`` for its GraphQL nodes); an endpoint listed in
  :data:`OAUTH_SCOPES` needs one of its scopes (a comment: ``public_repo`` or ``repo``; hooks:
  ``admin:repo_hook`` and its relatives), else 403 with the accepted scopes. Every answer to
  such a token carries ``X-OAuth-Scopes`` (what it has) and ``X-Accepted-OAuth-Scopes`` (what
  the endpoint accepts), as the same page documents.
* ``user_to_server`` - a GitHub App user token (``ghu_``, expiring). GitHub gives it no
  scopes: it acts with the app's permissions on the installations its user can access. The
  simulator keeps that simple: it stands for an app installed on every repository of the
  signed-in user (private ones visible, no scope rule about repositories or comments); only
  the hook rule reads the scopes it was minted with, standing in for the app's
  ``repository_hooks`` permission.

A repository on a private path that a token may not see is 404, which is what the REST docs'
"Troubleshooting the REST API" page says GitHub answers for resources it will not confirm.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Request, Response

from keyway.simulators.oauth_model import TokenInfo
from keyway.simulators.wire import ROUTE, json_response

DOCS = "https://docs.github.com/rest"
INTEGRATION = "Resource not accessible by integration"
BOT_CLIENT = "github-app:"  # TokenInfo.client_id prefix of installation tokens
LEVELS = {"read": 1, "write": 2, "admin": 3}
GRAPHQL = "POST /graphql"

# "REST API endpoints available for GitHub App installation access tokens": of the endpoints
# the simulator serves, these are not there (they serve user tokens only).
NOT_FOR_INSTALLATIONS: frozenset[str] = frozenset({
    "GET /user", "GET /user/repos", "GET /user/installations",
    "GET /user/installations/{installation_id}/repositories",
    # the App's own webhook log: the app's JWT only (github_deliveries)
    "GET /app/hook/deliveries", "GET /app/hook/deliveries/{delivery_id}",
    "POST /app/hook/deliveries/{delivery_id}/attempts",
})

_REPO = "/repos/{owner}/{repo}"
_META, _PULLS, _ISSUES = (("metadata", "read"),), (("pull_requests", "read"),), (
    ("issues", "read"),)
# "Permissions required for GitHub Apps": any one of (permission, at least this level).
APP_PERMISSIONS: Mapping[str, tuple[tuple[str, str], ...]] = {
    "GET /orgs/{org}/repos": _META,
    f"GET {_REPO}": _META,
    f"GET {_REPO}/labels": _META,
    f"GET {_REPO}/pulls": _PULLS,
    f"GET {_REPO}/pulls/comments": _PULLS,
    f"GET {_REPO}/pulls/{{pull_number}}/reviews": _PULLS,
    f"GET {_REPO}/issues": _ISSUES,
    f"GET {_REPO}/issues/comments": _ISSUES,
    f"GET {_REPO}/issues/{{issue_number}}/comments": _ISSUES,
    f"POST {_REPO}/issues/{{issue_number}}/comments": (("issues", "write"),
                                                      ("pull_requests", "write")),
    f"GET {_REPO}/hooks": (("repository_hooks", "read"),),
    f"POST {_REPO}/hooks": (("repository_hooks", "write"),),
    f"DELETE {_REPO}/hooks/{{hook_id}}": (("repository_hooks", "write"),),
    f"GET {_REPO}/hooks/{{hook_id}}/deliveries": (("repository_hooks", "read"),),
    f"GET {_REPO}/hooks/{{hook_id}}/deliveries/{{delivery_id}}": (("repository_hooks", "read"),),
    f"POST {_REPO}/hooks/{{hook_id}}/deliveries/{{delivery_id}}/attempts": (
        ("repository_hooks", "write"),),
    GRAPHQL: _PULLS,  # the pull request nodes keyway reads
}

_HOOK_WRITE = frozenset({"admin:repo_hook", "write:repo_hook", "repo"})
_DELIVERIES = f"{_REPO}/hooks/{{hook_id}}/deliveries"
HOOK_TEMPLATES = frozenset({f"GET {_REPO}/hooks", f"POST {_REPO}/hooks",
                            f"DELETE {_REPO}/hooks/{{hook_id}}", f"GET {_DELIVERIES}",
                            f"GET {_DELIVERIES}/{{delivery_id}}",
                            f"POST {_DELIVERIES}/{{delivery_id}}/attempts"})
# "Scopes for OAuth apps": the scopes an endpoint accepts (X-Accepted-OAuth-Scopes).
OAUTH_SCOPES: Mapping[str, frozenset[str]] = {
    f"POST {_REPO}/issues/{{issue_number}}/comments": frozenset({"public_repo", "repo"}),
    f"GET {_REPO}/hooks": _HOOK_WRITE | {"read:repo_hook"},
    f"POST {_REPO}/hooks": _HOOK_WRITE,
    f"DELETE {_REPO}/hooks/{{hook_id}}": _HOOK_WRITE,
    f"GET {_DELIVERIES}": _HOOK_WRITE | {"read:repo_hook"},
    f"GET {_DELIVERIES}/{{delivery_id}}": _HOOK_WRITE | {"read:repo_hook"},
    f"POST {_DELIVERIES}/{{delivery_id}}/attempts": _HOOK_WRITE,
}


@dataclass(frozen=True)
class Caller:
    """Who a request's token stands for; ``installation`` for installation tokens."""

    kind: str  # "installation" | "oauth" | "user_to_server"
    info: TokenInfo
    installation: Any = None  # github_app.Installation

    @property
    def permissions(self) -> dict[str, str]:
        """An installation token's permissions (its scopes are ``name:level``)."""
        return dict(s.split(":", 1) for s in self.info.scopes if ":" in s)

    def sees(self, repo: Mapping[str, Any]) -> bool:
        """Whether the repository exists for this token at all."""
        if self.kind == "installation":
            return self.installation is not None and self.installation.covers(repo)
        return self.kind != "oauth" or not repo.get("private") or "repo" in self.info.scopes

    def headers(self, endpoint: str) -> dict[str, str]:
        """``X-OAuth-Scopes`` / ``X-Accepted-OAuth-Scopes`` for OAuth tokens, else none."""
        if self.kind != "oauth":
            return {}
        return {"X-OAuth-Scopes": ", ".join(self.info.scopes),
                "X-Accepted-OAuth-Scopes": ", ".join(sorted(OAUTH_SCOPES.get(endpoint, ())))}


def kind_of(token: str, info: TokenInfo) -> str:
    if info.client_id.startswith(BOT_CLIENT):
        return "installation"
    if token.startswith("gho_") or (not token.startswith("ghu_") and info.expires_at is None):
        return "oauth"
    return "user_to_server"


def caller(token: str, info: TokenInfo,
           installation_of: Callable[[TokenInfo], Any]) -> Caller:
    kind = kind_of(token, info)
    return Caller(kind, info, installation_of(info) if kind == "installation" else None)


def endpoint(request: Request) -> str:
    """``METHOD /template`` of the route the request matched (``POST /graphql`` for GraphQL)."""
    template = request.environ.get(ROUTE) or request.path
    return GRAPHQL if template.endswith("/graphql") else f"{request.method} {template}"


def error(status: int, message: str, docs: str = DOCS,
          headers: Mapping[str, str] | None = None) -> Response:
    return json_response({"message": message, "documentation_url": docs,
                          "status": str(status)}, status, dict(headers or {}))


def refusal(who: Caller, where: str, repo: Mapping[str, Any] | None = None,
            docs: str = DOCS) -> Response | None:
    """GitHub's answer when ``who`` may not call endpoint ``where`` (on ``repo``); else None."""
    if repo is not None and not who.sees(repo):
        return error(404, "Not Found", docs)
    if who.kind == "installation":
        granted = who.permissions
        needed = APP_PERMISSIONS.get(where)
        if where in NOT_FOR_INSTALLATIONS or (needed and not any(
                LEVELS.get(granted.get(name, ""), 0) >= LEVELS[level]
                for name, level in needed)):
            return error(403, INTEGRATION, docs)
        return None
    accepted = OAUTH_SCOPES.get(where)
    applies = who.kind == "oauth" or where in HOOK_TEMPLATES
    if accepted and applies and not accepted.intersection(who.info.scopes):
        wanted = "public_repo" if "public_repo" in accepted else "admin:repo_hook"
        return error(403, f"Resource not accessible by this token: it lacks the {wanted} "
                          "scope.", docs, {"X-Accepted-OAuth-Scopes": ", ".join(sorted(accepted)),
                                           "X-OAuth-Scopes": ", ".join(who.info.scopes)})
    return None
