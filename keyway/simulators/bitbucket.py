"""The Bitbucket Cloud simulator: bitbucket.org's OAuth 2.0 consumers and api.bitbucket.org's
REST 2.0 API on one loopback server.

Configure a client with the OAuth base URL ``sim.oauth_url`` (``/site/oauth2/authorize``,
``/site/oauth2/access_token``) and the API base URL ``sim.api_url`` (``<sim.url>/2.0``)::

    with BitbucketSimulator() as sim:
        sim.register_client("key", "secret", ["http://127.0.0.1:8080/oauth-bitbucket/callback"])
        sim.seed_activity("acme", repos=3, prs=60, issues=90, comments=400)

Real behaviours, on purpose: HTTP Basic client authentication only; the consumer's scopes
whatever the request asks, checked on every API route (:data:`.bitbucket_api.SCOPES`);
2-hour access tokens and refresh tokens that do not rotate; pages of ``values`` with an
absolute ``next``; no ETags; BBQL ``q=updated_on > …``; 1,000 requests per rolling hour on
``/2.0/repositories/*`` with a bare 429 and no quota headers; the removed cross-workspace lists
answering 410. Wire formats: :mod:`.bitbucket_oauth`,
:mod:`.bitbucket_api`, :mod:`.bitbucket_metadata`; the families keyway must never call:
:mod:`.bitbucket_forbidden`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from keyway.simulators.bitbucket_api import (
    API,
    HOURLY_LIMIT,
    RATE_LIMITED,
    BitbucketApi,
    RollingLimiter,
)
from keyway.simulators.bitbucket_data import BitbucketActivity, account_json_fields
from keyway.simulators.bitbucket_forbidden import BitbucketForbiddenApi
from keyway.simulators.bitbucket_hooks import BitbucketHooks
from keyway.simulators.bitbucket_metadata import BitbucketMetadataApi
from keyway.simulators.bitbucket_oauth import DEFAULT_SCOPES, BitbucketOAuth, bitbucket_policy
from keyway.simulators.bitbucket_render import (
    Site,
    account_json,
    comment_json,
    pull_request_json,
    repository_json,
)
from keyway.simulators.oauth_model import Account
from keyway.simulators.server import Fault, Route, Simulator
from keyway.simulators.wire import json_response

DEFAULT_USER = Account("evzijst", 7_001, "Erik van Zijst")
SECOND_USER = Account("mkrystof", 7_002, "Mia Krystof")  # a second user who can sign in


class BitbucketSimulator(Simulator):
    """A Bitbucket Cloud stand-in. ``rate_limit`` is the rolling-hour budget per account on
    repository data; ``clock`` (epoch seconds) drives code, token and rate-limit expiry;
    ``on_issue`` sees every token issued."""

    mint_scopes = DEFAULT_SCOPES

    def __init__(self, *, port: int = 0, rate_limit: int = HOURLY_LIMIT,
                 clock: Callable[[], float] = time.time,
                 on_issue: Callable[[str], object] | None = None) -> None:
        self.activity = BitbucketActivity(clock)
        self.hooks = BitbucketHooks(clock)  # repository webhooks and their delivery log
        self.rolling = RollingLimiter(rate_limit, 3600, clock)
        self._endpoints: list[Any] = []
        super().__init__(policy=bitbucket_policy(), account=DEFAULT_USER,
                         rate_limit=rate_limit, rate_window=3600, port=port, clock=clock,
                         on_issue=on_issue, others=(SECOND_USER,))

    def routes(self) -> list[Route]:
        self._oauth = BitbucketOAuth(self.oauth)
        self._endpoints = [cls(self.oauth, self.rolling, self.activity)
                           for cls in (BitbucketApi, BitbucketMetadataApi,
                                       BitbucketForbiddenApi)]
        return [*self._oauth.routes(), *(r for e in self._endpoints for r in e.routes())]

    def not_found(self, request: Request) -> Response:
        return json_response({"type": "error", "error": {"message": "Resource not found"}}, 404)

    @property
    def api_url(self) -> str:
        """The REST API base URL: ``<url>/2.0``."""
        return self.url + API

    @property
    def oauth_url(self) -> str:
        return self.url

    def register_client(self, client_id: str, client_secret: str, redirect_uris: list[str],
                        scopes: tuple[str, ...] = DEFAULT_SCOPES) -> None:
        """An OAuth consumer with its callback URL and ticked permissions (``scopes``)."""
        super().register_client(client_id, client_secret, redirect_uris)
        self._oauth.set_consumer_scopes(client_id, scopes)

    def user_json_fields(self, account: Account | None = None) -> dict[str, Any]:
        """The uuid/nickname/display name the API shows for ``account`` (default: signed in)."""
        return account_json_fields(account or self.account)

    # ---- rate limit -------------------------------------------------------------------------
    def quota_used(self, user_id: object) -> int:
        """Requests ``user_id`` made on repository data in the last rolling hour."""
        return self.rolling.used(user_id)

    @property
    def retry_after(self) -> int | None:
        return self._endpoints[0].retry_after if self._endpoints else None

    @retry_after.setter
    def retry_after(self, seconds: int | None) -> None:
        """Send ``Retry-After: seconds`` on natural 429s (None: no header, as by default)."""
        for endpoints in self._endpoints:
            endpoints.retry_after = seconds

    def rate_limit_next(self, status: int = 429, retry_after: int | None = None,
                        count: int = 1) -> None:
        """Refuse the next ``count`` repository-data requests with Bitbucket's 429 (with
        ``Retry-After`` only when given). Spends nothing."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        body = json_response({"type": "error", "error": {"message": RATE_LIMITED}}).get_data()
        self.queue_fault(Fault(status, count, body=body, headers=headers,
                               path_prefix=f"{API}/repositories/"))

    # ---- activity ---------------------------------------------------------------------------
    def seed_activity(self, owner: str, repos: int, prs: int, issues: int, comments: int,
                      review_comments: int = 0, reviews: int = 0, labels: int = 0,
                      seed: int = 0) -> list[dict[str, Any]]:
        """Create ``repos`` repositories in workspace ``owner`` (every other one without an
        issue tracker) and spread the activity over them; returns the repositories."""
        return self.activity.seed_activity(owner, repos, prs, issues, comments,
                                           review_comments, reviews, labels, seed)

    def touch(self, kind: str, count: int) -> list[str]:
        """Edit ``count`` items of ``kind`` (``pull``, ``issue``, ``comment``,
        ``issue_comment``); returns their keys (``<full name>#<id>``). An edited pull request
        comment is delivered to the repository's hooks as ``pullrequest:comment_updated``."""
        keys = self.activity.touch(kind, count)
        for key in keys if kind == "comment" else ():
            event = self._comment_event(key)
            if event is not None:
                self.hooks.deliver(event[0], "pullrequest:comment_updated", event[1])
        return keys

    def decide(self, full_name: str, number: int, state: str | None,
               account: Account | None = None) -> None:
        """``account`` (default: a seeded developer) approves, requests changes or (None)
        withdraws on pull request ``number`` of ``full_name``."""
        user = account_json_fields(account) if account else self.activity.users[0]
        self.activity.decide(full_name, number, user, state)

    def delete(self, kind: str, key: str) -> bool:
        """Remove ``kind`` item ``key`` (``<full name>#<id>``); recorded in :attr:`deleted`.
        A pull request comment's removal is delivered to the repository's hooks as
        ``pullrequest:comment_deleted`` (:mod:`.bitbucket_hooks`); nothing else sends one."""
        before = self._comment_event(key) if kind == "comment" else None
        removed = self.activity.delete(kind, key)
        if removed and before is not None:
            full_name, payload = before
            payload["comment"]["deleted"] = True
            self.hooks.deliver(full_name, "pullrequest:comment_deleted", payload)
        return removed

    def _comment_event(self, key: str) -> tuple[str, dict[str, Any]] | None:
        """The payload of a pull request comment's event, as the comment is now."""
        try:
            act, comment = self.activity._locate("comment", key)
        except (KeyError, ValueError):
            return None
        site = Site(self.url)
        with self.activity.lock:
            pull = act.pulls.items.get(comment["thread"])
            if pull is None:
                return None
            return act.repo["full_name"], {
                "actor": account_json(comment["user"], site),
                "pullrequest": pull_request_json(pull, site),
                "comment": comment_json(comment, act.repo, site),
                "repository": repository_json(act.repo, site)}

    def remove_repository(self, full_name: str) -> bool:
        return self.activity.remove_repository(full_name)

    @property
    def deleted(self) -> list:
        return list(self.activity.deleted)
