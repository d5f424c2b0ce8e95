"""``POST /graphql`` (``/api/graphql`` on the Enterprise Server layout, ``/api/v3/graphql``
too): GitHub's GraphQL API as far as the simulator's clients need it, metered in points.

keyway's documents (``nodes(ids:)`` / ``node(id:)``, parsed and resolved field by field) are
answered by :mod:`keyway.simulators.github_graphql_nodes`. For a peer connector (benchmarks)
it also answers the pull-request reviews documents ``airbyte-source-github`` 2.x sends —

* the listing: ``repository(owner, name) { pullRequests(first, after, orderBy: UPDATED_AT ASC)
  { pageInfo nodes { number url reviews(first) { pageInfo nodes {…} } } } }``;
* the drill-down: ``repository(owner, name) { pullRequest(number: N) { reviews(first, after)
  { pageInfo nodes {…} } } }``.

Fields are answered under the aliases those documents use (``node_id: id``, ``id:
databaseId``, ``html_url: url``…), matched by pattern rather than parsed.

Points: GraphQL has its own budget on GitHub (5,000 points an hour per user), separate from
REST's. Every query spends its cost (:func:`~.github_graphql_nodes.cost`; at least 1) from a
meter of its own, and every answer carries ``X-RateLimit-Limit/Remaining/Reset/Used`` and
``X-RateLimit-Resource: graphql``. A query that costs more than what remains is answered as
GitHub does: HTTP 200, ``{"errors": [{"type": "RATE_LIMITED", …}]}``, remaining 0, nothing
spent. Which pull requests a token may read follows :mod:`.github_tokens` (a repository the
token does not see: ``NOT_FOUND``; an installation without ``pull_requests``: ``FORBIDDEN``).
Cursors are opaque base64 offsets. :attr:`GitHubGraphQL.queries` keeps each query's
operation name and variables (tests read which ids were asked for).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from werkzeug.wrappers import Request, Response

from keyway.simulators import github_tokens as tokens
from keyway.simulators.activity import iso
from keyway.simulators.github_api import API, DOCS, node_id
from keyway.simulators.github_data import GitHubActivity
from keyway.simulators.github_graphql_nodes import NodeQuery, cost, cursor, offset
from keyway.simulators.oauth import OAuthAuthority
from keyway.simulators.oauth_model import OAuthError
from keyway.simulators.ratelimit import Budget, RateLimiter
from keyway.simulators.server import Route
from keyway.simulators.wire import bearer_token, json_response
from shared.providers.graphql import DocumentRefused, parse

_DRILL = re.compile(r"pullRequest\(number:\s*(\d+)\)")
GRAPHQL_DOCS = "https://docs.github.com/graphql"


def _page(items: list, first: int, after: str | None) -> tuple[list, dict[str, Any]]:
    start = offset(after)
    chunk = items[start:start + first]
    end = start + len(chunk)
    return chunk, {"hasNextPage": end < len(items), "endCursor": cursor(end) if chunk else None}


def _headers(budget: Budget) -> dict[str, str]:
    return {"X-RateLimit-Limit": str(budget.limit),
            "X-RateLimit-Remaining": str(budget.remaining),
            "X-RateLimit-Reset": str(budget.reset), "X-RateLimit-Used": str(budget.used),
            "X-RateLimit-Resource": "graphql"}


class GitHubGraphQL:
    def __init__(self, authority: OAuthAuthority, activity: GitHubActivity,
                 limiter: RateLimiter) -> None:
        self.authority, self.activity, self.limiter = authority, activity, limiter
        self.queries: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def routes(self) -> list[Route]:
        return [Route(f"{API}/graphql", ("POST",), self.graphql),
                Route("/api/graphql", ("POST",), self.graphql)]

    def graphql(self, request: Request) -> Response:
        token = bearer_token(request, ("bearer", "token")) or ""
        try:
            info = self.authority.authenticate(token)
        except OAuthError:
            return json_response({"message": "Bad credentials", "documentation_url": DOCS},
                                 401)
        try:
            body = json.loads(request.get_data() or b"{}")
            query, variables = body["query"], body.get("variables") or {}
            if not isinstance(query, str) or not isinstance(variables, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return json_response({"message": "Problems parsing JSON",
                                  "documentation_url": GRAPHQL_DOCS}, 400)
        account, who = info.account, tokens.caller(token, info, self.activity.data.installation_of)
        if "repository(" in query:  # the peer's documents
            points, answer = self._peer_cost(query, variables), lambda rate: self._peer(
                request, query, variables, who)
        else:
            try:
                operation = parse(query)
            except DocumentRefused as e:
                return json_response({"errors": [{"message": f"Parse error: {e.args[0]}"}]})
            points = cost(operation, variables)
            with self._lock:
                self.queries.append({"operation": operation.name, "variables": variables})
            answer = lambda rate: json_response(NodeQuery(  # noqa: E731
                self.activity, request.host_url, variables, rate, who).answer(operation))
        response = self._metered(account.id, points, answer)
        response.headers.update(who.headers(tokens.GRAPHQL))
        return response

    def _metered(self, key: object, points: int,
                 answer: Callable[[dict[str, Any]], Response]) -> Response:
        """Spend ``points`` and answer, or GitHub's rate-limited answer when they are not
        left (nothing spent)."""
        budget = self.limiter.peek(key)
        if budget.remaining < points:
            response = json_response({"errors": [{
                "type": "RATE_LIMITED",
                "message": f"API rate limit exceeded for user ID {key}."}]})
            response.headers.update({**_headers(budget), "X-RateLimit-Remaining": "0"})
            return response
        budget = self.limiter.spend(key, points)
        reset = datetime.fromtimestamp(budget.reset, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        response = answer({"cost": points, "remaining": budget.remaining, "resetAt": reset,
                           "limit": budget.limit, "used": budget.used, "nodeCount": 0})
        response.headers.update(_headers(budget))
        return response

    @staticmethod
    def _peer_cost(query: str, variables: dict[str, Any]) -> int:
        """The listing asks for ``first`` pull requests with ``first`` reviews each: 1 + first
        requests; the drill-down one. Divided by 100, rounded, at least 1 (GitHub's rule)."""
        first = variables.get("first", 10)
        first = min(max(first, 0), 100) if isinstance(first, int) else 10
        return max(1, round((1 + first if "pullRequests(" in query else 1) / 100))

    def _peer(self, request: Request, query: str, variables: dict[str, Any],
              who: tokens.Caller) -> Response:
        try:
            owner, name = variables["owner"], variables["name"]
            first = max(1, min(100, int(variables.get("first", 10))))
        except (ValueError, KeyError, TypeError):
            return json_response({"errors": [{"message": "unsupported query"}]})
        act = self.activity.find(owner, name)
        if act is None or not who.sees(act.repo):
            return json_response({"data": {"repository": None}, "errors": [
                {"type": "NOT_FOUND", "message": f"Could not resolve {owner}/{name}"}]})
        base = f"{request.host_url.rstrip('/')}/{act.name}"
        with self.activity.lock:
            pulls = sorted(act.pulls.items.values(), key=lambda p: (p["updated"], p["number"]))
            drill = _DRILL.search(query)
            repo: dict[str, Any] = {"name": act.repo["name"],
                                    "owner": {"login": act.name.split("/")[0]}}
            if drill:
                number = int(drill.group(1))
                pull = next((p for p in pulls if p["number"] == number), None)
                repo["pullRequest"] = None if pull is None else self._pull(
                    pull, act, base, first, variables.get("after"))
            elif "pullRequests(" in query:
                chunk, info = _page(pulls, first, variables.get("after"))
                repo["pullRequests"] = {"pageInfo": info, "nodes": [
                    self._pull(p, act, base, first, None) for p in chunk]}
            else:
                return json_response({"errors": [{"message": "unsupported query"}]}, 400)
        return json_response({"data": {"repository": repo}})

    def _pull(self, pull: dict, act, base: str, first: int, after: str | None) -> dict:
        reviews = sorted(act.reviews.get(pull["number"], []), key=lambda r: r["id"])
        chunk, info = _page(reviews, first, after)
        return {"number": pull["number"], "url": f"{base}/pull/{pull['number']}",
                "reviews": {"pageInfo": info, "nodes": [
                    self._review(r, base) for r in chunk]}}

    @staticmethod
    def _review(item: dict, base: str) -> dict:
        user = item.get("user") or {}
        login = user.get("login", "ghost")
        return {"node_id": node_id("017", "PullRequestReview", item["id"]), "id": item["id"],
                "body": item.get("body", ""), "state": item.get("state", "COMMENTED"),
                "html_url": f"{base}/pull/{item['number']}#pullrequestreview-{item['id']}",
                "author_association": "CONTRIBUTOR", "submitted_at": iso(item["created"]),
                "created_at": iso(item["created"]), "updated_at": iso(item["created"]),
                "commit": {"oid": "0" * 40},
                "user": {"type": "User", "node_id": node_id("04", "User", user.get("id", 0)),
                         "id": user.get("id", 0), "login": login,
                         "avatar_url": f"https://avatars.example/u/{user.get('id', 0)}",
                         "html_url": f"https://github.example/{login}", "site_admin": False}}
