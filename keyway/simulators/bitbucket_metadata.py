"""Bitbucket Cloud's pull request and issue endpoints as the simulator serves them (under
``/2.0/repositories/{workspace}/{repo_slug}``), metered and paged like :mod:`.bitbucket_api`.

* ``GET /pullrequests`` - ``state`` (repeatable: OPEN*, MERGED, DECLINED, SUPERSEDED; only open
  ones when not given), at most 50 a page; without ``participants`` and ``reviewers`` unless
  the partial-response ``fields`` adds them (``+values.participants``; other ``fields``
  expressions are ignored here, not applied).
* ``GET /pullrequests/{pull_request_id}`` - with ``participants`` (``role``, ``approved``,
  ``state``, ``participated_on``) and ``reviewers``.
* ``GET|POST /pullrequests/{pull_request_id}/comments`` - oldest first unless sorted; POST
  ``{"content": {"raw": …}}`` → 201, by the token's account, bumping the pull request.
* ``GET /issues``, ``GET /issues/{issue_id}``, ``GET|POST /issues/{issue_id}/comments`` - 404
  ``Repository has no issue tracker.`` where ``has_issues`` is false.

Lists take BBQL ``q`` for updates (``updated_on > 2024-05-01T10:00:00+00:00``, also ``>=`` and
a quoted time; anything else → 400) and ``sort`` (``[-]updated_on``, ``[-]created_on``,
``[-]id``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from werkzeug.wrappers import Request, Response

from keyway.simulators.activity import Query, parse_time
from keyway.simulators.bitbucket_api import (
    BitbucketApi,
    Produced,
    error,
    paginate,
    paging,
)
from keyway.simulators.bitbucket_render import (
    API,
    Site,
    comment_json,
    issue_json,
    pull_request_json,
)
from keyway.simulators.bitbucket_seed import PR_STATES, RepoActivity
from keyway.simulators.oauth_model import TokenInfo
from keyway.simulators.server import Route

REPO = f"{API}/repositories/<workspace>/<repo_slug>"
_UPDATED = re.compile(r'^\s*updated_on\s*(>=|>)\s*"?([0-9T:.+\-Z]+)"?\s*$')
SORTS = {"updated_on": ("updated", False), "created_on": ("created", False),
         "id": ("created", False)}
NO_TRACKER = "Repository has no issue tracker."


def query_of(request: Request, default_sort: str, pagelen_max: int) -> Query | Response:
    """The ``q``/``sort``/``page`` of a list request as a :class:`Query`, or a 400."""
    since = None
    q = request.args.get("q")
    if q:
        match = _UPDATED.match(q)
        moment = parse_time(match.group(2)) if match else None
        if match is None or moment is None:
            return error(f"Invalid query: {q[:80]}", 400)
        exact = _epoch(match.group(2))
        since = math.floor(exact) + 1 if match.group(1) == ">" else math.ceil(exact)
    sort = request.args.get("sort", default_sort)
    order = SORTS.get(sort.lstrip("-"))
    if order is None:
        return error(f"Invalid sort field: {sort[:40]}", 400)
    page, pagelen = paging(request, pagelen_max)
    return Query("all", order[0], sort.startswith("-"), since, (page - 1) * pagelen, pagelen)


def _epoch(value: str) -> float:
    moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace(" ", "+"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


class BitbucketMetadataApi(BitbucketApi):
    """The endpoints a metadata fetcher syncs, plus the comment writes actions need."""

    def routes(self) -> list[Route]:
        pr, issue = f"{REPO}/pullrequests/<int:pull_request_id>", f"{REPO}/issues/<int:issue_id>"
        return [Route(f"{REPO}/pullrequests", ("GET",), self.pullrequests),
                Route(pr, ("GET",), self.pullrequest),
                Route(f"{pr}/comments", ("GET", "POST"), self.pr_comments),
                Route(f"{REPO}/issues", ("GET",), self.issues),
                Route(issue, ("GET",), self.issue),
                Route(f"{issue}/comments", ("GET", "POST"), self.issue_comments)]

    def _repo_call(self, request: Request, workspace: str, repo_slug: str,
                   produce: Callable[[RepoActivity, Site, TokenInfo], Produced],
                   tracker: bool = False) -> Response:
        def run(info: TokenInfo, site: Site) -> Produced:
            act = self.activity.find(workspace, repo_slug)
            if act is None:
                return error(f"Repository {workspace}/{repo_slug} not found", 404)
            if tracker and not act.repo["has_issues"]:
                return error(NO_TRACKER, 404)
            return produce(act, site, info)
        return self.call(request, run)

    def pullrequests(self, request: Request, workspace: str, repo_slug: str) -> Response:
        def produce(act: RepoActivity, site: Site, info: TokenInfo) -> Produced:
            states = frozenset(request.args.getlist("state") or ["OPEN"])
            if not states <= set(PR_STATES):
                return error("Invalid state", 400)
            query = query_of(request, "-id", 50)
            if isinstance(query, Response):
                return query
            items, total = self.activity.page(act, "pr", query, states)
            extra = {f.strip() for f in request.args.get("fields", "").split(",")}
            with_participants = bool(extra & {"+values.participants", "+values.participants.*"})
            return self._page(request, [pull_request_json(i, site, self.activity.participants(
                act, i["id"]) if with_participants else None) for i in items], total,
                query), 200
        return self._repo_call(request, workspace, repo_slug, produce)

    def pullrequest(self, request: Request, workspace: str, repo_slug: str,
                    pull_request_id: int) -> Response:
        def produce(act: RepoActivity, site: Site, info: TokenInfo) -> Produced:
            item = self.activity.thread(act, "pr", pull_request_id)
            if item is None:
                return error("Pull request not found", 404)
            return pull_request_json(item, site, self.activity.participants(
                act, pull_request_id)), 200
        return self._repo_call(request, workspace, repo_slug, produce)

    def issues(self, request: Request, workspace: str, repo_slug: str) -> Response:
        def produce(act: RepoActivity, site: Site, info: TokenInfo) -> Produced:
            query = query_of(request, "id", 50)
            if isinstance(query, Response):
                return query
            items, total = self.activity.page(act, "issue", query)
            return self._page(request, [issue_json(i, site) for i in items], total, query), 200
        return self._repo_call(request, workspace, repo_slug, produce, tracker=True)

    def issue(self, request: Request, workspace: str, repo_slug: str, issue_id: int) -> Response:
        def produce(act: RepoActivity, site: Site, info: TokenInfo) -> Produced:
            item = self.activity.thread(act, "issue", issue_id)
            return (issue_json(item, site), 200) if item else error("Issue not found", 404)
        return self._repo_call(request, workspace, repo_slug, produce, tracker=True)

    def pr_comments(self, request: Request, workspace: str, repo_slug: str,
                    pull_request_id: int) -> Response:
        return self._comments(request, workspace, repo_slug, "pr", pull_request_id)

    def issue_comments(self, request: Request, workspace: str, repo_slug: str,
                       issue_id: int) -> Response:
        return self._comments(request, workspace, repo_slug, "issue", issue_id)

    def _comments(self, request: Request, workspace: str, repo_slug: str, kind: str,
                  number: int) -> Response:
        def produce(act: RepoActivity, site: Site, info: TokenInfo) -> Produced:
            if request.method == "POST":
                return self._create(request, act, site, info, kind, number)
            query = query_of(request, "created_on", 100)
            if isinstance(query, Response):
                return query
            found = self.activity.comments(act, kind, number)
            if found is None:
                return error("Not found", 404)
            key = query.order
            found = [c for c in found if query.since is None or c["updated"] >= query.since]
            found.sort(key=lambda c: (c[key], c["id"]), reverse=query.descending)
            chunk = found[query.offset:query.offset + query.limit]
            return self._page(request, [comment_json(c, act.repo, site) for c in chunk],
                              len(found), query), 200
        return self._repo_call(request, workspace, repo_slug, produce, tracker=kind == "issue")

    def _create(self, request: Request, act: RepoActivity, site: Site, info: TokenInfo,
                kind: str, number: int) -> Produced:
        try:
            body = json.loads(request.get_data() or b"null")
        except ValueError:
            body = None
        content = body.get("content") if isinstance(body, dict) else None
        text = content.get("raw") if isinstance(content, dict) else None
        if not isinstance(text, str) or not text.strip():
            return error("content.raw: This field is required.", 400)
        comment = self.activity.add_comment(act, kind, number, info.account, text)
        if comment is None:
            return error("Not found", 404)
        return comment_json(comment, act.repo, site), 201

    @staticmethod
    def _page(request: Request, values: list[Any], total: int, query: Query) -> dict:
        return paginate(request, values, total, query.offset // query.limit + 1, query.limit)
