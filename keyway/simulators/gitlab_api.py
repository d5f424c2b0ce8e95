"""GitLab's REST API v4 as the simulator serves it under ``/api/v4`` (as gitlab.com does).

Endpoints: ``GET /user`` and ``GET /projects`` (filters ``membership``, ``archived``,
``id_after``, ``id_before``). OAuth tokens go in ``Authorization: Bearer``; a missing or unknown
token gets 401 ``{"message": "401 Unauthorized"}``, an expired or revoked one 401
``{"error": "invalid_token", ...}`` with ``WWW-Authenticate``.

Pagination: ``pagination=keyset&order_by=id&sort=asc|desc&per_page=N`` answers a
``Link: <...id_after=LAST...>; rel="next"`` header while more remain (keyset with another
``order_by`` → 405); otherwise offset pagination with ``page``/``per_page`` (default 20, max
100), ``X-Page``, ``X-Per-Page``, ``X-Total``, ``X-Total-Pages``, ``X-Next-Page``,
``X-Prev-Page`` and a ``Link`` header. Every answer carries ``RateLimit-Limit``,
``RateLimit-Observed``, ``RateLimit-Remaining``, ``RateLimit-Reset`` and
``RateLimit-ResetTime``; every request but a 304 (``If-None-Match`` naming the current weak
``ETag``) spends one unit of the user's per-minute budget; with none left: 429 ``Retry later``
with ``Retry-After``.

Scopes (:data:`SCOPES`, from GitLab's "OAuth 2.0 identity provider API" and "Personal access
token scopes" pages): ``read_api`` reads the whole API, ``api`` reads and writes it,
``read_user`` reads only ``/user`` and ``/users``. A token without what the route needs gets
403 ``{"error": "insufficient_scope", "error_description", "scope": <the scopes that would
do>}`` with a ``WWW-Authenticate: Bearer realm="Protected by OAuth 2.0",
error="insufficient_scope", ...`` challenge, as Doorkeeper answers, before anything is read.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from typing import Any
from urllib.parse import urlencode, urlsplit

from werkzeug.wrappers import Request, Response

from keyway.simulators.oauth import OAuthAuthority
from keyway.simulators.oauth_model import OAuthError, TokenInfo
from keyway.simulators.ratelimit import Budget, RateLimiter, metered_json
from keyway.simulators.scopes import ScopeTable, any_of
from keyway.simulators.server import Route
from keyway.simulators.wire import bearer_token, json_response

API = "/api/v4"
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
ORDER_KEYS = {"id": "id", "name": "name", "path": "path", "created_at": "id",
              "updated_at": "last_activity_at", "last_activity_at": "last_activity_at"}
TOKEN_ERRORS = {
    "expired": "Token is expired. You can either do re-authorization or token refresh.",
    "revoked": "Token was revoked. You have to re-authorize from the user.",
}
INSUFFICIENT = "The request requires higher privileges than provided by the access token."
_READ, _PROFILE, _WRITE = any_of("read_api", "api"), any_of("read_user", "read_api", "api"), \
    any_of("api")
# a GraphQL query reads ("read_api: Grants read access to the API"); the simulator serves no
# mutations, which would need "api"
SCOPES = ScopeTable(rules={"GET /user": _PROFILE, "GET /users/{user_id}": _PROFILE,
                           "POST /api/graphql": _READ},
                    default={"GET": _READ, "HEAD": _READ, "POST": _WRITE, "PUT": _WRITE,
                             "PATCH": _WRITE, "DELETE": _WRITE})


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


class GitLabData:
    """Seeded groups and projects (metadata only); thread-safe."""

    def __init__(self) -> None:
        self.groups: dict[str, dict[str, Any]] = {}
        self.projects: list[dict[str, Any]] = []
        self.maintainer_denied: set[int] = set()  # project ids the user does not maintain
        self._lock = threading.Lock()

    def seed(self, group: str, projects: int) -> list[dict[str, Any]]:
        """Create ``group`` (once) and add ``projects`` projects to it; returns them."""
        with self._lock:
            namespace = self.groups.setdefault(group.lower(), {
                "id": 1000 + len(self.groups) + 1, "name": group, "path": group.lower(),
                "kind": "group", "full_path": group.lower(), "parent_id": None,
                "avatar_url": None})
            start = sum(1 for p in self.projects if p["namespace"] is namespace)
            made = [self._project(namespace, start + i + 1, len(self.projects) + i + 1)
                    for i in range(projects)]
            self.projects += made
            return made

    @staticmethod
    def _project(namespace: dict[str, Any], number: int, ordinal: int) -> dict[str, Any]:
        created = EPOCH + timedelta(hours=ordinal)
        path = f"project-{number:04d}"
        return {
            "id": 10_000 + ordinal, "description": f"Seeded project {number}", "name": path,
            "name_with_namespace": f"{namespace['name']} / {path}", "path": path,
            "path_with_namespace": f"{namespace['full_path']}/{path}",
            "created_at": _iso(created), "default_branch": "main", "tag_list": [],
            "topics": [], "forks_count": 0, "star_count": number % 5, "avatar_url": None,
            "last_activity_at": _iso(created + timedelta(days=30)), "namespace": namespace,
            "visibility": ("private", "internal", "public")[number % 3],
            "archived": number % 10 == 0, "empty_repo": False, "open_issues_count": 0,
        }

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.projects)


def project_json(project: dict[str, Any], host: str) -> dict[str, Any]:
    """A project as ``GET /projects`` renders it (URLs point at the simulator)."""
    path, web = project["path_with_namespace"], host.rstrip("/")
    group = project["namespace"]
    return {**project, "namespace": {**group, "web_url": f"{web}/groups/{group['full_path']}"},
            "web_url": f"{web}/{path}", "http_url_to_repo": f"{web}/{path}.git",
            "readme_url": f"{web}/{path}/-/blob/main/README.md",
            "ssh_url_to_repo": f"git@{urlsplit(web).hostname}:{path}.git"}


def _filtered(request: Request, projects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    args = request.args
    after, before = args.get("id_after", type=int), args.get("id_before", type=int)
    archived = args.get("archived")
    return [p for p in projects
            if (after is None or p["id"] > after) and (before is None or p["id"] < before)
            and (archived is None or p["archived"] == (archived == "true"))]


def _per_page(request: Request) -> int:
    return min(max(request.args.get("per_page", 20, type=int) or 20, 1), 100)


def _url(request: Request, **changes: object) -> str:
    return f"{request.base_url}?{urlencode({**request.args.to_dict(), **changes})}"


def keyset_page(request: Request, projects: list[dict]) -> tuple[list[dict], dict[str, str]]:
    """Projects after the cursor in ``id`` order and a ``rel="next"`` link while more remain."""
    descending = request.args.get("sort", "desc") == "desc"
    ordered = sorted(projects, key=lambda p: p["id"], reverse=descending)
    per_page = _per_page(request)
    chunk = ordered[:per_page]
    if len(ordered) <= per_page:
        return chunk, {}
    cursor = {"id_before" if descending else "id_after": chunk[-1]["id"]}
    stale = "id_after" if descending else "id_before"
    query = {k: v for k, v in request.args.to_dict().items() if k != stale}
    link = f"{request.base_url}?{urlencode({**query, **cursor})}"
    return chunk, {"Link": f'<{link}>; rel="next"'}


def offset_page(request: Request, projects: list[dict]) -> tuple[list[dict], dict[str, str]]:
    """One offset page with GitLab's ``X-*`` pagination headers and ``Link``."""
    key = ORDER_KEYS.get(request.args.get("order_by", "created_at"), "id")
    ordered = sorted(projects, key=lambda p: (p[key], p["id"]),
                     reverse=request.args.get("sort", "desc") == "desc")
    per_page, page = _per_page(request), max(request.args.get("page", 1, type=int) or 1, 1)
    pages = max(math.ceil(len(ordered) / per_page), 1)
    nxt, prev = (page + 1 if page < pages else ""), (page - 1 if page > 1 else "")
    links = [f'<{_url(request, page=n, per_page=per_page)}>; rel="{rel}"'
             for n, rel in ((prev, "prev"), (nxt, "next"), (1, "first"), (pages, "last")) if n]
    headers = {"X-Page": str(page), "X-Per-Page": str(per_page), "X-Total": str(len(ordered)),
               "X-Total-Pages": str(pages), "X-Next-Page": str(nxt), "X-Prev-Page": str(prev),
               "Link": ", ".join(links)}
    return ordered[(page - 1) * per_page:page * per_page], headers


def insufficient_scope(scope: str) -> Response:
    """GitLab's 403 for a token without the scope a route needs (``scope``: what would do)."""
    challenge = (f'Bearer realm="Protected by OAuth 2.0", error="insufficient_scope", '
                 f'error_description="{INSUFFICIENT}", scope="{scope}"')
    return json_response({"error": "insufficient_scope", "error_description": INSUFFICIENT,
                          "scope": scope}, 403, {"WWW-Authenticate": challenge})


class GitLabApi:
    """The REST endpoints, metered against each user's budget."""

    def __init__(self, authority: OAuthAuthority, limiter: RateLimiter,
                 data: GitLabData) -> None:
        self.authority, self.limiter, self.data = authority, limiter, data

    def routes(self) -> list[Route]:
        return [Route(f"{API}/user", ("GET",), self.user),
                Route(f"{API}/projects", ("GET",), self.projects)]

    def _call(self, request: Request,
              produce: Callable[[TokenInfo], tuple[Any, dict[str, str]] | Response]) -> Response:
        try:
            info = self.authority.authenticate(bearer_token(request))
        except OAuthError as e:
            if e.reason not in TOKEN_ERRORS:
                return json_response({"message": "401 Unauthorized"}, 401)
            text = TOKEN_ERRORS[e.reason]
            return json_response({"error": "invalid_token", "error_description": text}, 401, {
                "WWW-Authenticate": f'Bearer realm="Protected by OAuth 2.0", '
                                    f'error="invalid_token", error_description="{text}"'})
        needed = SCOPES.missing(request, info.scopes)
        if needed is not None:
            return insufficient_scope(" ".join(s for alt in needed for s in sorted(alt)))
        return metered_json(request, self.limiter, info.account.id, lambda: produce(info),
                            self._rate_headers, self._exhausted)

    def _rate_headers(self, budget: Budget) -> dict[str, str]:
        return {"RateLimit-Limit": str(budget.limit), "RateLimit-Observed": str(budget.used),
                "RateLimit-Remaining": str(budget.remaining),
                "RateLimit-Reset": str(budget.reset),
                "RateLimit-ResetTime": formatdate(budget.reset, usegmt=True)}

    def _exhausted(self, budget: Budget) -> Response:
        wait = max(budget.reset - int(self.limiter.clock()), 1)
        return Response("Retry later\n", status=429, content_type="text/plain",
                        headers={"Retry-After": str(wait)})

    def user(self, request: Request) -> Response:
        def produce(info: TokenInfo) -> tuple[Any, dict[str, str]]:
            account, web = info.account, request.host_url.rstrip("/")
            return {"id": account.id, "username": account.login, "name": account.name,
                    "state": "active", "locked": False, "avatar_url": None,
                    "web_url": f"{web}/{account.login}", "created_at": _iso(EPOCH),
                    "bio": "", "location": "", "public_email": None, "bot": False}, {}
        return self._call(request, produce)

    def projects(self, request: Request) -> Response:
        def produce(info: TokenInfo) -> tuple[Any, dict[str, str]] | Response:
            keyset = request.args.get("pagination") == "keyset"
            if keyset and request.args.get("order_by") != "id":
                return json_response({"error": "Keyset pagination is not yet available for "
                                      "this type of request"}, 405)
            projects = _filtered(request, self.data.list())
            chunk, headers = (keyset_page if keyset else offset_page)(request, projects)
            return [project_json(p, request.host_url) for p in chunk], headers
        return self._call(request, produce)
