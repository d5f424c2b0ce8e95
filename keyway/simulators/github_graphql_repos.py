"""Repositories as GitHub GraphQL nodes (:mod:`.github_graphql_nodes`): ``nodes(ids:)`` /
``node(id:)`` with a repository's REST ``node_id`` resolve to a ``Repository`` whose
``issues``, ``pullRequests`` and ``labels`` connections answer ``totalCount`` — what the
repository holds now: deleted items are gone, and ``issues`` leaves pull requests out (GitHub's
``Repository.issues`` lists issues only, while REST's issues list includes pull requests).
Each connection needs ``first`` (1…100) as GitHub's node limit requires (:func:`first_error`,
the reviews connection's check too); its ``nodes`` are not served (keyway selects only
``totalCount``). An installation token reads ``issues`` only with the ``issues`` permission and
``pullRequests`` only with ``pull_requests`` (:data:`PERMISSION_OF`: the REST list each mirrors
in :data:`.github_tokens.APP_PERMISSIONS`); without it the field is ``null`` with a
``FORBIDDEN`` error at its path."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from keyway.simulators.github_api import node_id
from keyway.simulators.github_data import GitHubActivity
from keyway.simulators.github_seed import RepoActivity

MAX_FIRST = 100
PREFIX = "010:Repository"
TYPES: dict[str, dict[str, str | None]] = {
    "Repository": {"id": None, "databaseId": None, "name": None, "nameWithOwner": None,
                   "issues": "IssueConnection", "pullRequests": "PullRequestConnection",
                   "labels": "LabelConnection"},
    "IssueConnection": {"totalCount": None},
    "PullRequestConnection": {"totalCount": None},
    "LabelConnection": {"totalCount": None},
}
CONNECTIONS = {"issues", "pullRequests", "labels"}
_REPO = "GET /repos/{owner}/{repo}"
# the REST endpoint whose installation permission a connection needs (github_tokens' table)
PERMISSION_OF = {"issues": f"{_REPO}/issues", "pullRequests": f"{_REPO}/pulls",
                 "labels": f"{_REPO}/labels"}


def lookup(activity: GitHubActivity, ident: Any) -> RepoActivity | None:
    """The repository a ``node_id`` names (None: not a repository's, or none such)."""
    try:
        decoded = base64.b64decode(str(ident), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    if not decoded.startswith(PREFIX) or not decoded[len(PREFIX):].isdigit():
        return None
    number = int(decoded[len(PREFIX):])
    repo = next((r for r in activity.data.list() or [] if r["id"] == number), None)
    if repo is None or node_id("010", "Repository", number) != ident:
        return None
    owner, _, name = repo["full_name"].partition("/")
    return activity.find(owner, name)


def totals(activity: GitHubActivity, act: RepoActivity) -> dict[str, int]:
    """``issues`` (pull requests excluded), ``pullRequests`` and ``labels`` counts now."""
    with activity.lock:
        return {"issues": sum(1 for t in act.threads.items.values() if t["pull_id"] is None),
                "pullRequests": len(act.pulls.items), "labels": len(act.labels)}


def first_error(name: str, first: Any) -> dict[str, Any] | None:
    """GitHub's validation error for a connection's ``first`` (None: acceptable)."""
    if not isinstance(first, int):
        return {"type": "MISSING_PAGINATION_BOUNDARIES", "message": "You must provide a "
                f"`first` or `last` value to properly paginate the `{name}` connection."}
    if first < 1:
        return {"type": "INVALID_PAGINATION", "message": f"`first` on the `{name}` connection "
                f"must be between 1 and {MAX_FIRST}; you requested {first}."}
    if first > MAX_FIRST:
        return {"type": "EXCESSIVE_PAGINATION", "message": f"Requesting {first} records on the "
                f"`{name}` connection exceeds the `first` limit of {MAX_FIRST} records."}
    return None
