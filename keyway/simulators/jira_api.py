"""Jira Cloud's REST API v3 behind the Atlassian API gateway, as the simulator serves it.

* ``GET /oauth/token/accessible-resources`` - the sites the token may use:
  ``[{"id": <cloud id>, "url", "name", "scopes", "avatarUrl"}]`` (empty without a Jira scope).
* Under ``/ex/jira/{cloud_id}/rest/api/3`` (another cloud id → 404):
  ``GET /myself`` (with ``timeZone``); ``GET /project/search`` (``startAt``/``maxResults``,
  ``{"values", "startAt", "maxResults", "total", "isLast", "nextPage"}``);
  ``GET /search/jql`` (``jql``, ``fields``, ``maxResults`` ≤ 100, ``nextPageToken``;
  ``{"issues", "nextPageToken"?, "isLast"}``, no total; without ``fields`` only ids; the
  ``comment`` field is a first page of at most :data:`EMBEDDED_COMMENTS` with its ``total``);
  ``POST /search/approximate-count`` (``{"jql": "project = <id|KEY> [AND updated >= …]"}`` →
  ``{"count"}``: the project's issues now, deleted and moved ones excluded; JQL outside that
  subset, or none, → 400);
  ``GET|POST /issue/{issueIdOrKey}/comment`` (``startAt``/``maxResults``, ``orderBy``
  ``created``/``-created``, ``expand=properties``; POST an ADF ``body`` and ``properties``:
  201, written by the token's user).

JQL: the subset keyway sends, ``project = <id|KEY> [AND updated >= "yyyy/MM/dd HH:mm"] ORDER BY
updated ASC|DESC``; dates are read in the token user's time zone, to the minute, as Jira does;
anything else is a 400 ``Error in the JQL Query``. A ``nextPageToken`` belongs to its query.

Scopes (:data:`SCOPES`): each operation needs what Atlassian's published REST v3 description
lists for it (its ``security`` and ``x-atlassian-oauth2-scopes``): the classic scopes, or every
granular scope of the granular alternative. A token without them → 401 ``{"code": 401,
"message": "Unauthorized; scope does not match"}`` as the API gateway answers, before anything
is read. ``accessible-resources`` is the OAuth service's, outside that description.

Rate limits: every answer spends one unit of the site's budget and carries
``X-RateLimit-Limit``/``-Remaining``/``-Reset`` (ISO 8601); with none left, or through
:func:`rate_limit_fault`, a 429 with ``Retry-After`` (seconds). Jira sends no ``ETag``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from werkzeug.wrappers import Request, Response

from keyway.simulators.jira_data import JiraData
from keyway.simulators.jira_render import (
    comment_json,
    comment_page,
    issue_json,
    project_json,
    user_json,
)
from keyway.simulators.oauth import OAuthAuthority
from keyway.simulators.oauth_model import OAuthError, TokenInfo
from keyway.simulators.ratelimit import Budget, RateLimiter
from keyway.simulators.scopes import ScopeTable
from keyway.simulators.server import Fault, Route
from keyway.simulators.wire import bearer_token, json_response

API = "/ex/jira/<cloud_id>/rest/api/3"
JQL = re.compile(r'^project\s*=\s*(\d+|[A-Z][A-Z0-9_]*)'
                 r'(?:\s+AND\s+updated\s*>=\s*"(\d{4}/\d\d/\d\d \d\d:\d\d)")?'
                 r'\s+ORDER\s+BY\s+updated\s+(ASC|DESC)\s*$', re.IGNORECASE)
COUNT_JQL = re.compile(r'^project\s*=\s*(\d+|[A-Z][A-Z0-9_]*)'
                       r'(?:\s+AND\s+updated\s*>=\s*"(\d{4}/\d\d/\d\d \d\d:\d\d)")?'
                       r'(?:\s+ORDER\s+BY\s+updated\s+(?:ASC|DESC))?\s*$', re.IGNORECASE)
Produced = dict[str, Any] | list[Any] | Response
# comments an issue's ``comment`` field carries in search results; Jira publishes no number
# (the field is a page with its ``total``): a client reads the rest from the comment list
EMBEDDED_COMMENTS = 20
_COMMENTS_READ = ("read:comment:jira", "read:comment.property:jira", "read:group:jira",
                  "read:project:jira", "read:project-role:jira", "read:user:jira",
                  "read:avatar:jira")
_WEBHOOK = ("read:jira-work", "manage:jira-webhook")
SCOPES = ScopeTable(strip="/ex/jira/{cloud_id}", rules={
    "GET /rest/api/3/myself": (frozenset({"read:jira-user"}), frozenset({
        "read:application-role:jira", "read:group:jira", "read:user:jira",
        "read:avatar:jira"})),
    "GET /rest/api/3/project/search": (frozenset({"read:jira-work"}), frozenset({
        "read:issue-type:jira", "read:project:jira", "read:project.property:jira",
        "read:user:jira", "read:application-role:jira", "read:avatar:jira", "read:group:jira",
        "read:issue-type-hierarchy:jira", "read:project-category:jira",
        "read:project-version:jira", "read:project.component:jira"})),
    "GET /rest/api/3/search/jql": (frozenset({"read:jira-work"}), frozenset({
        "read:issue-details:jira", "read:audit-log:jira", "read:avatar:jira",
        "read:field-configuration:jira", "read:issue-meta:jira"})),
    "POST /rest/api/3/search/approximate-count": (frozenset({"read:jira-work"}), frozenset({
        "read:issue-details:jira", "read:field.default-value:jira", "read:field.option:jira",
        "read:field:jira", "read:group:jira"})),
    "GET /rest/api/3/issue/{issueIdOrKey}/comment": (frozenset({"read:jira-work"}),
                                                     frozenset(_COMMENTS_READ)),
    "POST /rest/api/3/issue/{issueIdOrKey}/comment": (frozenset({"write:jira-work"}),
                                                      frozenset({*_COMMENTS_READ,
                                                                 "write:comment:jira"})),
    "GET /rest/api/3/webhook": (frozenset(_WEBHOOK),
                                frozenset({"read:webhook:jira", "read:jql:jira"})),
    "POST /rest/api/3/webhook": (frozenset(_WEBHOOK), frozenset({
        "read:field:jira", "read:project:jira", "write:webhook:jira"})),
    "DELETE /rest/api/3/webhook": (frozenset(_WEBHOOK), frozenset({"delete:webhook:jira"})),
    "PUT /rest/api/3/webhook/refresh": (frozenset(_WEBHOOK), frozenset({
        "write:webhook:jira", "read:webhook:jira"})),
    "GET /rest/api/3/webhook/failed": (frozenset(_WEBHOOK), frozenset({
        "read:issue-details:jira", "read:webhook:jira", "read:comment.property:jira",
        "read:group:jira", "read:issue-type:jira", "read:project-role:jira",
        "read:epic:jira-software"})),
})


def errors(status: int, *messages: str) -> Response:
    return json_response({"errorMessages": list(messages), "errors": {}}, status)


def _page(request: Request, default: int, cap: int) -> tuple[int, int]:
    start = max(request.args.get("startAt", 0, type=int) or 0, 0)
    size = request.args.get("maxResults", default, type=int) or default
    return start, min(max(size, 1), cap)


def _reset(budget: Budget) -> str:
    return datetime.fromtimestamp(budget.reset, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rate_headers(budget: Budget) -> dict[str, str]:
    return {"X-RateLimit-Limit": str(budget.limit),
            "X-RateLimit-Remaining": str(budget.remaining), "X-RateLimit-Reset": _reset(budget)}


def throttled(budget: Budget, retry_after: int) -> Response:
    response = errors(429, "Rate limit exceeded.")
    response.headers.update({**rate_headers(budget), "X-RateLimit-Remaining": "0",
                             "Retry-After": str(retry_after), "RateLimit-Reason":
                             "jira-quota-tenant-based"})
    return response


def rate_limit_fault(limiter: RateLimiter, retry_after: int, count: int) -> Fault:
    """The next ``count`` API answers: Jira's 429 with ``Retry-After``; nothing is spent."""
    def respond(request: Request) -> Response:
        budget = limiter.peek("site")
        return throttled(Budget(budget.limit, 0, budget.limit,
                                int(limiter.clock()) + retry_after), retry_after)
    return Fault(None, count, path_prefix="/ex/jira/", respond=respond)


class JiraApi:
    """The gateway's endpoints over :class:`JiraData` (see the module docstring)."""

    def __init__(self, authority: OAuthAuthority, limiter: RateLimiter, data: JiraData,
                 zone: Callable[[], str]) -> None:
        self.authority, self.limiter, self.data, self.zone = authority, limiter, data, zone

    def routes(self) -> list[Route]:
        return [Route("/oauth/token/accessible-resources", ("GET",), self.resources),
                Route(f"{API}/myself", ("GET",), self.myself),
                Route(f"{API}/project/search", ("GET",), self.projects),
                Route(f"{API}/search/jql", ("GET",), self.search),
                Route(f"{API}/search/approximate-count", ("POST",), self.count),
                Route(f"{API}/issue/<issueIdOrKey>/comment", ("GET", "POST"), self.comments)]

    # ---- plumbing -------------------------------------------------------------------------
    def _call(self, request: Request, cloud_id: str | None,
              produce: Callable[[TokenInfo], Produced]) -> Response:
        try:
            info = self.authority.authenticate(bearer_token(request))
        except OAuthError:
            return json_response({"code": 401, "message": "Unauthorized"}, 401)
        if SCOPES.missing(request, info.scopes) is not None:
            return json_response({"code": 401, "message": "Unauthorized; scope does not match"},
                                 401)
        if cloud_id is not None and cloud_id != self.data.cloud_id:
            return errors(404, "Site not found.")
        budget = self.limiter.peek("site")
        if budget.remaining <= 0:
            return throttled(budget, max(budget.reset - int(self.limiter.clock()), 1))
        result = produce(info)
        response = result if isinstance(result, Response) else json_response(result)
        response.headers.update(rate_headers(self.limiter.spend("site")))
        return response

    @property
    def site(self) -> str:
        return self.data.site_url

    # ---- endpoints ------------------------------------------------------------------------
    def resources(self, request: Request) -> Response:
        def produce(info: TokenInfo) -> Produced:
            scopes = [s for s in info.scopes if "jira" in s]
            return [{"id": self.data.cloud_id, "url": self.site, "name": self.data.site_name,
                     "scopes": scopes, "avatarUrl": f"{self.site}/avatar.png"}] if scopes else []
        return self._call(request, None, produce)

    def myself(self, request: Request, cloud_id: str) -> Response:
        def produce(info: TokenInfo) -> Produced:
            user = {"accountId": info.account.login, "displayName": info.account.name}
            return {**user_json(user, self.site, self.zone()), "locale": "en_US"}
        return self._call(request, cloud_id, produce)

    def projects(self, request: Request, cloud_id: str) -> Response:
        def produce(info: TokenInfo) -> Produced:
            start, size = _page(request, 50, 100)
            with self.data.lock:
                ordered = sorted(self.data.projects.values(), key=lambda p: p.key)
            chunk = ordered[start:start + size]
            last = start + len(chunk) >= len(ordered)
            found = {"self": request.url, "maxResults": size, "startAt": start,
                     "total": len(ordered), "isLast": last,
                     "values": [project_json(p, self.site) for p in chunk]}
            if not last:
                found["nextPage"] = (f"{request.base_url}?startAt={start + size}"
                                     f"&maxResults={size}")
            return found
        return self._call(request, cloud_id, produce)

    def search(self, request: Request, cloud_id: str) -> Response:
        def produce(info: TokenInfo) -> Produced:
            jql = request.args.get("jql", "")
            match = JQL.match(jql.strip())
            if match is None:
                return errors(400, "Error in the JQL Query: keyway's simulator understands "
                              "project = … [AND updated >= \"…\"] ORDER BY updated.")
            project = self.data.project(match.group(1))
            if project is None:
                return errors(400, f"The value '{match.group(1)}' does not exist for the "
                              "field 'project'.")
            since = self._since(match.group(2))
            items = self.data.issues(project.id, since, match.group(3).upper() == "DESC")
            digest = hashlib.sha256(jql.encode()).hexdigest()[:12]
            start = self._offset(request.args.get("nextPageToken"), digest)
            if start is None:
                return errors(400, "The nextPageToken is invalid or expired.")
            size = min(max(request.args.get("maxResults", 50, type=int) or 50, 1), 100)
            fields = {f.strip() for f in request.args.get("fields", "").split(",") if f.strip()}
            chunk = items[start:start + size]
            embed = bool(fields & {"comment", "*all"})
            found: dict[str, Any] = {"issues": [issue_json(
                i, project, self.site, self.zone(), fields, comment_page(
                    i, self.data.comments_of(i, False), self.site, self.zone(),
                    EMBEDDED_COMMENTS) if embed else None) for i in chunk]}
            if start + size < len(items):
                token = f"{start + size}:{digest}".encode()
                found["nextPageToken"] = base64.urlsafe_b64encode(token).decode()
            found["isLast"] = start + size >= len(items)
            return found
        return self._call(request, cloud_id, produce)

    def count(self, request: Request, cloud_id: str) -> Response:
        def produce(info: TokenInfo) -> Produced:
            body = request.get_json(silent=True)
            jql = body.get("jql") if isinstance(body, dict) else None
            match = COUNT_JQL.match(jql.strip()) if isinstance(jql, str) else None
            if match is None:
                return errors(400, "Error in the JQL Query: keyway's simulator counts "
                              "project = … [AND updated >= \"…\"].")
            project = self.data.project(match.group(1))
            if project is None:
                return errors(400, f"The value '{match.group(1)}' does not exist for the "
                              "field 'project'.")
            return {"count": len(self.data.issues(project.id, self._since(match.group(2)),
                                                  False))}
        return self._call(request, cloud_id, produce)

    def _since(self, text: str | None) -> int | None:
        if text is None:
            return None
        local = datetime.strptime(text, "%Y/%m/%d %H:%M").replace(tzinfo=ZoneInfo(self.zone()))
        return int(local.timestamp() * 1000)

    @staticmethod
    def _offset(token: str | None, digest: str) -> int | None:
        if not token:
            return 0
        try:
            offset, _, owner = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        except ValueError:
            return None
        return int(offset) if offset.isdigit() and owner == digest else None

    def comments(self, request: Request, cloud_id: str, issueIdOrKey: str) -> Response:  # noqa: N803
        def produce(info: TokenInfo) -> Produced:
            issue = self.data.issue(issueIdOrKey)
            if issue is None:
                return errors(404, "Issue does not exist or you do not have permission to "
                              "see it.")
            if request.method == "POST":
                return self._post(request, info, issue)
            start, size = _page(request, 50, 100)
            found = self.data.comments_of(issue, request.args.get("orderBy") == "-created")
            properties = "properties" in request.args.get("expand", "").split(",")
            return {"startAt": start, "maxResults": size, "total": len(found),
                    "comments": [comment_json(c, self.site, self.zone(), properties)
                                 for c in found[start:start + size]]}
        return self._call(request, cloud_id, produce)

    def _post(self, request: Request, info: TokenInfo, issue: dict[str, Any]) -> Produced:
        payload = request.get_json(silent=True)
        body = payload.get("body") if isinstance(payload, dict) else None
        if not (isinstance(body, dict) and body.get("type") == "doc" and body.get("content")):
            return json_response({"errorMessages": [], "errors": {
                "comment": "Comment body can not be empty!"}}, 400)
        properties = payload.get("properties") or []
        if not isinstance(properties, list):
            return errors(400, "properties must be a list")
        author = {"accountId": info.account.login, "displayName": info.account.name}
        comment = self.data.add_comment(issue, author, body, properties)
        return json_response(comment_json(comment, self.site, self.zone(), False), 201)
