"""GraphQL for :class:`shared.fetch.client.ProviderClient`: which document texts exist and
may be sent (:class:`Documents`), where the endpoint is, and what a GraphQL answer means.

GraphQL answers errors with HTTP 200 and an ``errors`` list. They map onto the same error tree
as REST answers (:mod:`shared.fetch.errors`), reading only each error's ``type`` (or
``extensions.code``) and ``path`` — never its ``message``, which may quote the query or data:

* ``RATE_LIMITED`` / ``RATE_LIMIT`` → :class:`RateLimited` at ``Retry-After`` or the reset;
* no ``data`` and only ``NOT_FOUND`` → :class:`NotFoundAtProvider`;
* ``data`` with ``NOT_FOUND`` errors only (a node deleted since it was listed: its entry is
  ``null``) → the answer, with those paths in :attr:`GraphQLResponse.missing`;
* ``data`` with ``FORBIDDEN`` errors that each name a path (a node the token may not read,
  e.g. behind an organization's SAML enforcement: its entry is ``null``), besides any
  ``NOT_FOUND`` ones → the answer, with those paths in :attr:`GraphQLResponse.forbidden`, so
  the readable nodes are not lost with it;
* any other error (``ARGUMENT_LIMIT``, ``FORBIDDEN`` for the whole query, ``undefinedField``…)
  → :class:`ProviderRefused` naming the error types;
* an answer that is not a JSON object, or ``data`` that is not one → :class:`MalformedResponse`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import SplitResult, urlunsplit

from shared.fetch import budget as rates
from shared.fetch.errors import MalformedResponse, NotFoundAtProvider, ProviderRefused, RateLimited
from shared.fetch.github import graphql as github_documents
from shared.fetch.gitlab import graphql as gitlab_documents
from shared.log import get_logger
from shared.providers import graphql as gql
from shared.providers.schema import ProviderSpec

log = get_logger("shared.fetch.client")

# The document texts each provider's code holds (vetted against the table before use).
DOCUMENTS: Mapping[str, Mapping[str, str]] = {"github": github_documents.DOCUMENTS,
                                              "gitlab": gitlab_documents.DOCUMENTS}
RATE_LIMITED_TYPES = frozenset({"RATE_LIMITED", "RATE_LIMIT"})
PER_NODE_TYPES = frozenset({"NOT_FOUND", "FORBIDDEN"})  # with data and a path: one node
_KIND = re.compile(r"^[A-Za-z_]{1,40}$")


@dataclass(frozen=True)
class GraphQLResponse:
    """A GraphQL answer's ``data``; ``missing``: paths of nodes the provider could not find;
    ``cost``: the points it spent (``rateLimit.cost``), when the document asks for it;
    ``forbidden``: paths of nodes the token may not read."""

    data: dict[str, Any]
    missing: tuple[tuple[str | int, ...], ...]
    cost: int | None
    headers: Mapping[str, str]
    forbidden: tuple[tuple[str | int, ...], ...] = ()


class Documents:
    """The GraphQL documents one client may send: ``texts`` (default: the provider's code,
    :data:`DOCUMENTS`), each usable only once vetted against its table entry."""

    def __init__(self, spec: ProviderSpec, texts: Mapping[str, str] | None = None) -> None:
        self._spec, self._vetted = spec, dict[str, str]()
        self._texts = dict(DOCUMENTS.get(spec.name, {}) if texts is None else texts)

    def prepare(self, name: str, variables: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """The vetted text of ``name`` and the checked ``variables``, or
        :class:`~shared.providers.graphql.DocumentRefused`."""
        graphql = self._spec.api.graphql
        if graphql is None:
            raise gql.DocumentRefused("the provider table allows no GraphQL")
        if not isinstance(name, str) or name not in graphql.documents:
            raise gql.DocumentRefused("not an allowlisted GraphQL document")
        entry = graphql.documents[name]
        if name not in self._vetted:
            text = self._texts.get(name)
            gql.vet(text, entry.sha256, entry.variables, entry.selects)  # type: ignore[arg-type]
            self._vetted[name] = text  # type: ignore[assignment]
        values = gql.check_variables(entry.variables, variables, graphql.max_list_length)
        return self._vetted[name], values


def endpoint(spec: ProviderSpec, base: SplitResult) -> str:
    """The GraphQL URL for an API base: ``{base}/graphql`` on github.com, ``/api/graphql`` in
    place of ``/api/v3`` on a self-hosted (Enterprise Server) base."""
    graphql = spec.api.graphql
    assert graphql is not None
    path, hosted = base.path.rstrip("/"), spec.api.self_hosted_api_path
    if hosted and graphql.self_hosted_path and path.endswith(hosted):
        path = path[: -len(hosted)] + graphql.self_hosted_path
    else:
        path += graphql.path
    return urlunsplit(base._replace(path=path))


def _kind(error: Any) -> str:
    if not isinstance(error, dict):
        return "UNKNOWN"
    extensions = error.get("extensions")
    for value in (error.get("type"),
                  extensions.get("code") if isinstance(extensions, dict) else None):
        if isinstance(value, str) and _KIND.match(value):
            return value
    return "UNKNOWN"


def _path(error: Any) -> tuple[str | int, ...]:
    path = error.get("path") if isinstance(error, dict) else None
    if not isinstance(path, list):
        return ()
    return tuple(p for p in path if isinstance(p, int) and not isinstance(p, bool)
                 or isinstance(p, str) and _KIND.match(p))


def _cost(data: dict[str, Any]) -> int | None:
    limit = data.get("rateLimit")
    cost = limit.get("cost") if isinstance(limit, dict) else None
    return cost if isinstance(cost, int) and not isinstance(cost, bool) else None


def result(spec: ProviderSpec, name: str, body: Any, headers: Mapping[str, str],
           now: datetime) -> GraphQLResponse:
    """The meaning of one 200 answer to document ``name`` (see the module docstring)."""
    what = f"{spec.name} graphql {name}"
    if not isinstance(body, dict):
        raise MalformedResponse(f"{what}: expected a JSON object")
    errors, data = body.get("errors") or [], body.get("data")
    if not isinstance(errors, list):
        raise MalformedResponse(f"{what}: errors is not a list")
    kinds = sorted({_kind(e) for e in errors})
    if RATE_LIMITED_TYPES.intersection(kinds):
        when = rates.retry_at(spec.api.rate_limit, headers, now)
        log.info("provider.rate_limited", extra={"fields": {
            "provider": spec.name, "template": f"graphql {name}", "status": 200,
            "retry_at": when.isoformat()}})
        raise RateLimited(f"{what}: rate limited (GraphQL)", when)
    if errors:
        log.warning("provider.graphql_errors", extra={"fields": {
            "provider": spec.name, "document": name, "types": kinds, "count": len(errors),
            "with_data": isinstance(data, dict)}})
        if not isinstance(data, dict):
            if kinds == ["NOT_FOUND"]:
                raise NotFoundAtProvider(f"{what}: not found (GraphQL)")
            raise ProviderRefused(f"{what}: answered GraphQL errors {kinds}",
                                  types=tuple(kinds))
        if not set(kinds) <= PER_NODE_TYPES or not all(
                _path(e) for e in errors if _kind(e) == "FORBIDDEN"):
            raise ProviderRefused(f"{what}: answered GraphQL errors {kinds}",
                                  types=tuple(kinds))
    if not isinstance(data, dict):
        raise MalformedResponse(f"{what}: answered no data")
    return GraphQLResponse(
        data, tuple(_path(e) for e in errors if _kind(e) == "NOT_FOUND"), _cost(data), headers,
        tuple(_path(e) for e in errors if _kind(e) == "FORBIDDEN"))
