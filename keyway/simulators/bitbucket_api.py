"""Bitbucket Cloud's REST 2.0 API as the simulator serves it under ``/2.0``: the plumbing every
endpoint shares and the account-level endpoints.

* Authentication: ``Authorization: Bearer <access token>``; a missing, unknown, expired or
  revoked token → 401 ``{"type": "error", "error": {"message": …}}``.
* Pagination: ``page`` and ``pagelen`` (default 10; at most 50 for pull requests, 100
  elsewhere); the answer is ``{"pagelen", "size", "page", "values", "next", "previous"}`` with
  absolute ``next``/``previous`` URLs. No ``ETag``, no ``304``.
* Rate limit: 1,000 requests per rolling hour per account on ``/2.0/repositories/*``
  (:class:`RollingLimiter`); the 1,001st → 429 ``Rate limit for this resource has been
  exceeded``. OAuth tokens get no ``X-RateLimit-*`` headers (Atlassian sends those to access
  tokens only) and, unless :attr:`BitbucketApi.retry_after` is set, no ``Retry-After``.
* Scopes (:data:`SCOPES`): each operation needs the ``oauth2`` scopes its ``security`` lists
  in Bitbucket's published API description, widened by the implications of "Scopes for the
  Bitbucket Cloud REST API" (``pullrequest`` implies ``repository``, ``issue:write``
  implies ``issue``...). A token without them → 403 ``{"type": "error", "error": {"message":
  "Your credentials lack one or more required privilege scopes.", "detail": {"granted",
  "required"}}}``, before anything is read or counted. A token's scopes are the permissions
  ticked on its consumer (:mod:`.bitbucket_oauth`), whatever was asked.
* ``GET /2.0/user``, ``GET /2.0/user/workspaces``, ``GET /2.0/repositories/{workspace}``
  (``role``), ``GET /2.0/repositories/{workspace}/{repo_slug}``; the removed cross-workspace
  lists ``GET /2.0/repositories`` and ``GET /2.0/workspaces`` answer 410 (CHANGE-2770).
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from keyway.simulators.bitbucket_data import BitbucketActivity, account_json_fields
from keyway.simulators.bitbucket_render import (
    API,
    Site,
    account_json,
    repository_json,
    when,
    workspace_access_json,
)
from keyway.simulators.oauth import OAuthAuthority
from keyway.simulators.oauth_model import OAuthError, TokenInfo
from keyway.simulators.scopes import ScopeTable, all_of, flat
from keyway.simulators.server import Route
from keyway.simulators.wire import bearer_token, json_response

HOURLY_LIMIT = 1000
RATE_LIMITED = "Rate limit for this resource has been exceeded"
TOKEN_ERRORS = {"expired": "Access token expired. Use your refresh token to obtain a new "
                           "access token.",
                "revoked": "Access token revoked.", "unknown": "Token is invalid or expired."}
Produced = tuple[Any, int] | Response
LACKING = "Your credentials lack one or more required privilege scopes."
_REPO, _PR, _ISSUE = all_of("repository"), all_of("pullrequest"), all_of("issue")
_HOOKS = all_of("webhook")
SCOPES = ScopeTable(
    rules={"GET /user": all_of("account"), "GET /user/workspaces": all_of("account"),
           "GET /repositories/{workspace}": _REPO,
           "GET /repositories/{workspace}/{repo_slug}": _REPO,
           **{f"{verb} /repositories/{{workspace}}/{{repo_slug}}/{path}": need
              for verb, path, need in (
                  ("GET", "pullrequests", _PR), ("GET", "pullrequests/{pull_request_id}", _PR),
                  ("GET", "pullrequests/{pull_request_id}/comments", _PR),
                  ("POST", "pullrequests/{pull_request_id}/comments", _PR),
                  ("GET", "pullrequests/{pull_request_id}/diff", _PR),
                  ("GET", "pullrequests/{pull_request_id}/patch", _PR),
                  ("GET", "issues", _ISSUE), ("GET", "issues/{issue_id}", _ISSUE),
                  ("GET", "issues/{issue_id}/comments", _ISSUE),
                  ("POST", "issues/{issue_id}/comments", all_of("issue:write")),
                  ("GET", "hooks", _HOOKS), ("POST", "hooks", _HOOKS),
                  ("DELETE", "hooks/{uid}", _HOOKS))}},
    implies={"pullrequest": ("repository",), "pullrequest:write": ("pullrequest",
                                                                    "repository:write"),
             "repository:write": ("repository",), "issue:write": ("issue",),
             "account:write": ("account",), "project": ("repository",),
             "snippet:write": ("snippet",), "team:write": ("team",)},
    default={"GET": _REPO})  # the code endpoints (src, diff, commits, downloads)


def error(message: str, status: int) -> Response:
    return json_response({"type": "error", "error": {"message": message}}, status)


class RollingLimiter:
    """Requests per account in the last ``window`` seconds (Bitbucket's rolling hour)."""

    def __init__(self, limit: int, window: int, clock: Callable[[], float]) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._seen: dict[object, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _trim(self, key: object) -> deque[float]:
        seen, start = self._seen[key], self.clock() - self.window
        while seen and seen[0] <= start:
            seen.popleft()
        return seen

    def spend(self, key: object) -> bool:
        """Count one request; False (and nothing counted) when the window is full."""
        with self._lock:
            seen = self._trim(key)
            if len(seen) >= self.limit:
                return False
            seen.append(self.clock())
            return True

    def used(self, key: object) -> int:
        with self._lock:
            return len(self._trim(key))


def paginate(request: Request, items: list[Any], total: int, page: int,
             pagelen: int) -> dict[str, Any]:
    """The page envelope; ``items`` is this page's slice of ``total``."""
    body: dict[str, Any] = {"pagelen": pagelen, "size": total, "page": page, "values": items}
    args = request.args.to_dict(flat=False)
    if page * pagelen < total:
        body["next"] = f"{request.base_url}?{urlencode({**args, 'page': [page + 1]}, True)}"
    if page > 1:
        body["previous"] = f"{request.base_url}?{urlencode({**args, 'page': [page - 1]}, True)}"
    return body


def paging(request: Request, maximum: int = 100) -> tuple[int, int]:
    """``(page, pagelen)`` of a request, clamped to 1… and to ``maximum``."""
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    pagelen = min(max(request.args.get("pagelen", 10, type=int) or 10, 1), maximum)
    return page, pagelen


class BitbucketApi:
    """Authentication, metering and the account-level endpoints."""

    def __init__(self, authority: OAuthAuthority, limiter: RollingLimiter,
                 activity: BitbucketActivity) -> None:
        self.authority, self.limiter, self.activity = authority, limiter, activity
        self.retry_after: int | None = None  # a Retry-After on natural 429s, when set

    def routes(self) -> list[Route]:
        return [Route(f"{API}/user", ("GET",), self.user),
                Route(f"{API}/user/workspaces", ("GET",), self.workspaces),
                Route(f"{API}/repositories", ("GET",), self.gone),
                Route(f"{API}/workspaces", ("GET",), self.gone),
                Route(f"{API}/repositories/<workspace>", ("GET",), self.repositories),
                Route(f"{API}/repositories/<workspace>/<repo_slug>", ("GET",), self.repository)]

    def call(self, request: Request, produce: Callable[[TokenInfo, Site], Produced],
             metered: bool = True) -> Response:
        """Authenticate, meter (``/2.0/repositories/*``), then answer ``produce``'s JSON."""
        try:
            info = self.authority.authenticate(bearer_token(request))
        except OAuthError as e:
            return error(TOKEN_ERRORS.get(e.reason, TOKEN_ERRORS["unknown"]), 401)
        needed = SCOPES.missing(request, info.scopes)
        if needed is not None:
            return json_response({"type": "error", "error": {"message": LACKING, "detail": {
                "granted": sorted(info.scopes), "required": flat(needed)}}}, 403)
        if metered and not self.limiter.spend(info.account.id):
            response = error(RATE_LIMITED, 429)
            if self.retry_after is not None:
                response.headers["Retry-After"] = str(self.retry_after)
            return response
        result = produce(info, Site(request.host_url.rstrip("/")))
        return result if isinstance(result, Response) else json_response(*result)

    def gone(self, request: Request) -> Response:
        return error("CHANGE-2770 - Functionality has been deprecated", 410)

    def user(self, request: Request) -> Response:
        def produce(info: TokenInfo, site: Site) -> Produced:
            body = account_json(account_json_fields(info.account), site)
            return {**body, "created_on": when(1_300_000_000), "is_staff": False,
                    "location": None, "has_2fa_enabled": None}, 200
        return self.call(request, produce, metered=False)

    def workspaces(self, request: Request) -> Response:
        def produce(info: TokenInfo, site: Site) -> Produced:
            page, pagelen = paging(request)
            every = sorted(self.activity.workspaces.values(), key=lambda w: w["slug"])
            chunk = every[(page - 1) * pagelen:page * pagelen]
            return paginate(request, [workspace_access_json(w, site) for w in chunk],
                            len(every), page, pagelen), 200
        return self.call(request, produce, metered=False)

    def repositories(self, request: Request, workspace: str) -> Response:
        def produce(info: TokenInfo, site: Site) -> Produced:
            if workspace.lower() not in self.activity.workspaces:
                return error(f"No workspace with identifier '{workspace}'.", 404)
            page, pagelen = paging(request)
            every = sorted(self.activity.repositories(workspace), key=lambda r: r["slug"])
            chunk = every[(page - 1) * pagelen:page * pagelen]
            return paginate(request, [repository_json(r, site) for r in chunk], len(every),
                            page, pagelen), 200
        return self.call(request, produce)

    def repository(self, request: Request, workspace: str, repo_slug: str) -> Response:
        def produce(info: TokenInfo, site: Site) -> Produced:
            act = self.activity.find(workspace, repo_slug)
            if act is None:
                return error(f"Repository {workspace}/{repo_slug} not found", 404)
            return repository_json(act.repo, site), 200
        return self.call(request, produce)
