"""The GitLab simulator: gitlab.com's OAuth provider and REST API v4 on one loopback server.

Configure a client with the OAuth base URL ``sim.url`` (``/oauth/authorize``,
``/oauth/token``, ``/oauth/revoke``) and the API base URL ``sim.api_url``
(``<sim.url>/api/v4``) - the same layout as gitlab.com and self-managed GitLab::

    with GitLabSimulator() as sim:
        sim.register_client("app-id", "secret", ["http://127.0.0.1:8080/oauth-gitlab/callback"])
        sim.seed("acme", projects=250)

Wire formats are described in :mod:`keyway.simulators.gitlab_oauth` and
:mod:`keyway.simulators.gitlab_api`; the metadata endpoints a fetcher syncs (seeded with
:meth:`GitLabSimulator.seed_activity`) in :mod:`keyway.simulators.gitlab_metadata`, the
families it must never call in :mod:`keyway.simulators.gitlab_forbidden`, project hooks
(:attr:`GitLabSimulator.hooks`, :meth:`GitLabSimulator.deliver`) in
:mod:`keyway.simulators.gitlab_hooks`; GraphQL (``/api/graphql``, :attr:`GitLabSimulator.graphql`)
in :mod:`keyway.simulators.gitlab_graphql`. Every API route checks the token's scopes
(:data:`keyway.simulators.gitlab_api.SCOPES`); :meth:`mint_token` grants ``api`` unless told.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from keyway.simulators.activity_knobs import ActivityKnobs
from keyway.simulators.delivery_log import DeliveryLog
from keyway.simulators.gitlab_api import API, GitLabApi, GitLabData
from keyway.simulators.gitlab_data import GitLabActivity
from keyway.simulators.gitlab_forbidden import GitLabForbiddenApi
from keyway.simulators.gitlab_graphql import GitLabGraphQL
from keyway.simulators.gitlab_hooks import GitLabHooksApi
from keyway.simulators.gitlab_hooks import deliver as deliver_event
from keyway.simulators.gitlab_metadata import GitLabMetadataApi, rate_limit_fault
from keyway.simulators.gitlab_oauth import GitLabOAuth, gitlab_policy
from keyway.simulators.hooks import HookStore
from keyway.simulators.oauth_model import Account
from keyway.simulators.server import Route, Simulator
from keyway.simulators.wire import json_response

DEFAULT_USER = Account("jdoe", 4242, "Jane Doe")
SECOND_USER = Account("rsmith", 4343, "Riley Smith")  # a second user who can sign in
MINUTE_LIMIT = 2000  # gitlab.com authenticated API requests per minute


class GitLabSimulator(ActivityKnobs, Simulator):
    """A GitLab (gitlab.com / self-managed) stand-in.

    ``host`` is the loopback address it binds (another one than ``127.0.0.1`` stands for a
    self-managed GitLab with its own OAuth applications); ``rate_limit`` is the per-minute
    budget per user; ``clock`` (epoch seconds) drives code,
    token and rate-limit expiry; ``on_issue`` sees every token issued. The activity knobs
    (``seed_activity``, ``touch``, ``delete``, ``deleted``) come from
    :class:`~keyway.simulators.activity_knobs.ActivityKnobs`.
    """

    mint_scopes = ("api",)

    def __init__(self, *, port: int = 0, rate_limit: int = MINUTE_LIMIT,
                 clock: Callable[[], float] = time.time,
                 on_issue: Callable[[str], object] | None = None,
                 host: str = "127.0.0.1") -> None:
        self.data = GitLabData()
        self.activity = GitLabActivity(self.data, clock)
        self.hooks = HookStore(first_id=7_000_001)
        self.delivery_log = DeliveryLog(clock, first_id=3_100_001)
        self._graphql: GitLabGraphQL | None = None
        super().__init__(policy=gitlab_policy(), account=DEFAULT_USER, rate_limit=rate_limit,
                         rate_window=60, port=port, clock=clock, on_issue=on_issue,
                         others=(SECOND_USER,), host=host)

    def routes(self) -> list[Route]:
        self._graphql = GitLabGraphQL(self.oauth, self.rate_limit, self.data, self.activity)
        return [*GitLabOAuth(self.oauth).routes(), *self._graphql.routes(),
                *GitLabApi(self.oauth, self.rate_limit, self.data).routes(),
                *GitLabMetadataApi(self.oauth, self.rate_limit, self.data,
                                   self.activity).routes(),
                *GitLabForbiddenApi(self.oauth, self.rate_limit, self.data,
                                    self.activity).routes(),
                *GitLabHooksApi(self.oauth, self.rate_limit, self.data, self.activity,
                                self.hooks, self.delivery_log).routes()]

    def not_found(self, request: Request) -> Response:
        return json_response({"error": "404 Not Found"}, 404)

    @property
    def graphql(self) -> GitLabGraphQL:
        """``POST /api/graphql`` (:mod:`~keyway.simulators.gitlab_graphql`): its ``queries``,
        the fields its schema ``lacking``, ``enabled``."""
        assert self._graphql is not None
        return self._graphql

    @property
    def graphql_queries(self) -> list[dict[str, Any]]:
        """Each GraphQL query's operation name and variables, in order."""
        return self.graphql.queries

    @property
    def api_url(self) -> str:
        """The REST API base URL: ``<url>/api/v4``."""
        return self.url + API

    @property
    def oauth_url(self) -> str:
        """The OAuth base URL (``/oauth/...`` lives under it)."""
        return self.url

    def set_user(self, username: str, id: int, name: str) -> None:
        """The signed-in user who approves every authorization request."""
        super().set_user(username, id, name)

    def seed(self, group: str, projects: int) -> list[dict[str, Any]]:
        """Create group ``group`` (once) with ``projects`` more projects."""
        return self.data.seed(group, projects)

    # ---- project hooks (gitlab_hooks) --------------------------------------------------------
    def deny_maintainer(self, project_id: int) -> None:
        """The signed-in user is no maintainer of ``project_id``: its hook endpoints 403."""
        self.data.maintainer_denied.add(project_id)

    def deliver(self, project_id: int, payload: dict[str, Any]) -> list:
        """POST ``payload`` (by its ``object_kind``) to every subscribed hook of the project,
        with the hook's secret token (real HTTP, through :attr:`delivery_log`); returns the
        ``requests`` answers (None for a delivery the drop knob lost)."""
        return [d.answer for d in deliver_event(self.hooks, self.delivery_log, project_id,
                                                payload, self.url)]

    def drop_deliveries(self, *, next_n: int = 0, fraction: float = 0.0, seed: int = 0) -> None:
        """Knob: lose the next ``next_n`` delivery attempts, and then each with probability
        ``fraction`` (seeded); lost attempts are logged as failed (``503``)."""
        self.delivery_log.drop_fraction(fraction, seed)
        self.delivery_log.drop_next(next_n)

    def rate_limit_next(self, status: int = 429, retry_after: int = 60, count: int = 1,
                        secondary: bool = False) -> None:
        """Refuse the next ``count`` API requests with GitLab's throttle answer (``status``,
        ``Retry-After: retry_after``). ``secondary`` is accepted for symmetry with GitHub;
        GitLab has one kind of limit. Spends nothing."""
        self.queue_fault(rate_limit_fault(self.oauth, self.rate_limit, status, retry_after,
                                          count))
