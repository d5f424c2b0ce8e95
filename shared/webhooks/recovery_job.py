"""``deliveries.recover`` in ``vault-P``: which delivery logs to read, with which credential.

The scheduler (:mod:`shared.scheduler.deliveries`) asks on ``delivery-recovery-P`` — a topic
only it may publish to — for one target:

* ``{"target": "app"}`` (GitHub): the App's own webhook, read with the App's JWT, which only
  this component can mint (secret ``github-app-private-key``; no App configured → nothing);
* ``{"target": "connection", "tenant", "connection"}``: the hooks that connection registered
  (``webhook_registrations`` records in ``active``): GitHub repository hooks, GitLab project
  hooks, Jira's dynamic webhook (the app's failed deliveries on the connection's site), read
  with the connection's app token, refreshed by the vault if needed, on the connection's own
  API base. A repository or project hook whose log answers 404 (the hook was deleted, or the
  repository left the token's admin reach) is marked ``unavailable``
  (``webhooks.hook_unreachable``): no request for it each round, and the registration pass
  creates or adopts it again after a day.

Every credential stays in this process and goes only to the provider's configured API host
through :class:`~shared.fetch.client.ProviderClient` (purpose ``recover``); each connection's
requests lease from its token's rate budget (the same one its syncs spend), the App's from a
budget of its own (``github:app``).

Idempotent: reading a log twice costs requests, never a second application
(:mod:`shared.webhooks.recovery`). A request older than :data:`STALE_AFTER` is acknowledged
without work (a newer one follows); a connection not active, gone or another tenant's → nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from shared.clock import parse_iso
from shared.errors import InvalidInput
from shared.fetch.budget import TokenBudget, budget_key
from shared.fetch.client import ProviderClient, connection_api_base, shared_session
from shared.log import get_logger
from shared.ports import Ports
from shared.providers import registry
from shared.webhooks import hooks, recovery
from shared.webhooks.recovery_sources import (
    APP_LIST,
    REPO_LIST,
    GitHubHookLog,
    GitLabHookEvents,
    JiraFailedLog,
)

STALE_AFTER = timedelta(hours=1)
APP_SOURCE = "github:app"
log = get_logger("keyway.webhooks.recovery")


def recover(provider: str, ports: Ports, body: dict[str, Any],
            token_of: Callable[[str], str]) -> list[recovery.Outcome]:
    """Handle one ``deliveries.recover`` (``token_of(connection)``: its fresh app token)."""
    requested = body.get("requested_at")
    if isinstance(requested, str) and ports.clock.now() - parse_iso(requested) > STALE_AFTER:
        log.info("deliveries.stale_request", extra={"fields": {"provider": provider}})
        return []
    target = body.get("target")
    if target == "app" and provider == "github":
        return recovery.run_all(ports, _app_sources(ports))
    tenant, connection = body.get("tenant"), body.get("connection")
    if target != "connection" or not isinstance(tenant, str) or not isinstance(connection, str):
        raise InvalidInput("a recovery request names an app or a connection",
                           key="deliveries.bad_message")
    record = ports.business.get("connections", connection)
    if (record is None or record.get("tenant") != tenant or record.get("provider") != provider
            or record.get("status") != "active"):
        return []
    live = [r for r in hooks.for_connection(ports.business, connection).values()
            if r.get("status") == "active" and r.get("tenant") == tenant]
    if not live:
        return []
    spec = registry.get(provider)
    client = ProviderClient(spec, connection_api_base(spec, record), token_of(connection),
                            shared_session(), ports.clock,
                            TokenBudget(ports.business, ports.clock,
                                        budget_key(provider, connection)),
                            purpose="recover", max_attempts=2)
    sources = _connection_sources(provider, client, connection, live)
    outcomes = recovery.run_all(ports, sources)
    for source, outcome in zip(sources, outcomes, strict=True):
        if outcome.gone and isinstance(source, GitHubHookLog | GitLabHookEvents) \
                and source.registration:
            repository, hook_id = source.registration
            if hooks.mark_unreachable(ports, connection, repository, hook_id):
                log.warning("webhooks.hook_unreachable", extra={"fields": {
                    "provider": provider, "connection": connection, "hook": hook_id}})
    return outcomes


def _connection_sources(provider: str, client: ProviderClient, connection: str,
                        live: list[dict[str, Any]]) -> list[recovery.Source]:
    if provider == "jira":
        return [JiraFailedLog(client, f"jira:{connection}:site") for r in live
                if (r.get("target") or {}) == {}][:1]
    hooked = [r for r in live if r.get("hook_id") and isinstance(r.get("target"), dict)]
    if provider == "gitlab":
        return [GitLabHookEvents(client, f"gitlab:{connection}:{r['hook_id']}", connection,
                                 {**r["target"], "hook_id": str(r["hook_id"])},
                                 registration=(r["repository"], str(r["hook_id"])))
                for r in hooked]
    if provider != "github":
        return []  # Bitbucket: no delivery log keyway can read (docs/WEBHOOKS.md)
    return [GitHubHookLog(client, f"github:{connection}:{r['hook_id']}", connection, REPO_LIST,
                          {**r["target"], "hook_id": str(r["hook_id"])},
                          registration=(r["repository"], str(r["hook_id"])))
            for r in hooked]


def _app_sources(ports: Ports) -> list[recovery.Source]:
    """The App's webhook log, when an App is configured."""
    from shared.vault.github_app import app_jwt, load_app_credentials

    credentials = load_app_credentials(ports.secrets, os.environ)
    if credentials is None:
        return []
    spec = registry.get("github")
    assert spec.github_app is not None
    assertion = app_jwt(credentials, ports.clock.now(), spec.github_app.jwt_ttl_seconds)
    client = ProviderClient(spec, registry.api_base_url(spec, os.environ, None), assertion,
                            shared_session(), ports.clock,
                            TokenBudget(ports.business, ports.clock,
                                        budget_key("github", "app")),
                            purpose="recover", max_attempts=2)
    return [GitHubHookLog(client, APP_SOURCE, None, APP_LIST, {})]
