"""GitLab's metadata endpoints as the simulator serves them (under ``/api/v4``), metered and
conditional like :mod:`.gitlab_api`'s. ``{id}`` is numeric or a url-encoded ``group%2Fproject``.

* ``GET /projects/{id}``
* ``GET /projects/{id}/merge_requests`` - ``state`` (opened, closed, locked, merged, all*),
  ``order_by`` (created_at*, updated_at), ``sort`` (desc*, asc), ``updated_after`` (on or
  after).
* ``GET /projects/{id}/issues`` - ``state`` (opened, closed, all*), the same ordering and
  ``updated_after``; also keyset-paged (``pagination=keyset``, ordered by id, created_at or
  updated_at; ``Link: <...cursor=...>; rel="next"``, no totals), as gitlab.com pages issues.
* ``GET|POST /projects/{id}/merge_requests/{merge_request_iid}/notes`` and
  ``/issues/{issue_iid}/notes`` - ``sort`` (desc*), ``order_by`` (created_at*, updated_at);
  system notes included with ``system: true``. POST ``body``: 201, by the token's user.
* ``GET /projects/{id}/merge_requests/{merge_request_iid}/approvals``
* ``GET /projects/{id}/labels``

Offset pagination: ``page``/``per_page`` (20*, at most 100), ``X-Page``, ``X-Per-Page``,
``X-Next-Page``, ``X-Prev-Page``, ``Link``, and ``X-Total``/``X-Total-Pages`` (and a
``last`` link) only up to 10,000 items, as GitLab. :func:`rate_limit_fault` builds GitLab's
429 ``Retry later``.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable
from email.utils import formatdate
from typing import Any
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from keyway.simulators.activity import Item, Query, parse_time
from keyway.simulators.gitlab_api import API, GitLabApi, GitLabData, _per_page
from keyway.simulators.gitlab_data import GitLabActivity, ProjectActivity
from keyway.simulators.gitlab_render import (
    Site,
    approvals_json,
    issue_json,
    label_json,
    merge_request_json,
    note_json,
    project_full_json,
)
from keyway.simulators.oauth import OAuthAuthority
from keyway.simulators.oauth_model import OAuthError, TokenInfo
from keyway.simulators.ratelimit import RateLimiter
from keyway.simulators.server import Fault, Route
from keyway.simulators.wire import bearer_token, json_response, raw_base_url, request_params

GET = ("GET",)
STATES = {"merge_requests": ("opened", "closed", "locked", "merged", "all"),
          "issues": ("opened", "closed", "all")}
ORDER = {"updated_at": "updated"}  # anything else (created_at, id, title...) reads as created
UNCOUNTED = 10_000  # above this many items GitLab stops sending totals
Produced = tuple[Any, dict[str, str]] | Response
Producer = Callable[[ProjectActivity, Site, TokenInfo], Produced]
NOTEABLE = {"merge_requests": "MergeRequest", "issues": "Issue"}


def link(request: Request, **changes: object) -> str:
    """This request's URL (path as sent) with ``changes`` to its query."""
    return f"{raw_base_url(request)}?{urlencode({**request.args.to_dict(), **changes})}"


def not_found(what: str) -> Response:
    return json_response({"message": f"404 {what} Not Found"}, 404)


def offset_headers(request: Request, total: int) -> dict[str, str]:
    """GitLab's offset-pagination headers for a list of ``total`` items."""
    per_page, page = _per_page(request), max(request.args.get("page", 1, type=int) or 1, 1)
    pages, counted = max(math.ceil(total / per_page), 1), total <= UNCOUNTED
    nxt, prev = (page + 1 if page < pages else ""), (page - 1 if page > 1 else "")
    rels = ((prev, "prev"), (nxt, "next"), (1, "first"), (pages if counted else "", "last"))
    links = [f'<{link(request, page=n, per_page=per_page)}>; rel="{rel}"' for n, rel in rels
             if n]
    headers = {"X-Page": str(page), "X-Per-Page": str(per_page), "X-Next-Page": str(nxt),
               "X-Prev-Page": str(prev), "Link": ", ".join(links)}
    if counted:
        headers.update({"X-Total": str(total), "X-Total-Pages": str(pages)})
    return headers


def _cursor(raw: str | None) -> tuple[int, int] | None:
    if not raw:
        return None
    try:
        key, ident = json.loads(base64.urlsafe_b64decode(raw.encode()))
        return int(key), int(ident)
    except (binascii.Error, ValueError, TypeError):
        return None


class ProjectEndpoints(GitLabApi):
    """Shared plumbing of the per-project endpoints: find the project, page, answer."""

    def __init__(self, authority: OAuthAuthority, limiter: RateLimiter, data: GitLabData,
                 activity: GitLabActivity) -> None:
        super().__init__(authority, limiter, data)
        self.activity = activity

    def _project_call(self, request: Request, id: str, produce: Producer) -> Response:
        def run(info: TokenInfo) -> Produced:
            act = self.activity.find(id)
            if act is None:
                return not_found("Project")
            return produce(act, Site(request.host_url, act.project), info)
        return self._call(request, run)

    @staticmethod
    def _small(request: Request, items: list[Item], render: Callable[[Item], Any]) -> Produced:
        """One offset page of a short list held whole (labels, one thread's notes)."""
        per_page, page = _per_page(request), max(request.args.get("page", 1, type=int) or 1, 1)
        chunk = items[(page - 1) * per_page:page * per_page]
        return [render(item) for item in chunk], offset_headers(request, len(items))


class GitLabMetadataApi(ProjectEndpoints):
    """The endpoints a metadata fetcher syncs, plus the note write actions need."""

    def routes(self) -> list[Route]:
        project, mr = f"{API}/projects/<id>", "merge_requests/<int:merge_request_iid>"
        return [
            Route(project, GET, self.project),
            Route(f"{project}/merge_requests", GET, self.merge_requests),
            Route(f"{project}/issues", GET, self.issues),
            Route(f"{project}/{mr}/notes", ("GET", "POST"), self.merge_request_notes),
            Route(f"{project}/issues/<int:issue_iid>/notes", ("GET", "POST"),
                  self.issue_notes),
            Route(f"{project}/{mr}/approvals", GET, self.approvals),
            Route(f"{project}/labels", GET, self.labels),
        ]

    def project(self, request: Request, id: str) -> Response:
        def produce(act: ProjectActivity, site: Site, info: TokenInfo) -> Produced:
            return project_full_json(act.project, site.host, act.issues.count("opened")), {}
        return self._project_call(request, id, produce)

    def merge_requests(self, request: Request, id: str) -> Response:
        return self._threads(request, id, "merge_requests")

    def issues(self, request: Request, id: str) -> Response:
        return self._threads(request, id, "issues")

    def _threads(self, request: Request, id: str, collection: str) -> Response:
        args = request.args
        state = args.get("state", "all")
        render = merge_request_json if collection == "merge_requests" else issue_json

        def produce(act: ProjectActivity, site: Site, info: TokenInfo) -> Produced:
            if state not in STATES[collection]:
                return json_response({"error": "state does not have a valid value"}, 400)
            order = ORDER.get(args.get("order_by", "created_at"), "created")
            query = Query(state, order, args.get("sort", "desc") != "asc",
                          parse_time(args.get("updated_after")))
            if collection == "issues" and args.get("pagination") == "keyset":
                return self._keyset(request, act, site, query)
            per_page, page = _per_page(request), max(args.get("page", 1, type=int) or 1, 1)
            query = Query(query.bucket, order, query.descending, query.since,
                          (page - 1) * per_page, per_page)
            items, total = self.activity.page(act, collection, query)
            return [render(i, site) for i in items], offset_headers(request, total)
        return self._project_call(request, id, produce)

    def _keyset(self, request: Request, act: ProjectActivity, site: Site,
                query: Query) -> Produced:
        """Issues after the ``cursor``, and a ``rel="next"`` link while more remain."""
        per_page = _per_page(request)
        query = Query(query.bucket, query.order, query.descending, query.since, 0,
                      per_page + 1, _cursor(request.args.get("cursor")))
        items, _ = self.activity.page(act, "issues", query)
        chunk, headers = items[:per_page], {}
        if len(items) > per_page:
            last = chunk[-1]
            token = base64.urlsafe_b64encode(
                json.dumps([last[query.order], last["id"]]).encode()).decode()
            headers["Link"] = f'<{link(request, cursor=token)}>; rel="next"'
        return [issue_json(item, site) for item in chunk], headers

    def merge_request_notes(self, request: Request, id: str,
                            merge_request_iid: int) -> Response:
        return self._notes(request, id, "MergeRequest", merge_request_iid)

    def issue_notes(self, request: Request, id: str, issue_iid: int) -> Response:
        return self._notes(request, id, "Issue", issue_iid)

    def _notes(self, request: Request, id: str, kind: str, iid: int) -> Response:
        def produce(act: ProjectActivity, site: Site, info: TokenInfo) -> Produced:
            if request.method == "POST":
                return self._create_note(request, act, site, info, kind, iid)
            found = self.activity.notes(act, kind, iid, request.args.get("order_by", ""),
                                        request.args.get("sort", "desc") != "asc")
            if found is None:
                return not_found("Noteable")
            return self._small(request, found, lambda note: note_json(note, site))
        return self._project_call(request, id, produce)

    def _create_note(self, request: Request, act: ProjectActivity, site: Site,
                     info: TokenInfo, kind: str, iid: int) -> Response:
        text = request_params(request).get("body", "")
        if not text.strip():
            return json_response({"error": "body is missing"}, 400)
        note = self.activity.add_note(act, kind, iid, info.account, text)
        if note is None:
            return not_found("Noteable")
        return json_response(note_json(note, site), 201)

    def approvals(self, request: Request, id: str, merge_request_iid: int) -> Response:
        def produce(act: ProjectActivity, site: Site, info: TokenInfo) -> Produced:
            item = self.activity.thread(act, "MergeRequest", merge_request_iid)
            if item is None:
                return not_found("Merge Request")
            return approvals_json(item, self.activity.approvals(act, merge_request_iid),
                                  site), {}
        return self._project_call(request, id, produce)

    def labels(self, request: Request, id: str) -> Response:
        def produce(act: ProjectActivity, site: Site, info: TokenInfo) -> Produced:
            found = sorted(self.activity.labels(act), key=lambda label: label["name"])
            return self._small(request, found, label_json)
        return self._project_call(request, id, produce)


def rate_limit_fault(authority: OAuthAuthority, limiter: RateLimiter, status: int,
                     retry_after: int, count: int) -> Fault:
    """A queued fault answering GitLab's throttle: ``Retry later`` (text) with
    ``Retry-After`` and ``RateLimit-*`` showing nothing left until ``retry_after`` s from
    now. Only API paths; nothing is spent. GitLab has no secondary limit."""
    def respond(request: Request) -> Response:
        try:
            used = limiter.peek(authority.authenticate(bearer_token(request)).account.id).used
        except OAuthError:
            used = limiter.limit
        reset = int(limiter.clock()) + retry_after
        return Response("Retry later\n", status=status, content_type="text/plain", headers={
            "Retry-After": str(retry_after), "RateLimit-Name": "throttle_authenticated_api",
            "RateLimit-Limit": str(limiter.limit), "RateLimit-Observed": str(max(
                used, limiter.limit)), "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(reset), "RateLimit-ResetTime": formatdate(reset,
                                                                              usegmt=True)})
    return Fault(None, count, path_prefix=API + "/", respond=respond)
