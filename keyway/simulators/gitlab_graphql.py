"""``POST /api/graphql``: GitLab's GraphQL API as far as keyway's documents need it (schema,
resolution and limits in :mod:`.gitlab_graphql_schema`).

Authenticated, scoped and metered like the REST API (:mod:`.gitlab_api`): the same OAuth
tokens, ``read_api`` or ``api`` for a query, and every request spends one unit of the user's
per-minute API budget with the same ``RateLimit-*`` headers and the same 429 (GitLab's "User
and IP rate limits": GraphQL requests are authenticated API traffic). Answers are HTTP 200;
a document GitLab refuses has ``errors`` and no ``data``, checked in graphql-ruby's order:
the schema (``undefinedField``, ``argumentNotAccepted``), then depth and complexity (both
reported when both are over). A ``project`` that does not exist is ``null`` without an error.

:attr:`GitLabGraphQL.queries` keeps each query's operation name and variables;
:attr:`GitLabGraphQL.lacking` names fields (``"MergeRequest.approvedBy"``) this instance's
schema does not have, as an older self-managed GitLab; :attr:`GitLabGraphQL.enabled` false
answers 404 as an instance without the GraphQL endpoint; :attr:`GitLabGraphQL.rewrite` is a
queue of functions, the first of which is given the next answer's body (``{"data": …}`` or
``{"errors": …}``, as it would be sent) and returns the body sent instead, then is dropped:
for answers GitLab may give and the simulator does not produce (``errors`` beside ``data``, a
connection without ``nodes`` or ``pageInfo``, ``null`` for part of the document, a complexity
refusal of a document the simulator would answer).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from keyway.simulators import gitlab_graphql_schema as schema
from keyway.simulators.gitlab_api import GitLabApi, GitLabData
from keyway.simulators.gitlab_data import GitLabActivity
from keyway.simulators.oauth import OAuthAuthority
from keyway.simulators.oauth_model import TokenInfo
from keyway.simulators.ratelimit import RateLimiter
from keyway.simulators.server import Route
from keyway.simulators.wire import json_response
from shared.providers.graphql import DocumentRefused, parse

PATH = "/api/graphql"
PARSE_DEPTH = 64  # how deep the parser follows a document, to measure it against the limit


def limits_errors(selections, variables: dict[str, Any]) -> list[dict[str, Any]]:
    """GitLab's refusals of a valid document over its depth or complexity limit."""
    errors = []
    found = schema.depth(selections)
    if found > schema.MAX_DEPTH:
        errors.append({"message": f"Query has depth of {found}, which exceeds max depth of "
                                  f"{schema.MAX_DEPTH}"})
    score = schema.complexity("Query", selections, variables)
    if score > schema.MAX_COMPLEXITY:
        errors.append({"message": f"Query has complexity of {score}, which exceeds max "
                                  f"complexity of {schema.MAX_COMPLEXITY}"})
    return errors


class GitLabGraphQL(GitLabApi):
    def __init__(self, authority: OAuthAuthority, limiter: RateLimiter, data: GitLabData,
                 activity: GitLabActivity) -> None:
        super().__init__(authority, limiter, data)
        self.activity = activity
        self.queries: list[dict[str, Any]] = []
        self.lacking: set[str] = set()
        self.enabled = True
        self.rewrite: list[Callable[[dict[str, Any]], dict[str, Any]]] = []
        self._lock = threading.Lock()

    def routes(self) -> list[Route]:
        return [Route(PATH, ("POST",), self.graphql)]

    def graphql(self, request: Request) -> Response:
        if not self.enabled:
            return json_response({"error": "404 Not Found"}, 404)
        return self._call(request, lambda info: self._rewritten(self._answer(request, info)))

    def _rewritten(self, answer: tuple[Any, dict[str, str]]) -> tuple[Any, dict[str, str]]:
        with self._lock:
            change = self.rewrite.pop(0) if self.rewrite else None
        return (change(answer[0]), answer[1]) if change else answer

    def _answer(self, request: Request, info: TokenInfo) -> tuple[Any, dict[str, str]]:
        try:
            body = json.loads(request.get_data() or b"{}")
            query, variables = body["query"], body.get("variables") or {}
            if not isinstance(query, str) or not isinstance(variables, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return {"errors": [{"message": "No query string was present"}]}, {}
        try:
            operation = parse(query, PARSE_DEPTH)
        except DocumentRefused as e:  # the simulator's parser takes a subset of GraphQL
            return {"errors": [{"message": f"Parse error: {e.args[0]}"}]}, {}
        with self._lock:
            self.queries.append({"operation": operation.name, "variables": variables})
        try:
            schema.validate("Query", operation.selections, frozenset(self.lacking))
        except schema.QueryError as e:
            return {"errors": [e.error]}, {}
        errors = limits_errors(operation.selections, variables)
        if errors:
            return {"errors": errors}, {}
        try:
            data = schema.Resolver(self.activity, variables).answer(operation.selections)
        except schema.QueryError as e:
            return {"data": None, "errors": [e.error]}, {}
        return {"data": data}, {}
