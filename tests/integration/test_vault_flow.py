"""vault-P end to end through its entry point: a sync request becomes a sealed fetch job that
only fetch-P can open; an action request for a user without an identity fails the action."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from keyway.firststart import ensure_local_state
from shared import bootstrap, messages, policy
from shared.actions.model import doc_id
from shared.entry import event_function
from shared.routing import handlers_for
from shared.topology import subscription_specs
from shared.vault import handlers as vault_handlers
from shared.vault.receive import open_pushed_token
from shared.vault.tokens import TokenSet
from tests.fakes.oauth_token_server import OAuthTokenServer
from tests.unit.test_entry import pubsub_event


@pytest.fixture
def stack(tmp_path, monkeypatch):
    server = OAuthTokenServer().start()
    monkeypatch.setenv("KEYWAY_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("KEYWAY_GITHUB_CLIENT_ID", server.client_id)
    monkeypatch.setenv("KEYWAY_GITHUB_OAUTH_URL", server.url)
    monkeypatch.setenv("KEYWAY_SECRET_GITHUB_CLIENT_SECRET", server.client_secret)
    monkeypatch.delenv("KEYWAY_BACKEND", raising=False)
    bootstrap.config.cache_clear()
    ports = bootstrap.ports()
    ensure_local_state(ports)
    for spec in subscription_specs():
        ports.bus.ensure_subscription(spec)
    yield ports, server
    server.stop()
    vault_handlers._SERVICES.clear()
    bootstrap._cached.cache_clear()
    bootstrap.config.cache_clear()


def _pull_one(ports, topic: str) -> messages.Inbound:
    got: list = []
    ports.bus.pull(policy.subscription_name(topic), got.append, max_messages=5)
    assert len(got) == 1, got
    m = got[0]
    return messages.decode(topic, m.data, m.attributes, m.message_id)


def test_a_sync_request_reaches_fetch_as_a_sealed_envelope(stack):
    ports, server = stack
    token = TokenSet("gho_" + "S" * 36, server.issue_refresh_token(),
                     datetime.now(UTC) + timedelta(minutes=1), ("repo",))
    vault_handlers.service("github", ports).store_app_token("t-1", "conn-1", "admin", token)
    receive = event_function("vault-github", handlers_for("vault-github"))
    receive(pubsub_event("sync-requests-github", "scheduler", "sync.requested",
                         {"tenant": "t-1", "connection": "conn-1", "scope": "all"}))
    job = _pull_one(ports, "fetch-jobs-github")
    assert job.type == "fetch.job" and job.sender == "vault-github"
    raw = json.dumps(job.body)
    assert "gho_" not in raw and server.issued_access[0] not in raw  # refreshed, sealed
    claims, opened = open_pushed_token(ports, "fetch-github", job.body["envelope"], "fetch")
    assert opened == server.issued_access[0]  # the token was expiring: refreshed first
    assert claims.connection == "conn-1" and claims.audience == "fetch-github"


def test_an_action_for_a_user_without_an_identity_fails_the_action(stack):
    ports, server = stack
    ports.business.put("actions", doc_id("t-1", "act-1"), {
        "tenant": "t-1", "user": "member-1", "status": "pending", "provider": "github",
        "connection": "conn-1"})
    receive = event_function("vault-github", handlers_for("vault-github"))
    receive(pubsub_event("action-requests-github", "api", "action.requested",
                         {"tenant": "t-1", "user": "member-1", "action_id": "act-1",
                          "connection": "conn-1", "action": {"kind": "comment"}}))
    action = ports.business.get("actions", doc_id("t-1", "act-1"))
    assert action["status"] == "failed" and action["reason"] == "no_personal_token"
    got: list = []
    ports.bus.pull(policy.subscription_name("action-jobs-github"), got.append)
    assert got == []


def test_a_disconnect_from_the_api_deletes_the_vault_record(stack):
    ports, server = stack
    token = TokenSet("gho_" + "D" * 36, server.issue_refresh_token(),
                     datetime.now(UTC) + timedelta(hours=8), ("repo",))
    vault_handlers.service("github", ports).store_app_token("t-1", "conn-9", "admin", token)
    receive = event_function("vault-github", handlers_for("vault-github"))
    receive(pubsub_event("connection-control-github", "api", "connection.disconnect",
                         {"tenant": "t-1", "connection": "conn-9"}))
    assert ports.vault.get("app_tokens", "conn-9") is None


def test_a_disconnect_on_sync_requests_is_refused_even_claiming_to_be_the_api(stack, caplog):
    """Every syncer may publish on sync-requests-P, and ``sender`` is whatever the publisher
    wrote: a disconnect arriving there is forged by definition. vault-P refuses it with a
    stable key and the connection keeps its token and its status."""
    ports, server = stack
    token = TokenSet("gho_" + "F" * 36, server.issue_refresh_token(),
                     datetime.now(UTC) + timedelta(hours=8), ("repo",))
    vault_handlers.service("github", ports).store_app_token("t-1", "conn-8", "admin", token)
    ports.business.put("connections", "conn-8", {"tenant": "t-1", "provider": "github",
                                                 "status": "active"})
    stored = ports.vault.get("app_tokens", "conn-8")
    receive = event_function("vault-github", handlers_for("vault-github"))
    with caplog.at_level(logging.INFO):
        receive(pubsub_event("sync-requests-github", "api", "connection.disconnect",
                             {"tenant": "t-1", "connection": "conn-8"}))
    assert "policy.delivery_refused" in caplog.messages
    assert "message.handled" not in caplog.messages
    assert ports.vault.get("app_tokens", "conn-8") == stored
    assert ports.business.get("connections", "conn-8")["status"] == "active"
    assert server.revoked == []


def test_the_vault_releases_a_personal_token_only_for_the_users_own_pending_action(stack):
    ports, server = stack
    token = TokenSet("gho_" + "B" * 36, server.issue_refresh_token(),
                     datetime.now(UTC) + timedelta(hours=8), ("repo",))
    vault_handlers.service("github", ports).store_personal_token("t-1", "bob", token)
    ports.business.put("actions", doc_id("t-1", "act-9"), {
        "tenant": "t-1", "user": "alice", "status": "pending", "provider": "github",
        "connection": "conn-1"})
    receive = event_function("vault-github", handlers_for("vault-github"))
    for user in ("bob", "alice"):  # bob is not the author; alice has no token → both refused
        receive(pubsub_event("action-requests-github", "api", "action.requested",
                             {"tenant": "t-1", "user": user, "action_id": "act-9",
                              "connection": "conn-1", "action": {"kind": "comment"}}))
    got: list = []
    ports.bus.pull(policy.subscription_name("action-jobs-github"), got.append)
    assert got == []
    outcomes = [s.data["outcome"] for s in ports.business.query("audit_entries")]
    assert "refused:vault.action_mismatch" in outcomes
