"""GitHub GraphQL's node interface as the simulator answers it: ``nodes(ids:)`` and
``node(id:)`` for pull requests (by the REST ``node_id``), each pull request's ``reviews``
connection, repositories with their list totals (:mod:`.github_graphql_repos`), and
``rateLimit`` — resolved field by field from the document's selections, from
the same reviews ``GET …/pulls/{n}/reviews`` serves (same ids, states, times, authors, links;
chronological).

Types and fields are checked as GitHub's schema has them: ``databaseId`` is on ``User`` and
``Bot`` but not on the ``Actor`` an author is (select it through ``... on User``), a node is a
``Node`` until a fragment narrows it. Answers are HTTP 200; errors look like GitHub's:

* a field the type lacks → ``undefinedField`` (``extensions.code``), no ``data``;
* more than 100 ids → ``ARGUMENT_LIMIT`` ("You may not provide more than 100 node ids"),
  no ``data``; a connection without ``first`` or with ``first`` outside 1…100 → an error, no
  data (:func:`.github_graphql_repos.first_error`);
* an id that names nothing (or a pull request the token may not see) → its entry is ``null``
  plus a ``NOT_FOUND`` error at its path; an installation token without ``pull_requests``
  permission → ``null`` plus ``FORBIDDEN`` (``Resource not accessible by integration``), and
  the same for a repository's ``issues`` / ``pullRequests`` / ``labels`` without the permission
  their REST lists need (``issues``, ``pull_requests``, ``metadata``).

Cost (:func:`cost`) follows GitHub's documented formula: every connection counts as many
requests as its enclosing lists can hold (``nodes`` of n ids: n; a connection: its
``first``), the sum is divided by 100 and rounded, and a query costs at least 1 point.
The parser is :mod:`shared.providers.graphql`'s (no aliases, directives or fragments).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from keyway.simulators import github_graphql_repos as repos
from keyway.simulators.activity import iso
from keyway.simulators.github_api import node_id
from keyway.simulators.github_data import GitHubActivity
from keyway.simulators.github_render import Site
from keyway.simulators.github_tokens import GRAPHQL, INTEGRATION, Caller, refusal
from shared.providers.graphql import Field, Operation

MAX_IDS = 100
MAX_FIRST = repos.MAX_FIRST
_ACTOR = {"login": None, "url": None, "avatarUrl": None}
_ACCOUNT = {**_ACTOR, "id": None, "databaseId": None}
SCHEMA: dict[str, dict[str, str | None]] = {  # field → object type (None: a scalar)
    "Query": {"nodes": "[Node]", "node": "Node", "rateLimit": "RateLimit"},
    "Node": {"id": None},
    "PullRequest": {"id": None, "number": None, "url": None, "title": None, "updatedAt": None,
                    "fullDatabaseId": None, "reviews": "PullRequestReviewConnection"},
    "PullRequestReviewConnection": {"nodes": "[PullRequestReview]", "pageInfo": "PageInfo",
                                    "totalCount": None},
    "PullRequestReview": {"id": None, "databaseId": None, "fullDatabaseId": None,
                          "state": None, "submittedAt": None, "createdAt": None, "url": None,
                          "body": None, "author": "Actor"},
    "Actor": dict(_ACTOR), "User": dict(_ACCOUNT), "Bot": dict(_ACCOUNT),
    "Mannequin": dict(_ACCOUNT),
    "PageInfo": {"hasNextPage": None, "hasPreviousPage": None, "endCursor": None,
                 "startCursor": None},
    "RateLimit": {"cost": None, "remaining": None, "resetAt": None, "limit": None,
                  "used": None, "nodeCount": None},
    **repos.TYPES,
}
IMPLEMENTS = {"PullRequest": {"Node"}, "PullRequestReview": {"Node"}, "Repository": {"Node"},
              "User": {"Actor", "Node"}, "Bot": {"Actor", "Node"}, "Mannequin": {"Actor"}}
CONNECTIONS = {"reviews", *repos.CONNECTIONS}


class Invalid(Exception):
    """A validation error: GitHub answers it without ``data``."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.error = error


@dataclass
class Obj:
    """A resolved object: its type, scalar fields and resolvers of object fields."""

    type: str
    scalars: dict[str, Any]
    links: dict[str, Callable[[Field, list], Any]] = field(default_factory=dict)


def cursor(offset: int) -> str:
    return base64.b64encode(f"cursor:{offset}".encode()).decode()


def offset(value: Any) -> int:
    if not value:
        return 0
    try:
        return int(base64.b64decode(str(value)).decode().split(":", 1)[1])
    except (ValueError, IndexError, binascii.Error):
        return 0


def _argument(value: Any, variables: dict[str, Any]) -> Any:
    kind, inner = value
    if kind == "var":
        return variables.get(inner)
    if kind == "list":
        return [_argument(item, variables) for item in inner]
    return inner


def _arguments(node: Field, variables: dict[str, Any]) -> dict[str, Any]:
    return {name: _argument(value, variables) for name, value in node.arguments}


def cost(operation: Operation, variables: dict[str, Any]) -> int:
    """Points the query costs (see the module docstring)."""
    def requests(selections: tuple[Field, ...], multiplier: int) -> int:
        total = 0
        for node in selections:
            args = _arguments(node, variables)
            inner = multiplier
            if node.name == "nodes" and isinstance(args.get("ids"), list):
                inner = multiplier * len(args["ids"])
            elif node.name in CONNECTIONS:
                first = args.get("first") if isinstance(args.get("first"), int) else 0
                total += multiplier
                inner = multiplier * min(max(first, 0), MAX_FIRST)
            total += requests(node.selections, inner)
        return total
    return max(1, round(requests(operation.selections, 1) / 100))


class NodeQuery:
    """One query's resolution against the activity (``budget``: limit, remaining, reset
    after this query's cost, for ``rateLimit``)."""

    def __init__(self, activity: GitHubActivity, host: str, variables: dict[str, Any],
                 rate: dict[str, Any], caller: Caller | None = None) -> None:
        self.activity, self.host, self.variables, self.rate = activity, host, variables, rate
        self.caller = caller  # None: every pull request is readable
        self.errors: list[dict[str, Any]] = []

    def answer(self, operation: Operation) -> dict[str, Any]:
        root = Obj("Query", {}, {"nodes": self._nodes, "node": self._node,
                                 "rateLimit": lambda f, p: Obj("RateLimit", self.rate)})
        try:
            data = self.select("Query", root, operation.selections, [])
        except Invalid as e:
            return {"errors": [e.error]}
        return {"data": data, **({"errors": self.errors} if self.errors else {})}

    # ---- selection ---------------------------------------------------------------------------
    def select(self, static: str, obj: Obj, selections: tuple[Field, ...],
               path: list) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for node in selections:
            if node.fragment:
                if node.name not in SCHEMA:
                    raise Invalid({"message": f"No such type {node.name}, so it can't be a "
                                              "fragment condition", "extensions": {
                                                  "code": "undefinedType",
                                                  "typeName": node.name}})
                if obj.type == node.name or node.name in IMPLEMENTS.get(obj.type, ()):
                    out.update(self.select(node.name, obj, node.selections, path))
                continue
            if node.name not in SCHEMA[static]:
                raise Invalid({"path": ["query", *path, node.name], "message":
                               f"Field '{node.name}' doesn't exist on type '{static}'",
                               "extensions": {"code": "undefinedField", "typeName": static,
                                              "fieldName": node.name}})
            kind, here = SCHEMA[static][node.name], [*path, node.name]
            value = (obj.links[node.name](node, here) if node.name in obj.links
                     else obj.scalars.get(node.name))
            out[node.name] = self._render(kind, value, node, here)
        return out

    def _render(self, kind: str | None, value: Any, node: Field, path: list) -> Any:
        if kind is None or value is None:
            return value
        if kind.startswith("["):
            return [self._render(kind[1:-1], item, node, [*path, i])
                    for i, item in enumerate(value)]
        if not node.selections:
            raise Invalid({"message": f"Field must have selections (field '{node.name}' "
                                      f"returns {kind} but has no selections.)"})
        return self.select(kind, value, node.selections, path)

    # ---- resolvers -------------------------------------------------------------------------------
    def _nodes(self, node: Field, path: list) -> list[Obj | None]:
        ids = _arguments(node, self.variables).get("ids")
        if not isinstance(ids, list):
            raise Invalid({"message": "Argument 'ids' on Field 'nodes' has an invalid value"})
        if len(ids) > MAX_IDS:
            raise Invalid({"type": "ARGUMENT_LIMIT", "path": ["nodes"], "message":
                           f"You may not provide more than {MAX_IDS} node ids; you provided "
                           f"{len(ids)}."})
        return [self._pull(ident, [*path, i]) for i, ident in enumerate(ids)]

    def _node(self, node: Field, path: list) -> Obj | None:
        return self._pull(_arguments(node, self.variables).get("id"), path)

    def _pull(self, ident: Any, path: list) -> Obj | None:
        repository = repos.lookup(self.activity, ident)
        if repository is not None and (self.caller is None or self.caller.sees(repository.repo)):
            return self._repository(ident, repository)
        found = self._lookup(ident)
        if found is not None and self.caller is not None:
            if not self.caller.sees(found[0].repo):
                found = None
            elif refusal(self.caller, GRAPHQL) is not None:
                self.errors.append({"type": "FORBIDDEN", "path": path,
                                    "message": INTEGRATION})
                return None
        if found is None:
            self.errors.append({"type": "NOT_FOUND", "path": path, "message":
                                f"Could not resolve to a node with the global id of "
                                f"'{str(ident)[:100]}'"})
            return None
        act, pull = found
        site = Site(self.host, act.repo)
        reviews = self.activity.listed(act, "reviews", pull["number"]) or []
        return Obj("PullRequest", {
            "id": ident, "number": pull["number"], "title": pull["title"],
            "url": f"{site.web}/pull/{pull['number']}", "updatedAt": iso(pull["updated"]),
            "fullDatabaseId": str(pull["pull_id"])},
            {"reviews": lambda f, p: self._reviews(f, reviews, site)})

    def _repository(self, ident: Any, act: Any) -> Obj:
        counts = repos.totals(self.activity, act)

        def connection(name: str) -> Callable[[Field, list], Obj | None]:
            def resolve(node: Field, path: list) -> Obj | None:
                error = repos.first_error(name, _arguments(node, self.variables).get("first"))
                if error is not None:
                    raise Invalid(error)
                if self.caller is not None and refusal(
                        self.caller, repos.PERMISSION_OF[name]) is not None:
                    self.errors.append({"type": "FORBIDDEN", "path": path,
                                        "message": INTEGRATION})
                    return None
                return Obj(repos.TYPES["Repository"][name] or "", {"totalCount": counts[name]})
            return resolve
        return Obj("Repository", {"id": ident, "databaseId": act.repo["id"],
                                  "name": act.repo["name"], "nameWithOwner": act.name},
                   {name: connection(name) for name in repos.CONNECTIONS})

    def _lookup(self, ident: Any):
        try:
            decoded = base64.b64decode(str(ident), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        prefix = "011:PullRequest"
        if not decoded.startswith(prefix) or not decoded[len(prefix):].isdigit():
            return None
        found = self.activity.pull_by_id(int(decoded[len(prefix):]))
        return found if found and node_id("011", "PullRequest", found[1]["pull_id"]) == ident \
            else None

    def _reviews(self, node: Field, reviews: list[dict], site: Site) -> Obj:
        args = _arguments(node, self.variables)
        first = args.get("first")
        error = repos.first_error("reviews", first)
        if error is not None:
            raise Invalid(error)
        start = offset(args.get("after"))
        chunk = reviews[start:start + first]
        end = start + len(chunk)
        info = {"hasNextPage": end < len(reviews), "hasPreviousPage": start > 0,
                "endCursor": cursor(end) if chunk else None,
                "startCursor": cursor(start + 1) if chunk else None}
        return Obj("PullRequestReviewConnection", {"totalCount": len(reviews)}, {
            "nodes": lambda f, p: [self._review(r, site) for r in chunk],
            "pageInfo": lambda f, p: Obj("PageInfo", info)})

    def _review(self, item: dict, site: Site) -> Obj:
        ident, user = item["id"], item.get("user")
        author = None if user is None else Obj(
            "Bot" if user.get("type") == "Bot" else "User",
            {"login": user["login"], "databaseId": user["id"],
             "id": node_id("04", "User", user["id"]), "url": f"{self.host}{user['login']}",
             "avatarUrl": f"{self.host}avatars/{user['login']}"})
        return Obj("PullRequestReview", {
            "id": node_id("017", "PullRequestReview", ident), "databaseId": ident,
            "fullDatabaseId": str(ident), "state": item["state"],
            "submittedAt": iso(item["created"]), "createdAt": iso(item["created"]),
            "url": f"{site.web}/pull/{item['number']}#pullrequestreview-{ident}",
            "body": item.get("body", "")}, {"author": lambda f, p: author})
