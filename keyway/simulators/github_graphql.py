"""``POST /graphql`` for a peer connector (benchmarks): just enough of GitHub's GraphQL API to
answer the pull-request reviews documents ``airbyte-source-github`` 2.x sends —

* the listing: ``repository(owner, name) { pullRequests(first, after, orderBy: UPDATED_AT ASC)
  { pageInfo nodes { number url reviews(first) { pageInfo nodes {…} } } } }``;
* the drill-down: ``repository(owner, name) { pullRequest(number: N) { reviews(first, after)
  { pageInfo nodes {…} } } }``.

Fields are answered under the aliases those documents use (``node_id: id``, ``id:
databaseId``, ``html_url: url``…). Cursors are opaque base64 offsets. GraphQL has its own
points budget on GitHub; this stand-in meters nothing (count requests from the log).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from werkzeug.wrappers import Request, Response

from keyway.simulators.activity import iso
from keyway.simulators.github_api import API, node_id
from keyway.simulators.github_data import GitHubActivity
from keyway.simulators.oauth import OAuthAuthority
from keyway.simulators.oauth_model import OAuthError
from keyway.simulators.server import Route
from keyway.simulators.wire import bearer_token, json_response

_DRILL = re.compile(r"pullRequest\(number:\s*(\d+)\)")


def _cursor(offset: int) -> str:
    return base64.b64encode(f"cursor:{offset}".encode()).decode()


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return int(base64.b64decode(cursor).decode().split(":", 1)[1])
    except (ValueError, IndexError):
        return 0


def _page(items: list, first: int, after: str | None) -> tuple[list, dict[str, Any]]:
    start = _offset(after)
    chunk = items[start:start + first]
    end = start + len(chunk)
    return chunk, {"hasNextPage": end < len(items), "endCursor": _cursor(end) if chunk else None}


class GitHubGraphQL:
    def __init__(self, authority: OAuthAuthority, activity: GitHubActivity) -> None:
        self.authority, self.activity = authority, activity

    def routes(self) -> list[Route]:
        return [Route(f"{API}/graphql", ("POST",), self.graphql),
                Route("/api/graphql", ("POST",), self.graphql)]

    def graphql(self, request: Request) -> Response:
        try:
            self.authority.authenticate(bearer_token(request, ("bearer", "token")))
        except OAuthError:
            return json_response({"message": "Bad credentials"}, 401)
        try:
            body = json.loads(request.get_data() or b"{}")
            query, variables = body["query"], body.get("variables") or {}
            owner, name = variables["owner"], variables["name"]
            first = max(1, min(100, int(variables.get("first", 10))))
        except (ValueError, KeyError, TypeError):
            return json_response({"errors": [{"message": "unsupported query"}]}, 400)
        act = self.activity.find(owner, name)
        if act is None:
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
