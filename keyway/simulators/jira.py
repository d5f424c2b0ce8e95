"""The Jira Cloud simulator: Atlassian's OAuth 2.0 (3LO) server and the Jira REST API v3
behind the API gateway, on one loopback server.

Configure a client with the OAuth base URL ``sim.oauth_url`` (``/authorize``,
``/oauth/token``) and the API base template ``sim.api_url``
(``<sim.url>/ex/jira/{cloud_id}``) - the same layout as auth.atlassian.com and
api.atlassian.com, whose origin also serves ``/oauth/token/accessible-resources``::

    with JiraSimulator() as sim:
        sim.register_client("app-id", "secret", ["http://127.0.0.1:8080/oauth-jira/callback"])
        sim.seed_activity("acme", repos=2, issues=50, comments=200)

Wire formats: :mod:`keyway.simulators.jira_oauth` (rotating refresh-token families, reuse
leeway, family revocation), :mod:`keyway.simulators.jira_api` (JQL, ``nextPageToken``
and ``startAt`` paging, 429 with ``Retry-After``) and :mod:`keyway.simulators.jira_hooks`
(dynamic webhooks of OAuth 2.0 apps: one URL per app, 30-day expiry, refresh, deletion by ids,
deliveries signed with a JWT under the app's client secret — :attr:`JiraSimulator.webhooks`,
:meth:`JiraSimulator.deliver`); data in :mod:`keyway.simulators.jira_data`, JSON shapes in
:mod:`keyway.simulators.jira_render`. Every REST route checks the token's scopes
(:data:`keyway.simulators.jira_api.SCOPES`); :meth:`mint_token` grants every scope the routes
need unless told.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import requests
from werkzeug.wrappers import Request, Response

from keyway.simulators.jira_api import JiraApi, errors, rate_limit_fault
from keyway.simulators.jira_data import JiraData, Project
from keyway.simulators.jira_hooks import DynamicWebhooks, JiraWebhooksApi
from keyway.simulators.jira_oauth import AtlassianOAuth, RotatingAuthority, atlassian_policy
from keyway.simulators.jira_render import webhook_event
from keyway.simulators.oauth_model import Account
from keyway.simulators.server import Route, Simulator

DEFAULT_USER = Account("5b10a2844c20165700ede21g", 4242, "Jane Doe")  # login = accountId
SECOND_USER = Account("5b10ac8d82e05b22cc7d4ef5", 4343, "Mia Krystof")  # a second user
MINUTE_LIMIT = 6000


class JiraSimulator(Simulator):
    """A Jira Cloud site stand-in (see the module docstring). ``time_zone`` is the signed-in
    user's (JQL dates and rendered times use it); ``rate_limit`` the per-minute budget."""

    mint_scopes = ("read:jira-work", "read:jira-user", "write:jira-work", "manage:jira-webhook",
                   "offline_access")

    oauth: RotatingAuthority

    def __init__(self, *, port: int = 0, rate_limit: int = MINUTE_LIMIT,
                 clock: Callable[[], float] = time.time, site: str = "acme",
                 time_zone: str = "UTC",
                 on_issue: Callable[[str], object] | None = None) -> None:
        self.data = JiraData(clock, site)
        self.webhooks = DynamicWebhooks(clock, on_issue)  # delivery JWTs are issued too
        self.deletion_deliveries: list = []  # answers to the webhooks ``delete`` sent
        self.time_zone = time_zone
        super().__init__(policy=atlassian_policy(), account=DEFAULT_USER, rate_limit=rate_limit,
                         rate_window=60, port=port, clock=clock, on_issue=on_issue,
                         authority=RotatingAuthority, others=(SECOND_USER,))

    def routes(self) -> list[Route]:
        zone = lambda: self.time_zone  # noqa: E731 - read at request time
        return [*AtlassianOAuth(self.oauth).routes(),  # type: ignore[arg-type]
                *JiraApi(self.oauth, self.rate_limit, self.data, zone).routes(),
                *JiraWebhooksApi(self.oauth, self.rate_limit, self.data, zone,
                                 self.webhooks).routes()]

    def not_found(self, request: Request) -> Response:
        return errors(404, "Not Found")

    @property
    def oauth_url(self) -> str:
        return self.url

    @property
    def api_url(self) -> str:
        """The API base template, ``<url>/ex/jira/{cloud_id}`` (``KEYWAY_JIRA_API_URL``)."""
        return self.url + "/ex/jira/{cloud_id}"

    @property
    def site_api_url(self) -> str:
        """The API base of the simulated site (its cloud id filled in)."""
        return self.url + f"/ex/jira/{self.cloud_id}"

    @property
    def cloud_id(self) -> str:
        return self.data.cloud_id

    @property
    def site_url(self) -> str:
        return self.data.site_url

    # ---- activity and knobs ---------------------------------------------------------------
    def seed_activity(self, owner: str, repos: int, issues: int, comments: int,
                      prs: int = 0, review_comments: int = 0, reviews: int = 0,
                      labels: int = 5, seed: int = 0) -> list[Project]:
        """``repos`` projects with ``issues`` issues and ``comments`` comments spread over
        them. ``owner`` names nothing on Jira (the site is the owner); ``prs``,
        ``review_comments`` and ``reviews`` are accepted like the other simulators' and
        ignored: Jira has no pull requests."""
        return self.data.seed(repos, issues, comments, labels, seed)

    def touch(self, kind: str, count: int, at_ms: int | None = None) -> list[int]:
        """Edit ``count`` issues or comments (``updated`` = ``at_ms``, default now)."""
        return self.data.touch(kind, count, at_ms)

    def delete(self, kind: str, ident: int) -> bool:
        """Remove an issue (with its comments) or a comment, then send the apps whose live
        dynamic webhooks match it ``jira:issue_deleted`` or ``comment_deleted`` with the
        removed object, as Jira does (answers in :attr:`deletion_deliveries`)."""
        with self.data.lock:
            found = self._deletion_event(kind, ident)
            done = self.data.delete(kind, ident)
        if done and found is not None:
            event, project, payload = found
            self.deletion_deliveries += self.webhooks.deliver(event, project, payload,
                                                              self._client_secret)
        return done

    def _deletion_event(self, kind: str, ident: int) -> tuple[str, int, dict] | None:
        comment = self.data.comments.get(ident) if kind == "comment" else None
        key = comment["issue_key"] if comment is not None else str(ident)
        issue = self.data.issue(key) if kind in ("comment", "issue") else None
        if issue is None:
            return None
        project = self.data.projects[issue["project"]]
        user = {"accountId": self.account.login, "displayName": self.account.name}
        event = "comment_deleted" if comment is not None else "jira:issue_deleted"
        return event, project.id, webhook_event(event, issue, project, self.site_url, user,
                                                self.data.now_ms(), comment)

    def deliver(self, event: str, issue_key: str,
                comment_id: int | None = None) -> list[requests.Response]:
        """Send ``event`` about an issue (and one of its comments) to every app whose live
        dynamic webhooks match it, signed as Jira signs for OAuth 2.0 apps (real HTTP);
        returns the answers (none when no webhook matches, e.g. once they expired)."""
        with self.data.lock:
            issue = self.data.issue(issue_key)
            if issue is None:
                raise KeyError(f"no issue {issue_key}")
            project = self.data.projects[issue["project"]]
            comment = self.data.comments.get(comment_id) if comment_id is not None else None
            user = {"accountId": self.account.login, "displayName": self.account.name}
            payload = webhook_event(event, issue, project, self.site_url, user,
                                    self.data.now_ms(), comment)
        return self.webhooks.deliver(event, project.id, payload, self._client_secret)

    def _client_secret(self, client_id: str) -> str:
        client = self.oauth.clients.get(client_id)
        if client is None:
            raise KeyError(f"client {client_id!r} is not registered: it cannot sign")
        return client.client_secret

    def rate_limit_next(self, retry_after: int = 60, count: int = 1) -> None:
        """Answer the next ``count`` API requests with Jira's 429 and ``Retry-After``."""
        self.queue_fault(rate_limit_fault(self.rate_limit, retry_after, count))

    @property
    def refresh_calls(self) -> int:
        return self.oauth.refresh_calls

    @property
    def reuses(self) -> list:
        """Every invalidated refresh token presented again (within the leeway or not)."""
        return list(self.oauth.reuses)

    @property
    def family_revocations(self) -> int:
        return self.oauth.family_revocations
