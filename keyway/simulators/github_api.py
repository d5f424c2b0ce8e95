"""GitHub's REST API as the simulator serves it, under ``/api/v3`` like GitHub Enterprise
Server (github.com serves the same paths at ``https://api.github.com``), so a client's API base
URL for the simulator is ``<sim.url>/api/v3``.

Endpoints: ``GET /user``, ``GET /user/repos``, ``GET /orgs/<org>/repos``. Authentication
``Authorization: Bearer <token>`` or ``token <token>``; a missing, unknown, revoked or expired
token gets 401 ``{"message": "Bad credentials", ...}``; what each kind of token may call and
see (installation, OAuth App, user-to-server) is :mod:`.github_tokens`'s table. Lists page
with ``per_page`` (default 30, max 100) and ``page`` and a ``Link`` header (``prev``,
``next``, ``last``, ``first``).
Every answer carries ``X-RateLimit-Limit/Remaining/Reset/Used/Resource``; each request spends
one unit of the user's hourly budget except a 304, answered when ``If-None-Match`` names the
current ``ETag``. With no budget left: 403 ``API rate limit exceeded``.
"""

from __future__ import annotations

import base64
import math
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from werkzeug.wrappers import Request, Response

from keyway.simulators import github_tokens as tokens
from keyway.simulators.oauth import OAuthAuthority
from keyway.simulators.oauth_model import OAuthError, TokenInfo
from keyway.simulators.ratelimit import Budget, RateLimiter, metered_json
from keyway.simulators.server import Route
from keyway.simulators.wire import bearer_token, json_response

API = "/api/v3"
DOCS = "https://docs.github.com/rest"
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
SORT_KEYS = {"created": "created_at", "updated": "updated_at", "pushed": "pushed_at",
             "full_name": "full_name"}
CALLER = "keyway.simulator.caller"  # request.environ: the token's github_tokens.Caller
COMMON_HEADERS = {"Cache-Control": "private, max-age=60, s-maxage=60",
                  "Vary": "Accept, Authorization, Cookie, X-GitHub-OTP",
                  "X-GitHub-Api-Version-Selected": "2022-11-28",
                  "X-GitHub-Media-Type": "github.v3; format=json"}


def node_id(type_code: str, kind: str, ident: int) -> str:
    """GitHub's legacy global node id, e.g. ``MDQ6VXNlcjE=`` for user 1."""
    return base64.b64encode(f"{type_code}:{kind}{ident}".encode()).decode("ascii")


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, message: str, docs: str = DOCS) -> Response:
    return json_response({"message": message, "documentation_url": docs,
                          "status": str(status)}, status)


class GitHubData:
    """Seeded organisations and repositories (metadata only); thread-safe."""

    def __init__(self) -> None:
        self.orgs: dict[str, dict[str, Any]] = {}
        self.repos: list[dict[str, Any]] = []
        self.admin_denied: set[str] = set()  # lower-cased full names the user cannot admin
        # an installation token's installation (set by github_app.GitHubApps)
        self.installation_of: Callable[[TokenInfo], Any] = lambda info: None
        self._lock = threading.Lock()

    def seed(self, org: str, repos: int) -> list[dict[str, Any]]:
        """Create ``org`` (once) and add ``repos`` repositories to it; returns them."""
        with self._lock:
            owner = self.orgs.setdefault(org.lower(), {
                "login": org, "id": 9_000_000 + len(self.orgs) + 1,
                "type": "Organization", "site_admin": False})
            owner.setdefault("node_id", node_id("012", "Organization", owner["id"]))
            start = sum(1 for r in self.repos if r["owner"]["id"] == owner["id"])
            made = [self._repo(owner, start + i + 1, len(self.repos) + i + 1)
                    for i in range(repos)]
            self.repos += made
            return made

    @staticmethod
    def _repo(owner: dict[str, Any], number: int, ordinal: int) -> dict[str, Any]:
        ident = 500_000_000 + ordinal
        created = EPOCH + timedelta(hours=ordinal)
        private, archived = number % 3 == 0, number % 10 == 0
        name = f"repo-{number:04d}"
        return {
            "id": ident, "node_id": node_id("010", "Repository", ident), "name": name,
            "full_name": f"{owner['login']}/{name}", "private": private, "owner": owner,
            "description": f"Seeded repository {number} of {owner['login']}", "fork": False,
            "created_at": _iso(created), "updated_at": _iso(created + timedelta(days=30)),
            "pushed_at": _iso(created + timedelta(days=29)), "default_branch": "main",
            "archived": archived, "disabled": False,
            "visibility": "private" if private else "public", "open_issues_count": 0,
            "language": "Python", "has_issues": True, "forks_count": 0,
            "stargazers_count": number % 7, "watchers_count": number % 7,
        }

    def remove(self, full_name: str) -> None:
        """``full_name`` leaves every list (deleted, or transferred out of reach)."""
        with self._lock:
            self.repos[:] = [r for r in self.repos if r["full_name"].lower() != full_name.lower()]

    def list(self, org: str | None = None) -> list[dict[str, Any]] | None:
        """Every repository, or ``org``'s (None when the organisation is unknown)."""
        with self._lock:
            if org is None:
                return list(self.repos)
            owner = self.orgs.get(org.lower())
            return None if owner is None else [r for r in self.repos if r["owner"] is owner]


def _paginate(request: Request, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
    """One page of ``items`` and its ``Link`` header, the way GitHub builds them."""
    per_page = min(max(request.args.get("per_page", 30, type=int) or 30, 1), 100)
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    last = max(math.ceil(len(items) / per_page), 1)

    def link(number: int, rel: str) -> str:
        query = urlencode({**request.args.to_dict(), "per_page": per_page, "page": number})
        return f'<{request.base_url}?{query}>; rel="{rel}"'

    links = [link(page - 1, "prev")] if page > 1 else []
    links += [link(page + 1, "next"), link(last, "last")] if page < last else []
    links += [link(1, "first")] if page > 1 else []
    return items[(page - 1) * per_page:page * per_page], ({"Link": ", ".join(links)}
                                                          if links else {})


def _sorted(request: Request, repos: list[dict[str, Any]], default: str) -> list[dict]:
    sort = request.args.get("sort", default)
    key = SORT_KEYS.get(sort, SORT_KEYS[default])
    direction = request.args.get("direction", "asc" if sort == "full_name" else "desc")
    return sorted(repos, key=lambda r: (r[key], r["id"]), reverse=direction == "desc")


class GitHubApi:
    """The REST endpoints, metered against each user's budget."""

    def __init__(self, authority: OAuthAuthority, limiter: RateLimiter,
                 data: GitHubData) -> None:
        self.authority, self.limiter, self.data = authority, limiter, data

    def routes(self) -> list[Route]:
        return [
            Route(f"{API}/user", ("GET",), self.user),
            Route(f"{API}/user/repos", ("GET",), self.user_repos),
            Route(f"{API}/orgs/<org>/repos", ("GET",), self.org_repos),
        ]

    def _call(self, request: Request,
              produce: Callable[[TokenInfo], tuple[Any, dict[str, str]] | Response], *,
              check: bool = True) -> Response:
        """Authenticate, apply the token rules (:mod:`.github_tokens`; ``check=False``: the
        producer applies them once it knows the repository), meter, answer. The caller is
        left in ``request.environ[CALLER]`` for the producer."""
        token = bearer_token(request, ("bearer", "token"))
        if token is None:
            return _error(401, "Requires authentication")
        try:
            info = self.authority.authenticate(token)
        except OAuthError:
            return _error(401, "Bad credentials")
        account, where = info.account, tokens.endpoint(request)
        who = request.environ[CALLER] = tokens.caller(token, info, self.data.installation_of)
        refused = tokens.refusal(who, where) if check else None

        def exhausted(budget: Budget) -> Response:
            return _error(403, f"API rate limit exceeded for user ID {account.id}.",
                          f"{DOCS}/overview/rate-limits-for-the-rest-api")

        response = metered_json(request, self.limiter, account.id,
                                lambda: refused or produce(info), self._rate_headers,
                                exhausted)
        response.headers.update(who.headers(where))
        return response

    @staticmethod
    def caller(request: Request) -> tokens.Caller:
        """The request's caller, as :meth:`_call` found it."""
        return request.environ[CALLER]

    @staticmethod
    def _rate_headers(budget: Budget) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(budget.limit),
                "X-RateLimit-Remaining": str(budget.remaining),
                "X-RateLimit-Reset": str(budget.reset), "X-RateLimit-Used": str(budget.used),
                "X-RateLimit-Resource": "core"}

    def user(self, request: Request) -> Response:
        def produce(info: TokenInfo) -> tuple[Any, dict[str, str]]:
            return user_json(info, request.host_url), dict(COMMON_HEADERS)
        return self._call(request, produce)

    def user_repos(self, request: Request) -> Response:
        def produce(info: TokenInfo) -> tuple[Any, dict[str, str]]:
            who = self.caller(request)
            repos = _sorted(request, [r for r in self.data.list() or [] if who.sees(r)],
                            "full_name")
            return self._page(request, repos)
        return self._call(request, produce)

    def org_repos(self, request: Request, org: str) -> Response:
        def produce(info: TokenInfo) -> tuple[Any, dict[str, str]] | Response:
            repos = self.data.list(org)
            if repos is None:
                return _error(404, "Not Found", f"{DOCS}/repos/repos#list-organization-"
                                                "repositories")
            who = self.caller(request)
            return self._page(request, _sorted(request, [r for r in repos if who.sees(r)],
                                               "created"))
        return self._call(request, produce)

    def _page(self, request: Request, repos: list[dict]) -> tuple[Any, dict[str, str]]:
        chunk, link = _paginate(request, repos)
        return [repo_json(r, request.host_url) for r in chunk], {**COMMON_HEADERS, **link}


def account_urls(login: str, host: str) -> dict[str, str]:
    """Every URL of GitHub's "simple user" shape for ``login`` (``host`` ends with ``/``)."""
    api = f"{host}api/v3/users/{login}"
    return {"avatar_url": f"{host}avatars/{login}", "gravatar_id": "", "url": api,
            "html_url": f"{host}{login}", "followers_url": f"{api}/followers",
            "following_url": f"{api}/following{{/other_user}}",
            "gists_url": f"{api}/gists{{/gist_id}}",
            "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/subscriptions", "organizations_url": f"{api}/orgs",
            "repos_url": f"{api}/repos", "events_url": f"{api}/events{{/privacy}}",
            "received_events_url": f"{api}/received_events"}


_REPO_URLS = {  # name → path under the repository's API URL, as GitHub spells them
    "forks_url": "/forks", "keys_url": "/keys{/key_id}",
    "collaborators_url": "/collaborators{/collaborator}", "teams_url": "/teams",
    "hooks_url": "/hooks", "issue_events_url": "/issues/events{/number}",
    "events_url": "/events", "assignees_url": "/assignees{/user}",
    "branches_url": "/branches{/branch}", "tags_url": "/tags",
    "blobs_url": "/git/blobs{/sha}", "git_tags_url": "/git/tags{/sha}",
    "git_refs_url": "/git/refs{/sha}", "trees_url": "/git/trees{/sha}",
    "statuses_url": "/statuses/{sha}", "languages_url": "/languages",
    "stargazers_url": "/stargazers", "contributors_url": "/contributors",
    "subscribers_url": "/subscribers", "subscription_url": "/subscription",
    "commits_url": "/commits{/sha}", "git_commits_url": "/git/commits{/sha}",
    "comments_url": "/comments{/number}", "issue_comment_url": "/issues/comments{/number}",
    "contents_url": "/contents/{+path}", "compare_url": "/compare/{base}...{head}",
    "merges_url": "/merges", "archive_url": "/{archive_format}{/ref}",
    "downloads_url": "/downloads", "issues_url": "/issues{/number}",
    "pulls_url": "/pulls{/number}", "milestones_url": "/milestones{/number}",
    "notifications_url": "/notifications{?since,all,participating}",
    "labels_url": "/labels{/name}", "releases_url": "/releases{/id}",
    "deployments_url": "/deployments",
}


def user_json(info: TokenInfo, host: str) -> dict[str, Any]:
    """``GET /user`` for the token's account (``host`` ends with ``/``)."""
    account = info.account
    return {"login": account.login, "id": account.id,
            "node_id": node_id("04", "User", account.id), **account_urls(account.login, host),
            "type": "User", "user_view_type": "private", "site_admin": False,
            "name": account.name, "company": None, "blog": "", "location": None, "email": None,
            "hireable": None, "bio": None, "twitter_username": None, "public_repos": 0,
            "public_gists": 0, "followers": 0, "following": 0, "created_at": _iso(EPOCH),
            "updated_at": _iso(EPOCH + timedelta(days=365)), "private_gists": 0,
            "total_private_repos": 0, "owned_private_repos": 0, "disk_usage": 0,
            "collaborators": 0, "two_factor_authentication": True}


def repo_json(repo: dict[str, Any], host: str) -> dict[str, Any]:
    """A repository as the list endpoints render it (URLs point at the simulator)."""
    owner = {**repo["owner"], **account_urls(repo["owner"]["login"], host)}
    api, web = f"{host}api/v3/repos/{repo['full_name']}", f"{host}{repo['full_name']}"
    return {**repo, "owner": owner, "html_url": web, "url": api,
            **{name: api + path for name, path in _REPO_URLS.items()},
            "git_url": f"git://{urlsplit(host).netloc}/{repo['full_name']}.git",
            "ssh_url": f"git@{urlsplit(host).hostname}:{repo['full_name']}.git",
            "clone_url": f"{web}.git", "svn_url": web, "homepage": None, "size": 1024,
            "forks": repo["forks_count"], "open_issues": repo["open_issues_count"],
            "watchers": repo["watchers_count"], "mirror_url": None, "license": None,
            "topics": [], "is_template": False, "has_projects": True, "has_wiki": True,
            "has_pages": False, "has_discussions": False, "has_downloads": True,
            "allow_forking": True, "web_commit_signoff_required": False,
            "permissions": {"admin": False, "maintain": False, "push": True,
                            "triage": True, "pull": True}}
