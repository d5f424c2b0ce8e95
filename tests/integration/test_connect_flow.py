"""Connecting GitHub and GitLab: the whole authorization-code + PKCE flow through the real
api and oauth-P functions against the provider simulators, and every way it must refuse."""

from __future__ import annotations

import json

import pytest
import requests

from keyway.simulators import GitHubSimulator, GitLabSimulator
from shared import policy
from tests.integration.conftest import query_of, redirect_uri

TENANT, OTHER = "tenant-a", "tenant-b"


@pytest.fixture
def github(local_stack, monkeypatch, leak_guard):
    sim = GitHubSimulator(on_issue=leak_guard.track).start()
    sim.register_client("gh-client", "gh-client-secret-1", [redirect_uri("github")])
    local_stack.provider_config(monkeypatch, "github", "gh-client", "gh-client-secret-1",
                                sim.oauth_url, sim.api_url)
    yield sim
    sim.stop()


@pytest.fixture
def gitlab(local_stack, monkeypatch, leak_guard):
    sim = GitLabSimulator(on_issue=leak_guard.track).start()
    sim.register_client("gl-client", "gl-client-secret-1", [redirect_uri("gitlab")])
    local_stack.provider_config(monkeypatch, "gitlab", "gl-client", "gl-client-secret-1",
                                sim.oauth_url, sim.api_url)
    yield sim
    sim.stop()


def begin(stack, provider: str, token: str, path: str = "/api/v1/connections", **body):
    """Ask the api for a flow, then take its start step in the stack's browser (an identity
    link posts the start form with ``token``); ``provider_url`` is where that step leads."""
    response = stack.call("POST", path, token, json={"provider": provider, **body})
    assert response.status_code == 201, response.get_data(as_text=True)
    started = json.loads(response.get_data())
    personal = token if path.endswith("/identities") else None
    return {**started, "provider_url": stack.through_start(started["authorize_url"], personal)}


def authorize(url: str) -> str:
    """The simulator approves and redirects; returns the callback URL (not followed)."""
    response = requests.get(url, allow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text[:200]
    return response.headers["Location"]


def finish(stack, provider: str, callback_url: str):
    path = f"/oauth-{provider}/callback?" + callback_url.split("?", 1)[1]
    return stack.call("GET", path)


def connect(stack, provider: str, tenant: str = TENANT, user: str = "admin-1"):
    started = begin(stack, provider, stack.token(tenant, user, "admin"))
    return started, finish(stack, provider, authorize(started["provider_url"]))


def drain(stack, topic: str) -> list:
    """Every message waiting on ``topic`` (one ordering key delivers one at a time)."""
    got: list = []
    while stack.ports.bus.pull(policy.subscription_name(topic), got.append, max_messages=10):
        pass
    return got


def vault_records(stack) -> int:
    return len(stack.ports.vault.query("app_tokens")) + len(stack.ports.vault.query(
        "personal_tokens"))


@pytest.mark.parametrize("provider", ["github", "gitlab"])
def test_an_admin_connects_end_to_end(local_stack, github, gitlab, provider):
    started, done = connect(local_stack, provider)
    params = query_of(started["provider_url"])
    assert params["code_challenge_method"] == "S256" and params["redirect_uri"] == \
        redirect_uri(provider)
    assert done.status_code == 302
    location = done.headers["Location"]
    assert location.startswith(local_stack.config.frontend_url + "?")
    result = query_of(location)
    assert result["status"] == "connected" and result["connection"] == started["connection"]
    record = local_stack.ports.vault.get("app_tokens", started["connection"])
    assert isinstance(record["access_token"], bytes) and record["tenant"] == TENANT
    connection = local_stack.ports.business.get("connections", started["connection"])
    assert connection["tenant"] == TENANT and connection["account"]["login"] in ("octocat", "jdoe")
    got = []
    local_stack.ports.bus.pull(policy.subscription_name(f"sync-requests-{provider}"), got.append)
    assert [m.attributes["sender"] for m in got] == [f"oauth-{provider}"]


def test_a_member_links_their_own_identity(local_stack, github):
    token = local_stack.token(TENANT, "member-7", "member")
    started = begin(local_stack, "github", token, "/api/v1/identities")
    assert query_of(started["provider_url"])["scope"] == "public_repo"
    done = finish(local_stack, "github", authorize(started["provider_url"]))
    assert query_of(done.headers["Location"])["identity"] == "linked"
    assert local_stack.ports.vault.get("personal_tokens", f"github:{TENANT}:member-7")
    assert local_stack.ports.business.get("identities", f"github:{TENANT}:member-7")


def test_a_member_cannot_create_an_app_connection(local_stack, github):
    response = local_stack.call("POST", "/api/v1/connections",
                                local_stack.token(TENANT, "member-7", "member"),
                                json={"provider": "github"})
    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"
    assert local_stack.ports.business.query("oauth_states") == []


def test_no_bearer_token_answers_401_with_a_challenge(local_stack):
    response = local_stack.call("POST", "/api/v1/connections", json={"provider": "github"})
    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith(
        "Bearer")


def test_a_replayed_state_is_refused_and_stores_nothing_more(local_stack, github):
    started = begin(local_stack, "github", local_stack.token(TENANT, "admin-1", "admin"))
    callback = authorize(started["provider_url"])
    assert finish(local_stack, "github", callback).status_code == 302
    before = vault_records(local_stack)
    again = finish(local_stack, "github", callback)
    assert again.status_code == 400 and again.mimetype == "text/html"
    assert "oauth.invalid_state" in again.get_data(as_text=True)
    assert vault_records(local_stack) == before


def test_an_expired_state_is_refused(local_stack, github):
    started = begin(local_stack, "github", local_stack.token(TENANT, "admin-1", "admin"))
    for snap in local_stack.ports.business.query("oauth_states"):
        local_stack.ports.business.put("oauth_states", snap.id,
                                       {**snap.data, "expires_at": "2020-01-01T00:00:00.000000Z"})
    response = finish(local_stack, "github", authorize(started["provider_url"]))
    assert response.status_code == 400 and vault_records(local_stack) == 0


def test_a_state_from_another_provider_is_refused(local_stack, github, gitlab):
    started = begin(local_stack, "github", local_stack.token(TENANT, "admin-1", "admin"))
    response = finish(local_stack, "gitlab", authorize(started["provider_url"]))
    assert response.status_code == 400 and vault_records(local_stack) == 0


def test_a_connection_belongs_only_to_the_tenant_that_started_it(local_stack, github):
    started, _ = connect(local_stack, "github", tenant=TENANT)
    mine = local_stack.call("GET", "/api/v1/connections",
                            local_stack.token(TENANT, "admin-1", "admin"))
    theirs = local_stack.call("GET", "/api/v1/connections",
                              local_stack.token(OTHER, "admin-1", "admin"))
    assert [c["id"] for c in json.loads(mine.get_data())["items"]] == [started["connection"]]
    assert json.loads(theirs.get_data())["items"] == []


def test_a_mismatched_pkce_verifier_stores_nothing(local_stack, github):
    started = begin(local_stack, "github", local_stack.token(TENANT, "admin-1", "admin"))
    for snap in local_stack.ports.business.query("oauth_states"):
        local_stack.ports.business.put("oauth_states", snap.id,
                                       {**snap.data, "verifier": "x" * 64})
    response = finish(local_stack, "github", authorize(started["provider_url"]))
    assert response.status_code == 302
    assert query_of(response.headers["Location"])["status"] == "error"
    assert vault_records(local_stack) == 0
    assert local_stack.ports.business.get("connections", started["connection"]) is None


def test_a_tampered_redirect_uri_gets_no_redirect_from_the_provider(local_stack, github):
    started = begin(local_stack, "github", local_stack.token(TENANT, "admin-1", "admin"))
    tampered = started["provider_url"].replace("127.0.0.1%3A8080", "evil.example")
    response = requests.get(tampered, allow_redirects=False, timeout=10)
    assert response.status_code == 400 and "Location" not in response.headers


def test_the_callback_redirects_only_to_the_configured_frontend(local_stack, github):
    started = begin(local_stack, "github", local_stack.token(TENANT, "admin-1", "admin"))
    callback = authorize(started["provider_url"]) + "&redirect=https://evil.example/&next=//x"
    response = finish(local_stack, "github", callback)
    assert response.headers["Location"].startswith(local_stack.config.frontend_url + "?")
    assert "evil" not in response.headers["Location"]


def test_access_denied_returns_to_the_frontend_and_stores_nothing(local_stack, github):
    github.set_consent(False)
    started = begin(local_stack, "github", local_stack.token(TENANT, "admin-1", "admin"))
    response = finish(local_stack, "github", authorize(started["provider_url"]))
    assert query_of(response.headers["Location"])["status"] == "denied"
    assert vault_records(local_stack) == 0


@pytest.mark.parametrize("base_url", ["https://169.254.169.254", "http://gitlab.example.com",
                                      "https://10.0.0.1", "https://100.64.0.1",
                                      "https://user:pw@gitlab.example.com"])
def test_unsafe_base_urls_are_refused(local_stack, gitlab, base_url):
    response = local_stack.call("POST", "/api/v1/connections",
                                local_stack.token(TENANT, "admin-1", "admin"),
                                json={"provider": "gitlab", "base_url": base_url})
    assert response.status_code == 400
    assert json.loads(response.get_data())["code"] == "ssrf.refused"
    assert local_stack.ports.business.query("oauth_states") == []


def test_no_token_appears_in_any_url_of_the_flow(local_stack, github):
    started, done = connect(local_stack, "github")
    issued = list(github.access_tokens)
    assert issued
    for url in (started["provider_url"], done.headers["Location"]):
        assert not any(token in url for token in issued)


def test_disconnect_goes_through_the_vault_and_revokes(local_stack, github):
    started, _ = connect(local_stack, "github")
    cid = started["connection"]
    member = local_stack.token(TENANT, "member-7", "member")
    admin = local_stack.token(TENANT, "admin-1", "admin")
    other = local_stack.token(OTHER, "admin-9", "admin")
    assert local_stack.call("DELETE", f"/api/v1/connections/{cid}", member).status_code == 403
    assert local_stack.call("DELETE", f"/api/v1/connections/{cid}", other).status_code == 404
    assert local_stack.call("DELETE", f"/api/v1/connections/{cid}", admin).status_code == 202
    got = drain(local_stack, "connection-control-github")
    assert [m.attributes["type"] for m in got] == ["connection.disconnect"]
    from shared.entry import event_function
    from shared.messages import decode
    from shared.routing import handlers_for
    from tests.unit.test_entry import pubsub_event

    receive = event_function("vault-github", handlers_for("vault-github"))
    for m in got:
        inbound = decode("connection-control-github", m.data, m.attributes, m.message_id)
        receive(pubsub_event("connection-control-github", inbound.sender, inbound.type,
                             inbound.body))
    assert local_stack.ports.vault.get("app_tokens", cid) is None
    assert local_stack.ports.business.get("connections", cid)["status"] == "disconnected"


def test_a_repeated_disconnect_asks_the_vault_again_until_it_is_done(local_stack, github):
    """A disconnect lost on the way (or refused, e.g. sent on the old topic before an upgrade)
    leaves the connection ``disconnecting``: another DELETE publishes it again; once the vault
    has finished, a DELETE publishes nothing."""
    started, _ = connect(local_stack, "github")
    cid = started["connection"]
    admin = local_stack.token(TENANT, "admin-1", "admin")
    for _ in range(2):
        response = local_stack.call("DELETE", f"/api/v1/connections/{cid}", admin)
        assert response.status_code == 202 and response.json["status"] == "disconnecting"
    assert len(drain(local_stack, "connection-control-github")) == 2
    record = local_stack.ports.business.get("connections", cid)
    local_stack.ports.business.put("connections", cid, {**record, "status": "disconnected"})
    response = local_stack.call("DELETE", f"/api/v1/connections/{cid}", admin)
    assert response.status_code == 202 and response.json["status"] == "disconnected"
    assert drain(local_stack, "connection-control-github") == []


def test_sync_now_asks_the_vault_and_only_for_your_own_connection(local_stack, github):
    started, _ = connect(local_stack, "github")
    cid = started["connection"]
    member = local_stack.token(TENANT, "member-7", "member")
    other = local_stack.token(OTHER, "member-9", "member")
    assert local_stack.call("POST", f"/api/v1/connections/{cid}/sync", other).status_code == 404
    assert local_stack.call("POST", f"/api/v1/connections/{cid}/sync", member).status_code == 202
    got = drain(local_stack, "sync-requests-github")
    reasons = [__import__("json").loads(m.data).get("reason") for m in got]
    assert "manual" in reasons
