"""An action's provider calls: post a comment, or find the one an interrupted attempt posted.

Both go through :class:`~shared.fetch.client.ProviderClient` (allowlist, budget, no token in
any error). Posting is never retried by the client; finding is a paged GET (retried on 5xx).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.actions import targets
from shared.fetch.client import ApiResponse, ProviderClient
from shared.fetch.errors import MalformedResponse

MAX_PAGES = 50  # pages of comments, newest first (GitLab, Bitbucket) or since the attempt (GitHub)
SINCE_SLACK = timedelta(minutes=5)  # clock skew between us and the provider


@dataclass(frozen=True)
class Thread:
    """The pull/merge request or issue an action comments on."""

    provider: str
    repository: dict[str, Any]  # the normalized repository record
    parent_kind: str
    number: int

    @property
    def target(self) -> targets.Target:
        return targets.target_for(self.provider, self.parent_kind)

    @property
    def path_params(self) -> dict[str, str]:
        return targets.path_params(self.provider, self.repository, self.parent_kind,
                                   self.number)


def _comment(response: ApiResponse, what: str) -> dict[str, Any]:
    body = response.body
    if not isinstance(body, dict) or body.get("id") is None:
        raise MalformedResponse(f"{what}: the provider answered without a comment id")
    return body


def post(client: ProviderClient, thread: Thread, body: str, action_id: str) -> dict[str, Any]:
    """POST the comment with ``action_id``'s marker; the provider's comment JSON."""
    response = client.post(thread.target.post, thread.path_params,
                           targets.payload(thread.provider, body, action_id))
    return _comment(response, f"{thread.provider} {thread.target.post}")


def _since(thread: Thread, started: datetime) -> dict[str, str]:
    name = targets.SINCE_PARAM.get(thread.provider)
    if name is None:
        return {}
    return {name: (started - SINCE_SLACK).strftime("%Y-%m-%dT%H:%M:%SZ")}


def _ours(thread: Thread, raw: Any, action_id: str, author: str | None) -> bool:
    """The marked comment, written by the acting user when we know who that is."""
    return (isinstance(raw, dict) and raw.get("id") is not None
            and targets.marked(thread.provider, raw, action_id)
            and (author is None or targets.author_id(thread.provider, raw) == author))


def find(client: ProviderClient, thread: Thread, action_id: str, author: str | None,
         started: datetime) -> dict[str, Any] | None:
    """The comment carrying ``action_id``'s marker, or None after :data:`MAX_PAGES` pages.

    ``author`` (the identity's provider account id, when known) must match as well: a marker
    copied into someone else's comment is not ours. ``started`` is when the first attempt
    began; GitHub lists only comments updated since shortly before it.
    """
    target = thread.target
    response = client.get(target.listing, thread.path_params,
                          {**target.list_params, **_since(thread, started)})
    for _ in range(MAX_PAGES):
        items = response.body
        if thread.provider in targets.ITEMS_KEY and isinstance(items, dict):
            items = items.get(targets.ITEMS_KEY[thread.provider])
        items = items if isinstance(items, list) else []
        found = next((raw for raw in items if _ours(thread, raw, action_id, author)), None)
        if found is not None or not response.next_url:
            return found
        response = client.get_next(response.next_url, target.listing)
    return None
