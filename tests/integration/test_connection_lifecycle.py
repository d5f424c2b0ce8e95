"""A connection's lifecycle through the real api and oauth-P functions against the provider
simulators: one account, one connection; re-authorization in place; disconnect and retention."""

from __future__ import annotations

import json

from keyway.simulators.oauth_model import Account
from tests.integration.conftest import query_of
from tests.integration.test_connect_flow import TENANT, authorize, connect, drain, finish
from tests.integration.test_connect_flow import github as github  # noqa: F401 - fixture
from tests.integration.test_connect_flow import gitlab as gitlab  # noqa: F401 - fixture

HUBOT = Account("hubot", 4242, "Hubot")


def reauthorize(stack, connection: str, token: str):
    response = stack.call("POST", f"/api/v1/connections/{connection}/reauthorize", token)
    return response.status_code, json.loads(response.get_data())


def test_connecting_an_account_already_connected_points_at_the_existing_connection(
        local_stack, gitlab):
    first, _ = connect(local_stack, "gitlab")
    token_before = local_stack.ports.vault.get("app_tokens", first["connection"])
    second, done = connect(local_stack, "gitlab")
    result = query_of(done.headers["Location"])
    assert (result["status"], result["reason"]) == ("error", "connection.duplicate_account")
    assert result["connection"] == first["connection"]
    assert local_stack.ports.business.get("connections", second["connection"]) is None
    assert local_stack.ports.vault.get("app_tokens", second["connection"]) is None
    assert local_stack.ports.vault.get("app_tokens", first["connection"]) == token_before
    revoked = [r for r in gitlab.requests_log if r.path.endswith("/oauth/revoke")]
    assert len(revoked) == 1  # the unused token only (GitLab revokes one token per call)
    other, done = connect(local_stack, "gitlab", tenant="tenant-b")  # another tenant: its own
    assert query_of(done.headers["Location"])["status"] == "connected"


def test_reauthorize_replaces_the_token_of_the_same_connection(local_stack, github):
    started, _ = connect(local_stack, "github")
    connection = started["connection"]
    drain(local_stack, "sync-requests-github")
    store = local_stack.ports.business
    created_at = store.get("connections", connection)["created_at"]
    token_before = local_stack.ports.vault.get("app_tokens", connection)
    store.put("connections", connection, {**store.get("connections", connection),
                                          "status": "needs_reauth",
                                          "status_reason": "provider.token_rejected"})
    admin = local_stack.token(TENANT, "admin-1", "admin")
    code, again = reauthorize(local_stack, connection, admin)
    assert code == 201 and again["connection"] == connection
    provider_url = local_stack.through_start(again["authorize_url"])
    done = finish(local_stack, "github", authorize(provider_url))
    result = query_of(done.headers["Location"])
    assert (result["status"], result["connection"]) == ("connected", connection)
    record = store.get("connections", connection)
    assert record["status"] == "active" and record["status_reason"] is None
    assert record["created_at"] == created_at  # the same connection, not a new one
    assert local_stack.ports.vault.get("app_tokens", connection) != token_before
    [asked] = drain(local_stack, "sync-requests-github")
    assert json.loads(asked.data)["reason"] == "reauthorized"
    assert len(store.query("connections")) == 1


def test_reauthorize_with_another_account_is_refused_and_keeps_the_old_token(
        local_stack, github):
    started, _ = connect(local_stack, "github")
    connection = started["connection"]
    before = local_stack.ports.vault.get("app_tokens", connection)
    admin = local_stack.token(TENANT, "admin-1", "admin")
    _, again = reauthorize(local_stack, connection, admin)
    provider_url = local_stack.through_start(again["authorize_url"])
    github.oauth.set_account(HUBOT)  # another person consents
    done = finish(local_stack, "github", authorize(provider_url))
    result = query_of(done.headers["Location"])
    assert (result["status"], result["reason"]) == (
        "error", "connection.reauthorize_other_account")
    assert local_stack.ports.vault.get("app_tokens", connection) == before


def test_reauthorize_is_for_admins_of_the_tenant_and_live_connections(local_stack, github):
    started, _ = connect(local_stack, "github")
    connection = started["connection"]
    member = local_stack.token(TENANT, "member-1", "member")
    assert reauthorize(local_stack, connection, member)[0] == 403
    other = local_stack.token("tenant-b", "admin-9", "admin")
    assert reauthorize(local_stack, connection, other)[0] == 404
    store = local_stack.ports.business
    store.put("connections", connection, {**store.get("connections", connection),
                                          "status": "disconnected"})
    code, problem = reauthorize(local_stack, connection, local_stack.token(TENANT, "a", "admin"))
    assert code == 409 and problem["code"] == "api.connection_inactive"


def _disconnect(stack, tenant: str, connection: str) -> None:
    from shared.entry import event_function
    from shared.messages import decode
    from shared.routing import handlers_for
    from tests.unit.test_entry import pubsub_event

    admin = stack.token(tenant, "admin-1", "admin")
    assert stack.call("DELETE", f"/api/v1/connections/{connection}", admin).status_code == 202
    receive = event_function("vault-github", handlers_for("vault-github"))
    for m in drain(stack, "connection-control-github"):
        inbound = decode("connection-control-github", m.data, m.attributes, m.message_id)
        receive(pubsub_event("connection-control-github", inbound.sender, inbound.type,
                             inbound.body))


def _token_works(github, token: str) -> bool:
    import requests

    return requests.get(f"{github.api_url}/user", timeout=10,
                        headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_disconnecting_one_connection_never_revokes_another_connections_grant(
        local_stack, github):
    """GitHub revokes per grant: the same account connected in two tenants shares one. The
    first disconnect deletes its token but leaves the grant; the last one revokes it."""
    from shared.vault import handlers as vault_handlers

    mine, _ = connect(local_stack, "github")
    theirs, _ = connect(local_stack, "github", tenant="tenant-b")
    vault = vault_handlers.service("github", local_stack.ports)
    token_b = vault.codec.decode("app_tokens", theirs["connection"], local_stack.ports.vault.get(
        "app_tokens", theirs["connection"]), 0).access_token
    _disconnect(local_stack, TENANT, mine["connection"])
    assert local_stack.ports.vault.get("app_tokens", mine["connection"]) is None
    assert _token_works(github, token_b)  # tenant-b's connection still reads
    outcomes = [e.data.get("outcome") for e in local_stack.ports.business.query("audit_entries")]
    assert "kept_shared_grant" in outcomes
    _disconnect(local_stack, "tenant-b", theirs["connection"])
    assert not _token_works(github, token_b)  # the last one out revokes the grant


def test_disconnected_data_is_kept_for_the_retention_then_purged(local_stack, github):
    from datetime import timedelta

    from shared.records import store as records
    from shared.records.model import record_id
    from shared.scheduler import purge

    started, _ = connect(local_stack, "github")
    connection, store = started["connection"], local_stack.ports.business
    rid = record_id(TENANT, "github", "issues", "r#1")
    records.upsert(store, {"id": rid, "kind": "issues", "tenant": TENANT, "provider": "github",
                           "connection": connection, "external_id": "1", "repository": "r",
                           "url": None, "created_at": None,
                           "updated_at": "2026-01-01T00:00:00.000000Z", "deleted": False,
                           "number": 1, "title": "t", "state": "open"})
    admin = local_stack.token(TENANT, "admin-1", "admin")
    assert local_stack.call("DELETE", f"/api/v1/connections/{connection}?purge=maybe",
                            admin).status_code == 400
    assert store.get("connections", connection)["status"] == "active"  # nothing changed
    _disconnect(local_stack, TENANT, connection)
    record = store.get("connections", connection)
    now = local_stack.ports.clock.now()
    assert record["purge_at"] > str(now + timedelta(days=29))[:10]  # 30 days by default
    shown = json.loads(local_stack.call("GET", "/api/v1/issues", admin).get_data())["items"]
    assert [i["connection_ended_at"] for i in shown] == [record["disconnected_at"]]
    assert purge.sweep(local_stack.ports, now) == 0  # not due yet: kept
    again = local_stack.call("DELETE", f"/api/v1/connections/{connection}?purge=true", admin)
    assert again.status_code == 202 and json.loads(again.get_data())["status"] == "disconnected"
    assert purge.sweep(local_stack.ports, local_stack.ports.clock.now()) >= 1
    assert store.get("issues", rid) is None
    assert store.get("connections", connection)["purged_at"]
    assert purge.sweep(local_stack.ports, local_stack.ports.clock.now()) == 0


def test_the_sweep_spends_a_bounded_budget_per_tick(local_stack, github):
    from shared.records import store as records
    from shared.records.model import record_id
    from shared.scheduler import purge

    store = local_stack.ports.business
    store.put("connections", "c-old", {"tenant": TENANT, "provider": "github",
                                       "status": "disconnected",
                                       "purge_at": "2000-01-01T00:00:00.000000Z"})
    for n in range(5):
        records.upsert(store, {"id": record_id(TENANT, "github", "issues", f"r#{n}"),
                               "kind": "issues", "tenant": TENANT, "provider": "github",
                               "connection": "c-old", "external_id": str(n), "repository": "r",
                               "url": None, "created_at": None,
                               "updated_at": "2026-01-01T00:00:00.000000Z", "deleted": False,
                               "number": n, "title": "t", "state": "open"})
    now = local_stack.ports.clock.now()
    assert purge.sweep(local_stack.ports, now, budget=3) == 3
    assert not store.get("connections", "c-old").get("purged_at")
    assert purge.sweep(local_stack.ports, now, budget=3) == 2
    assert store.get("connections", "c-old")["purged_at"]


def _deliver_control(stack, provider: str) -> None:
    from shared.entry import event_function
    from shared.messages import decode
    from shared.routing import handlers_for
    from tests.unit.test_entry import pubsub_event

    receive = event_function(f"vault-{provider}", handlers_for(f"vault-{provider}"))
    topic = f"connection-control-{provider}"
    for m in drain(stack, topic):
        inbound = decode(topic, m.data, m.attributes, m.message_id)
        receive(pubsub_event(topic, inbound.sender, inbound.type, inbound.body))


def _link(stack, user: str) -> None:
    from tests.integration.test_connect_flow import begin

    token = stack.token(TENANT, user, "member")
    started = begin(stack, "github", token, "/api/v1/identities")
    done = finish(stack, "github", authorize(started["provider_url"]))
    assert query_of(done.headers["Location"])["status"] == "connected"


def test_a_member_unlinks_their_identity_and_its_token_is_gone(local_stack, github):
    from shared import ids

    _link(local_stack, "member-1")
    key = ids.identity_id("github", TENANT, "member-1")
    assert local_stack.ports.vault.get("personal_tokens", key) is not None
    other = local_stack.token(TENANT, "member-2", "member")
    assert local_stack.call("DELETE", "/api/v1/identities/github?user=member-1",
                            other).status_code == 403
    stranger = local_stack.token("tenant-b", "member-1", "member")
    assert local_stack.call("DELETE", "/api/v1/identities/github",
                            stranger).status_code == 404
    assert local_stack.call("DELETE", "/api/v1/identities/nope",
                            stranger).status_code == 404
    mine = local_stack.token(TENANT, "member-1", "member")
    answer = local_stack.call("DELETE", "/api/v1/identities/github", mine)
    assert answer.status_code == 202 and json.loads(answer.get_data())["status"] == "unlinking"
    _deliver_control(local_stack, "github")
    assert local_stack.ports.vault.get("personal_tokens", key) is None
    assert local_stack.ports.business.get("identities", key) is None
    listed = json.loads(local_stack.call("GET", "/api/v1/identities", mine).get_data())
    assert listed["items"] == []
    revoked = [r for r in github.requests_log if r.method == "DELETE"
               and "/applications/" in r.path]
    assert revoked  # nothing else used that grant: revoked at GitHub


def test_unlinking_keeps_a_grant_an_app_connection_of_the_same_account_uses(
        local_stack, github):
    """The admin who connected GitHub links the same account as their identity: unlinking it
    must not revoke the grant under the connection."""
    started, _ = connect(local_stack, "github")
    _link(local_stack, "admin-1")
    mine = local_stack.token(TENANT, "admin-1", "member")
    assert local_stack.call("DELETE", "/api/v1/identities/github", mine).status_code == 202
    _deliver_control(local_stack, "github")
    assert not [r for r in github.requests_log if r.method == "DELETE"]
    outcomes = [e.data.get("outcome") for e in local_stack.ports.business.query("audit_entries")
                if e.data.get("event") == "unlink"]
    assert outcomes == ["kept_shared_grant"]
    assert local_stack.ports.vault.get("app_tokens", started["connection"]) is not None


def test_purged_connections_never_crowd_out_due_ones(local_stack, github):
    """The sweep reads at most 20 due connections a tick: purged ones must not stay due."""
    from shared.scheduler import purge

    store = local_stack.ports.business
    for n in range(25):
        store.put("connections", f"c-{n:02d}", {"tenant": TENANT, "provider": "github",
                                                "status": "disconnected",
                                                "purge_at": "2000-01-01T00:00:00.000000Z"})
    now = local_stack.ports.clock.now()
    purge.sweep(local_stack.ports, now)
    purge.sweep(local_stack.ports, now)
    assert all(store.get("connections", f"c-{n:02d}").get("purged_at") for n in range(25))
    assert all("purge_at" not in store.get("connections", f"c-{n:02d}") for n in range(25))
