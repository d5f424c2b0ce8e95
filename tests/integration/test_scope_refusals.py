"""Token scopes end to end, for GitLab, Jira and Bitbucket: an admin connects through the real
OAuth flow with exactly the scopes of ``providers.json`` and the scheduled path syncs (the
simulators now check every endpoint's scope); a token that lacks a scope the sync needs ends
the sync ``failed`` with ``provider.insufficient_scope``, and nothing stored is lost or
overwritten."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from keyway.simulators import BitbucketSimulator, GitLabSimulator, JiraSimulator
from shared.providers import registry
from shared.vault import handlers as vault_handlers
from shared.vault.tokens import TokenSet
from tests.integration.conftest import query_of, redirect_uri
from tests.integration.test_connect_flow import authorize, begin, finish
from tests.integration.test_fetch_flow import deliver

TENANT = "tenant-a"
SIMULATORS = {"gitlab": GitLabSimulator, "jira": JiraSimulator, "bitbucket": BitbucketSimulator}
# a scope each provider's sync needs, taken away (Bitbucket: the consumer's "Issues" unticked)
NARROW = {"gitlab": ("read_user",), "jira": ("read:jira-user", "offline_access"),
          "bitbucket": ("account", "pullrequest")}
KINDS = ("repositories", "pull_requests", "issues", "comments")


@pytest.fixture(params=sorted(SIMULATORS))
def connected(request, local_stack, monkeypatch, leak_guard):
    """A connection made through the provider's OAuth flow and synced once."""
    provider = request.param
    sim = SIMULATORS[provider](on_issue=leak_guard.track).start()
    pulls = {} if provider == "jira" else {"prs": 6}  # Jira has no pull requests
    sim.seed_activity("acme", repos=2, issues=6, comments=10, **pulls)
    secret = leak_guard.track(f"{provider}-client-secret-1")
    if provider == "bitbucket":  # the consumer is ticked with what providers.json asks of it
        scopes = registry.get(provider).oauth.scopes
        sim.register_client(f"{provider}-client", secret, [redirect_uri(provider)],
                            scopes=tuple(dict.fromkeys((*scopes["app"], *scopes["personal"]))))
    else:
        sim.register_client(f"{provider}-client", secret, [redirect_uri(provider)])
    local_stack.provider_config(monkeypatch, provider, f"{provider}-client", secret,
                                sim.oauth_url, sim.api_url)
    admin = local_stack.token(TENANT, "admin-1", "admin")
    started = begin(local_stack, provider, admin, register_webhooks=False)
    done = finish(local_stack, provider, authorize(started["provider_url"]))
    assert query_of(done.headers["Location"])["status"] == "connected"
    assert deliver(local_stack.ports, f"sync-requests-{provider}")
    assert deliver(local_stack.ports, f"fetch-jobs-{provider}")
    yield provider, sim, started["connection"], admin
    sim.stop()


def stored(ports) -> dict[str, dict]:
    return {s.id: s.data for kind in KINDS for s in ports.business.query(kind)}


def test_the_table_scopes_sync_every_endpoint_the_simulator_checks(local_stack, connected):
    provider, sim, connection, _ = connected
    status = local_stack.ports.business.get("sync_status", connection)
    assert status["state"] == "done", status
    [asked] = [r.query for r in sim.requests_log if (r.template or "").endswith("authorize")]
    if provider != "bitbucket":  # Bitbucket grants the consumer's permissions, not the ask
        assert asked["scope"].split() == list(registry.get(provider).oauth.scopes["app"])
    api = [r for r in sim.requests_log if r.headers.get("authorization") == "Bearer"]
    assert api and {r.status for r in api} <= {200, 304}  # no endpoint refused a scope
    assert stored(local_stack.ports)


def test_a_token_without_a_needed_scope_fails_the_sync_clearly_and_keeps_the_records(
        local_stack, connected):
    provider, sim, connection, admin = connected
    ports = local_stack.ports
    before = stored(ports)
    narrow = sim.mint_token(scopes=NARROW[provider])
    vault_handlers.service(provider, ports).store_app_token(TENANT, connection, "admin-1", TokenSet(
        narrow.access_token, narrow.refresh_token, datetime.now(UTC) + timedelta(hours=1),
        NARROW[provider]))
    sim.clear_log()
    answer = local_stack.call("POST", f"/api/v1/connections/{connection}/sync", admin)
    assert answer.status_code == 202
    assert deliver(ports, f"sync-requests-{provider}")
    assert deliver(ports, f"fetch-jobs-{provider}")
    status = ports.business.get("sync_status", connection)
    assert (status["state"], status["reason"]) == ("failed", "provider.insufficient_scope")
    assert status["consecutive_failures"] == 1
    refused = {r.status for r in sim.requests_log if r.status >= 400}
    assert refused == {401 if provider == "jira" else 403}
    assert stored(ports) == before  # nothing tombstoned, nothing overwritten
    record = ports.business.get("connections", connection)  # a new token must come: it says so
    assert (record["status"], record["status_reason"]) == (
        "needs_reauth", "provider.insufficient_scope")
    assert record["health"]["state"] == "needs_reauth"
    listed = json.loads(local_stack.call("GET", f"/api/v1/connections/{connection}",
                                         admin).get_data())
    assert listed["health"]["state"] == "needs_reauth"
    assert listed["health"]["reason"] == "provider.insufficient_scope"
    told = [e.data["event"] for e in ports.business.query("notification_outbox")
            if e.data["event"]["data"].get("connection") == connection]
    changed = [(e["data"]["to"], e["data"]["reason"]) for e in told
               if e["type"] == "connection.health_changed"]
    assert ("needs_reauth", "provider.insufficient_scope") in changed  # the product is told
    assert any(e["type"] == "sync.failed" and e["data"]["reason"] == "provider.insufficient_scope"
               for e in told)
