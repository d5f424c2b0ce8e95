"""The GitHub simulator: github.com's OAuth web flow and REST API on one loopback server.

Configure a client against it with the OAuth base URL ``sim.url`` (``/login/oauth/authorize``,
``/login/oauth/access_token``) and the API base URL ``sim.api_url`` (``<sim.url>/api/v3``, the
GitHub Enterprise Server layout; github.com's own API host is ``https://api.github.com``)::

    with GitHubSimulator() as sim:
        sim.register_client("Iv1.abc", "secret", ["http://127.0.0.1:8080/oauth-github/callback"])
        sim.seed("acme", repos=250)
        ...  # KEYWAY_GITHUB_OAUTH_URL=sim.url, KEYWAY_GITHUB_API_URL=sim.api_url

Wire formats are described in :mod:`keyway.simulators.github_oauth` and
:mod:`keyway.simulators.github_api`; the metadata endpoints a fetcher syncs (seeded with
:meth:`GitHubSimulator.seed_activity`) in :mod:`keyway.simulators.github_metadata`, the
families it must never call in :mod:`keyway.simulators.github_forbidden`, repository webhooks
(:attr:`GitHubSimulator.hooks`, :meth:`GitHubSimulator.deliver`) in
:mod:`keyway.simulators.github_hooks`, the App's webhook and the delivery log
(:meth:`GitHubSimulator.deliver_app`, :meth:`GitHubSimulator.drop_deliveries`) in
:mod:`keyway.simulators.github_deliveries`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from keyway.simulators.activity_knobs import ActivityKnobs
from keyway.simulators.delivery_log import DeliveryLog
from keyway.simulators.github_api import API, DOCS, GitHubApi, GitHubData, node_id
from keyway.simulators.github_app import GitHubApps
from keyway.simulators.github_content import ContentLimits
from keyway.simulators.github_data import GitHubActivity
from keyway.simulators.github_deletions import deletion_event, transfer_event
from keyway.simulators.github_deliveries import AppWebhook, GitHubDeliveries
from keyway.simulators.github_forbidden import GitHubForbiddenApi
from keyway.simulators.github_graphql import GitHubGraphQL
from keyway.simulators.github_hooks import GitHubHooksApi
from keyway.simulators.github_installation import GitHubInstallationApi
from keyway.simulators.github_metadata import GitHubMetadataApi, rate_limit_fault
from keyway.simulators.github_oauth import GitHubOAuth, github_policy
from keyway.simulators.hooks import HookStore
from keyway.simulators.oauth_model import Account
from keyway.simulators.ratelimit import RateLimiter
from keyway.simulators.server import Route, Simulator
from keyway.simulators.wire import json_response

DEFAULT_USER = Account("octocat", 583231, "The Octocat")
SECOND_USER = Account("hubot", 7_654_321, "Hubot")  # a second user who can sign in
HOURLY_LIMIT = 5000  # authenticated user, REST "core" resource
GRAPHQL_PATH = "/api/graphql"  # where a client of api_url (…/api/v3) sends GraphQL
GRAPHQL_HOURLY_POINTS = 5000  # authenticated user, GraphQL "graphql" resource (points)


class GitHubSimulator(ActivityKnobs, Simulator):
    """A GitHub (github.com / Enterprise Server) stand-in.

    ``expiring_tokens=True`` models a GitHub App's user-to-server tokens (8-hour ``ghu_``
    access token, single-use rotating 6-month ``ghr_`` refresh token); False models an OAuth
    App (``gho_`` tokens that never expire, no refresh token). ``rate_limit`` is the hourly
    budget per user; ``graphql_rate_limit`` the hourly GraphQL points per user (a separate
    meter, :mod:`keyway.simulators.github_graphql`); ``clock`` (epoch seconds) drives code,
    token and rate-limit expiry; ``on_issue`` sees every token issued (e.g. the leak guard's
    ``track``). ``content_limits``: GitHub's secondary limit on content creation, 80 comments
    a minute and 500 an hour per user (:mod:`keyway.simulators.github_content`). ``apps``:
    GitHub App installations and their tokens
    (:mod:`keyway.simulators.github_app`; ``/installation/repositories`` and the install page
    in :mod:`keyway.simulators.github_installation`). What each kind of token may call and see
    is :mod:`keyway.simulators.github_tokens`'s table.
    """

    def __init__(self, *, expiring_tokens: bool = True, port: int = 0,
                 rate_limit: int = HOURLY_LIMIT, clock: Callable[[], float] = time.time,
                 on_issue: Callable[[str], object] | None = None,
                 graphql_rate_limit: int = GRAPHQL_HOURLY_POINTS) -> None:
        self.data = GitHubData()
        self.apps = GitHubApps(self.data)
        self.activity = GitHubActivity(self.data, clock)
        self.hooks = HookStore(first_id=480_000_000)
        self.delivery_log = DeliveryLog(clock, first_id=90_000_000_001)
        self.deliveries = GitHubDeliveries(self.apps, self.hooks, self.delivery_log)
        self.deletion_deliveries: list = []  # answers to the webhooks ``delete`` sent
        self._new_owners: dict[str, dict[str, Any]] = {}  # accounts ``transfer`` moved to
        self.graphql_limiter = RateLimiter(graphql_rate_limit, 3600, clock)
        self.content_limits = ContentLimits(clock)  # 80/min, 500/h comments per user
        super().__init__(policy=github_policy(expiring_tokens), account=DEFAULT_USER,
                         rate_limit=rate_limit, rate_window=3600, port=port, clock=clock,
                         on_issue=on_issue, others=(SECOND_USER,))
        self.apps.attach(self.oauth)

    def routes(self) -> list[Route]:
        self._graphql = GitHubGraphQL(self.oauth, self.activity, self.graphql_limiter)
        return [*GitHubOAuth(self.oauth).routes(),
                *GitHubApi(self.oauth, self.rate_limit, self.data).routes(),
                *self.apps.routes(),
                *GitHubInstallationApi(self.apps, self.oauth, self.rate_limit,
                                       self.data).routes(),
                *self._metadata_api().routes(),
                *GitHubForbiddenApi(self.oauth, self.rate_limit, self.data,
                                    self.activity).routes(),
                *GitHubHooksApi(self.oauth, self.rate_limit, self.data, self.activity,
                                self.hooks, self.deliveries).routes(),
                *self.deliveries.routes(),
                *self._graphql.routes()]

    def _metadata_api(self) -> GitHubMetadataApi:
        api = GitHubMetadataApi(self.oauth, self.rate_limit, self.data, self.activity)
        api.content = self.content_limits
        return api

    def not_found(self, request: Request) -> Response:
        return json_response({"message": "Not Found", "documentation_url": DOCS,
                              "status": "404"}, 404)

    @property
    def api_url(self) -> str:
        """The REST API base URL: ``<url>/api/v3``."""
        return self.url + API

    @property
    def oauth_url(self) -> str:
        """The OAuth base URL (``/login/oauth/...`` lives under it)."""
        return self.url

    @property
    def expiring_tokens(self) -> bool:
        return self.oauth.policy.refresh_token is not None

    @expiring_tokens.setter
    def expiring_tokens(self, value: bool) -> None:
        """Switch between GitHub App (expiring) and OAuth App tokens for new grants."""
        self.oauth.policy = github_policy(value)

    def seed(self, org: str, repos: int) -> list[dict[str, Any]]:
        """Create organisation ``org`` (once) with ``repos`` more repositories."""
        return self.data.seed(org, repos)

    # ---- activity (github_data; seed_activity, touch, delete, deleted: ActivityKnobs) -------
    def add_review(self, full_name: str, number: int, state: str = "APPROVED") -> dict | None:
        """A new review of pull request ``number`` in ``full_name``, submitted now (the pull
        request's ``updated_at`` moves to now too); None if there is no such pull request."""
        owner, _, name = full_name.partition("/")
        act = self.activity.find(owner, name)
        return None if act is None else self.activity.add_review(act, number, state)

    # ---- GraphQL: its own points budget and a record of the queries ------------------------
    def graphql_points_used(self, user_id: object) -> int:
        """GraphQL points ``user_id`` has spent in the current hour."""
        return self.graphql_limiter.peek(user_id).used

    def set_graphql_remaining(self, user_id: object, remaining: int) -> None:
        """Knob: leave ``remaining`` GraphQL points in ``user_id``'s current hour."""
        self.graphql_limiter.set_remaining(user_id, remaining)

    @property
    def graphql_queries(self) -> list[dict[str, Any]]:
        """Every parsed (keyway) GraphQL query so far: operation name and variables."""
        return list(self._graphql.queries)

    # ---- repository webhooks (github_hooks) -------------------------------------------------
    def deny_admin(self, full_name: str) -> None:
        """The signed-in user no longer administers ``full_name``: its hook endpoints 404."""
        self.data.admin_denied.add(full_name.lower())

    def delete(self, kind: str, id: int) -> bool:
        """Remove an item (recorded in :attr:`deleted`) and send the repository's hooks the
        webhook GitHub sends for that deletion (:mod:`.github_deletions`), if any."""
        with self.activity.lock:
            event = deletion_event(self.activity, kind, id, f"{self.url}/")
            done = self.activity.delete(kind, id)
        if done and event is not None:
            self.deletion_deliveries += self.deliver(*event)
        return done

    def transfer(self, full_name: str, new_owner: str) -> bool:
        """Transfer ``full_name`` to ``new_owner``, an account none of the simulator's users
        belongs to: the repository's hooks get ``repository`` ``transferred`` (through the
        delivery log, so the drop knob applies), then the repository, its activity and its
        hooks (which go with it) leave everything the users' tokens reach: no id of its items
        (a pull request's node, ``touch``, ``delete``) finds them any more. The new owner is an
        organization with an id of its own (the same one for every move to it). False if
        unknown."""
        with self.activity.lock:
            ident = 9_500_000 + len(self._new_owners) + 1
            owner = self._new_owners.setdefault(new_owner.lower(), {
                "login": new_owner, "id": ident, "type": "Organization", "site_admin": False,
                "node_id": node_id("012", "Organization", ident)})
            event = transfer_event(self.activity, full_name, owner, f"{self.url}/")
        if event is None:
            return False
        self.deletion_deliveries += self.deliver(*event)
        key = full_name.lower()
        with self.activity.lock:
            self.data.remove(key)
            self.activity.forget_repository(key)
        for hook in self.hooks.list(key):
            self.hooks.remove(key, hook.id)
        return True

    def deliver(self, full_name: str, event: str, payload: dict[str, Any]) -> list:
        """POST ``event`` to every matching hook on ``full_name``, signed with its secret
        (real HTTP to the hook's URL, through :attr:`delivery_log`); returns the ``requests``
        answers (None for a delivery the drop knob lost)."""
        return [d.answer for d in self.deliveries.deliver_repo(full_name, event, payload)]

    # ---- the App's webhook and the delivery log (github_deliveries, delivery_log) -----------
    def set_app_webhook(self, app_id: str, url: str, secret: str) -> None:
        """The registered app ``app_id``'s webhook: GitHub sends its events to ``url``."""
        self.deliveries.app_hook = AppWebhook(app_id, url, secret)

    def deliver_app(self, event: str, payload: dict[str, Any]):
        """Send ``event`` to the App's webhook; the logged :class:`~.delivery_log.Delivery`."""
        return self.deliveries.deliver_app(event, payload)

    def drop_deliveries(self, *, next_n: int = 0, fraction: float = 0.0, seed: int = 0) -> None:
        """Knob: lose the next ``next_n`` delivery attempts, and then each with probability
        ``fraction`` (seeded); lost attempts are logged as failed."""
        self.delivery_log.drop_fraction(fraction, seed)
        self.delivery_log.drop_next(next_n)

    def rate_limit_next(self, status: int = 403, retry_after: int = 60, count: int = 1,
                        secondary: bool = False) -> None:
        """Refuse the next ``count`` API requests as rate-limited (``status`` 403 or 429,
        ``Retry-After: retry_after``): GitHub's secondary-limit answer when ``secondary``,
        else the primary one (remaining 0). Spends nothing."""
        self.queue_fault(rate_limit_fault(self.oauth, self.rate_limit, status, retry_after,
                                          count, secondary))

    def refuse_graphql(self, kind: str | None = "FORBIDDEN", count: int = 1_000_000) -> None:
        """Refuse the next ``count`` GraphQL queries as a whole, until :meth:`clear_faults`:
        HTTP 200 with one error of type ``kind`` and no data (``FORBIDDEN``, ``NOT_FOUND``),
        or, for ``kind=None``, HTTP 404 (GitHub Enterprise Server with GraphQL turned off)."""
        if kind is None:
            self.fail_next(404, count, path_prefix=GRAPHQL_PATH)
            return
        body = json.dumps({"data": None, "errors": [
            {"type": kind, "message": f"simulated {kind}"}]}).encode()
        self.fail_next(200, count, body=body, path_prefix=GRAPHQL_PATH)
