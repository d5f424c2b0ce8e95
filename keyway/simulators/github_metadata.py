"""GitHub's metadata endpoints as the simulator serves them (under ``/api/v3``), metered,
conditional and paged exactly like :mod:`.github_api`'s:

* ``GET /repos/{owner}/{repo}``
* ``GET /repos/{owner}/{repo}/pulls`` - ``state`` (open*, closed, all), ``sort`` (created*,
  updated; popularity and long-running read as created), ``direction`` (desc*, asc). No
  ``since``: GitHub has none for pull requests.
* ``GET /repos/{owner}/{repo}/issues`` - ``state``, ``sort``, ``direction`` as above plus
  ``since`` (updated at or after); pull requests are listed too, with a ``pull_request`` key.
* ``GET /repos/{owner}/{repo}/issues/comments`` and ``.../pulls/comments`` (review comments) -
  ascending ids by default; ``sort`` (created, updated) with ``direction`` (desc*), ``since``.
* ``GET /repos/{owner}/{repo}/issues/{issue_number}/comments`` (``since``) and ``POST``
  (``{"body"}``: 201, authored by the token's user, bumps the thread's ``updated_at``).
* ``GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews`` (chronological),
  ``GET /repos/{owner}/{repo}/labels``.

Lists page with ``per_page`` (30*, at most 100) and ``page`` and a ``Link`` header; a page
costs O(page) (see :mod:`.activity`). An unknown repository or thread is 404.
:func:`rate_limit_fault` builds GitHub's primary and secondary rate-limit answers.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from keyway.simulators import github_tokens as tokens
from keyway.simulators.activity import Item, Query, parse_time
from keyway.simulators.github_api import (
    API,
    COMMON_HEADERS,
    DOCS,
    GitHubApi,
    GitHubData,
    _error,
)
from keyway.simulators.github_content import (
    LIMITS_DOCS,
    SECONDARY,
    SECONDARY_DOCS,
    ContentLimits,
    secondary_limit_answer,
)
from keyway.simulators.github_data import GitHubActivity, RepoActivity
from keyway.simulators.github_render import (
    Site,
    comment_json,
    issue_json,
    label_json,
    pull_json,
    repo_view,
    repository_json,
    review_comment_json,
    review_json,
)
from keyway.simulators.oauth import OAuthAuthority
from keyway.simulators.oauth_model import OAuthError, TokenInfo
from keyway.simulators.ratelimit import RateLimiter
from keyway.simulators.server import Fault, Route
from keyway.simulators.wire import bearer_token, json_response, raw_base_url

GET = ("GET",)
STATES = ("open", "closed", "all")
Produced = tuple[Any, dict[str, str]] | Response
Producer = Callable[[RepoActivity, Site, TokenInfo], Produced]


def page_window(request: Request) -> tuple[int, int]:
    """``(page, per_page)`` from the query: per_page 30 by default, clamped to 1..100."""
    per_page = min(max(request.args.get("per_page", 30, type=int) or 30, 1), 100)
    return max(request.args.get("page", 1, type=int) or 1, 1), per_page


def link_header(request: Request, total: int) -> dict[str, str]:
    """GitHub's ``Link`` (prev, next, last, first) for a list of ``total`` items."""
    page, per_page = page_window(request)
    last = max(math.ceil(total / per_page), 1)

    def link(number: int, rel: str) -> str:
        query = urlencode({**request.args.to_dict(), "per_page": per_page, "page": number})
        return f'<{raw_base_url(request)}?{query}>; rel="{rel}"'

    links = [link(page - 1, "prev")] if page > 1 else []
    links += [link(page + 1, "next"), link(last, "last")] if page < last else []
    links += [link(1, "first")] if page > 1 else []
    return {"Link": ", ".join(links)} if links else {}


class RepoEndpoints(GitHubApi):
    """Shared plumbing of the per-repository endpoints: find the repository, page, answer."""

    def __init__(self, authority: OAuthAuthority, limiter: RateLimiter, data: GitHubData,
                 activity: GitHubActivity) -> None:
        super().__init__(authority, limiter, data)
        self.activity = activity

    def _repo_call(self, request: Request, owner: str, repo: str,
                   produce: Producer) -> Response:
        def run(info: TokenInfo) -> Produced:
            act = self.activity.find(owner, repo)
            if act is None:
                return _error(404, "Not Found", f"{DOCS}/repos/repos#get-a-repository")
            refused = tokens.refusal(self.caller(request), tokens.endpoint(request), act.repo)
            return refused or produce(act, Site(request.host_url, act.repo), info)
        return self._call(request, run, check=False)

    @staticmethod
    def _query(request: Request, order: str, descending: bool, bucket: str = "all",
               since: int | None = None) -> Query:
        page, per_page = page_window(request)
        return Query(bucket, order, descending, since, (page - 1) * per_page, per_page)

    @staticmethod
    def _listing(request: Request, payload: list[Any], total: int) -> Produced:
        return payload, {**COMMON_HEADERS, **link_header(request, total)}

    def _small(self, request: Request, items: list[Item],
               render: Callable[[Item], Any]) -> Produced:
        """One page of a short list held whole (labels, reviews, one thread's comments)."""
        page, per_page = page_window(request)
        chunk = items[(page - 1) * per_page:page * per_page]
        return self._listing(request, [render(item) for item in chunk], len(items))


def _thread_order(request: Request) -> tuple[str, bool]:
    """``sort``/``direction`` of pulls and issues: created, newest first by default."""
    order = "updated" if request.args.get("sort") == "updated" else "created"
    return order, request.args.get("direction", "desc") != "asc"


def _comment_order(request: Request) -> tuple[str, bool]:
    """Comment lists: ascending ids unless ``sort`` is given (then ``direction``, desc)."""
    if "sort" not in request.args:
        return "created", False
    order = "updated" if request.args["sort"] == "updated" else "created"
    return order, request.args.get("direction", "desc") != "asc"


def _invalid(field: str, resource: str, code: str = "invalid") -> Response:
    return json_response({"message": "Validation Failed", "errors": [
        {"resource": resource, "field": field, "code": code}],
        "documentation_url": DOCS, "status": "422"}, 422)


class GitHubMetadataApi(RepoEndpoints):
    """The endpoints a metadata fetcher syncs, plus the comment write actions need (limited
    by ``content``, :mod:`.github_content`, when set)."""

    content: ContentLimits | None = None

    def routes(self) -> list[Route]:
        repo = f"{API}/repos/<owner>/<repo>"
        return [
            Route(repo, GET, self.repository),
            Route(f"{repo}/pulls", GET, self.pulls),
            Route(f"{repo}/pulls/comments", GET, self.review_comments),
            Route(f"{repo}/pulls/<int:pull_number>/reviews", GET, self.reviews),
            Route(f"{repo}/issues", GET, self.issues),
            Route(f"{repo}/issues/comments", GET, self.issue_comments),
            Route(f"{repo}/issues/<int:issue_number>/comments", ("GET", "POST"),
                  self.thread_comments),
            Route(f"{repo}/labels", GET, self.labels),
        ]

    def repository(self, request: Request, owner: str, repo: str) -> Response:
        def produce(act: RepoActivity, site: Site, info: TokenInfo) -> Produced:
            return (repository_json(act.repo, site.host, act.threads.count("open")),
                    dict(COMMON_HEADERS))
        return self._repo_call(request, owner, repo, produce)

    def _threads(self, request: Request, owner: str, repo: str, collection: str,
                 since: int | None) -> Response:
        state = request.args.get("state", "open")

        def produce(act: RepoActivity, site: Site, info: TokenInfo) -> Produced:
            if state not in STATES:
                return _invalid("state", "Issue")
            query = self._query(request, *_thread_order(request), state, since)
            items, total = self.activity.page(act, collection, query)
            if collection == "pulls":
                view = self._repo_view(act, site)
                return self._listing(request, [pull_json(i, site, view) for i in items], total)
            return self._listing(request, [issue_json(i, site) for i in items], total)
        return self._repo_call(request, owner, repo, produce)

    @staticmethod
    def _repo_view(act: RepoActivity, site: Site) -> dict[str, Any]:
        """A pull request's ``head.repo``/``base.repo`` (:func:`.github_render.repo_view`)."""
        return repo_view(act.repo, site.host, act.threads.count("open"))

    def pulls(self, request: Request, owner: str, repo: str) -> Response:
        return self._threads(request, owner, repo, "pulls", None)

    def issues(self, request: Request, owner: str, repo: str) -> Response:
        return self._threads(request, owner, repo, "threads",
                             parse_time(request.args.get("since")))

    def _comments(self, request: Request, owner: str, repo: str, collection: str,
                  render: Callable[[Item, Site], Any]) -> Response:
        def produce(act: RepoActivity, site: Site, info: TokenInfo) -> Produced:
            query = self._query(request, *_comment_order(request),
                                since=parse_time(request.args.get("since")))
            items, total = self.activity.page(act, collection, query)
            return self._listing(request, [render(item, site) for item in items], total)
        return self._repo_call(request, owner, repo, produce)

    def issue_comments(self, request: Request, owner: str, repo: str) -> Response:
        return self._comments(request, owner, repo, "comments", comment_json)

    def review_comments(self, request: Request, owner: str, repo: str) -> Response:
        return self._comments(request, owner, repo, "review_comments", review_comment_json)

    def reviews(self, request: Request, owner: str, repo: str, pull_number: int) -> Response:
        def produce(act: RepoActivity, site: Site, info: TokenInfo) -> Produced:
            found = self.activity.listed(act, "reviews", pull_number)
            if found is None:
                return _error(404, "Not Found", f"{DOCS}/pulls/reviews")
            return self._small(request, found, lambda item: review_json(item, site))
        return self._repo_call(request, owner, repo, produce)

    def labels(self, request: Request, owner: str, repo: str) -> Response:
        def produce(act: RepoActivity, site: Site, info: TokenInfo) -> Produced:
            found = self.activity.listed(act, "labels") or []
            return self._small(request, found, lambda item: label_json(item, site))
        return self._repo_call(request, owner, repo, produce)

    def thread_comments(self, request: Request, owner: str, repo: str,
                        issue_number: int) -> Response:
        def produce(act: RepoActivity, site: Site, info: TokenInfo) -> Produced:
            if request.method == "POST":
                return self._create_comment(request, act, site, info, issue_number)
            found = self.activity.listed(act, "comments", issue_number,
                                         parse_time(request.args.get("since")))
            if found is None:
                return _error(404, "Not Found", f"{DOCS}/issues/comments")
            return self._small(request, found, lambda item: comment_json(item, site))
        return self._repo_call(request, owner, repo, produce)

    def _create_comment(self, request: Request, act: RepoActivity, site: Site,
                        info: TokenInfo, number: int) -> Response:
        payload = request.get_json(force=True, silent=True)
        text = payload.get("body") if isinstance(payload, dict) else None
        if not isinstance(text, str) or not text.strip():
            return _invalid("body", "IssueComment", "missing_field")
        wait = self.content.admit(info.account.id) if self.content is not None else None
        if wait is not None:  # GitHub's secondary limit on content creation
            return secondary_limit_answer(wait, self._rate_headers(
                self.limiter.peek(info.account.id)))
        item = self.activity.add_comment(act, number, info.account, text)
        if item is None:
            return _error(404, "Not Found", f"{DOCS}/issues/comments#create-an-issue-comment")
        body = comment_json(item, site)
        return json_response(body, 201, {**COMMON_HEADERS, "Location": body["url"]})


def rate_limit_fault(authority: OAuthAuthority, limiter: RateLimiter, status: int,
                     retry_after: int, count: int, secondary: bool) -> Fault:
    """A queued fault answering GitHub's rate-limit refusal: the secondary one (``You have
    exceeded a secondary rate limit``, the caller's real, healthy ``X-RateLimit-*``) or the
    primary one (``API rate limit exceeded``, remaining 0, reset in ``retry_after`` s); both
    with ``Retry-After``. Only API paths; nothing is spent."""
    def respond(request: Request) -> Response:
        try:
            info = authority.authenticate(bearer_token(request, ("bearer", "token")))
        except OAuthError:
            return _error(401, "Bad credentials")
        budget, request_id = limiter.peek(info.account.id), secrets.token_hex(8).upper()
        headers = {**COMMON_HEADERS, "Retry-After": str(retry_after),
                   "X-GitHub-Request-Id": request_id,
                   **GitHubApi._rate_headers(budget)}
        if secondary:
            message, docs = SECONDARY.format(request_id), SECONDARY_DOCS
        else:
            message, docs = f"API rate limit exceeded for user ID {info.account.id}.", LIMITS_DOCS
            reset = int(limiter.clock()) + retry_after
            headers.update({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset),
                            "X-RateLimit-Used": str(budget.limit)})
        return json_response({"message": message, "documentation_url": docs,
                              "status": str(status)}, status, headers)
    return Fault(None, count, path_prefix=API + "/", respond=respond)
