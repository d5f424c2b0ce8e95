"""Connecting a GitHub App installation end to end: the install flow through the real api and
oauth-github functions against the GitHub simulator over HTTP, then vault-github minting a
1-hour installation token (from the app's private key) for fetch-github — and only for it.

:func:`install` goes through the simulator's ``/apps/<slug>/installations/new`` page, which
redirects like GitHub after an install (``code``, ``installation_id``, ``setup_action=install``,
``state``); naming another installation, it tampers with that redirect the way a forged URL
would (the admin's code is real, the installation is not theirs).

The App has its own OAuth client (``APP_CLIENT``), distinct from keyway's OAuth App client
(``gh-client``), as on GitHub: the install page's code belongs to the App's client, and the
simulator refuses it to any other client (``bad_verification_code``).

Secrets tracked by the leak guard: the app's private key (a fresh RSA key per module), the App
client's secret, every app JWT keyway could sign while the test runs (RS256 PKCS#1 v1.5 is
deterministic, so they are computed ahead for each second) and every token the simulator issues
(``on_issue``).
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime
from urllib.parse import urlencode

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from keyway.simulators import Account, GitHubSimulator
from shared import messages, policy
from shared.actions.model import doc_id
from shared.audit.chain import verify
from shared.entry import event_function
from shared.errors import PermanentError
from shared.providers import registry
from shared.routing import handlers_for
from shared.vault import handlers as vault_handlers
from shared.vault.github_app import AppCredentials, app_jwt
from shared.vault.receive import open_pushed_token
from shared.vault.refresh import NeedsReauth
from shared.vault.release import ReleaseRefused, ReleaseRequest
from shared.vault.service import NoPersonalToken
from tests.integration.conftest import query_of, redirect_uri
from tests.integration.test_connect_flow import authorize, begin, finish
from tests.unit.test_entry import pubsub_event
from tests.unit.test_github_app import private_pem, public_pem, track_key

TENANT, ADMIN = "tenant-a", "admin-1"
APP_ID, SLUG, INSTALLATION = "424242", "keyway-test", 9_000_001
TABLE_SCOPES = ("issues:read", "metadata:read", "pull_requests:read")
# What the org granted the app: more than keyway asks for, so narrowing is visible.
GRANTED = {"metadata": "read", "issues": "write", "pull_requests": "write", "contents": "read"}
OCTOCAT = Account("octocat", 583231, "The Octocat")  # the simulator's signed-in user
JWT_WINDOW = 180  # seconds of app JWTs tracked ahead; a test runs far shorter
OAUTH_APP_CLIENT, OAUTH_APP_SECRET = "gh-client", "gh-client-secret-1"
APP_CLIENT = "Iv23.keywaytestapp"  # the GitHub App's own client id (not its app id)


@pytest.fixture(scope="module")
def app_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def track_app_jwts(leak_guard, app_key: rsa.RSAPrivateKey, credentials: AppCredentials) -> None:
    """Every JWT ``app_jwt`` would sign in the next ``JWT_WINDOW`` seconds (signed here with
    the parsed key — the same bytes, without parsing the PEM for each one)."""
    ttl, now = registry.get("github").github_app.jwt_ttl_seconds, int(time.time())
    assertions = [jwt.encode({"iat": second - 60, "exp": second + ttl, "iss": APP_ID}, app_key,
                             algorithm="RS256") for second in range(now - 2, now + JWT_WINDOW)]
    assert assertions[0] == app_jwt(credentials, datetime.fromtimestamp(now - 2, UTC), ttl)
    for assertion in assertions:
        leak_guard.track(assertion)


def github_with_app(stack, monkeypatch, leak_guard, app_key: rsa.RSAPrivateKey
                    ) -> GitHubSimulator:
    """A GitHub simulator with keyway's OAuth App client and a GitHub App (its own client,
    id and key), configured for ``stack`` the way DEPLOY.md says; the caller stops it."""
    pem = track_key(leak_guard, private_pem(app_key))
    track_app_jwts(leak_guard, app_key, AppCredentials(APP_ID, pem))
    app_secret = leak_guard.track(secrets.token_urlsafe(24))
    sim = GitHubSimulator(on_issue=leak_guard.track).start()
    sim.register_client(OAUTH_APP_CLIENT, OAUTH_APP_SECRET, [redirect_uri("github")])
    stack.provider_config(monkeypatch, "github", OAUTH_APP_CLIENT, OAUTH_APP_SECRET,
                          sim.oauth_url, sim.api_url)
    monkeypatch.setenv("KEYWAY_GITHUB_APP_ID", APP_ID)
    monkeypatch.setenv("KEYWAY_GITHUB_APP_SLUG", SLUG)
    monkeypatch.setenv("KEYWAY_GITHUB_APP_CLIENT_ID", APP_CLIENT)
    monkeypatch.setenv("KEYWAY_SECRET_GITHUB_APP_CLIENT_SECRET", app_secret)
    monkeypatch.setenv("KEYWAY_SECRET_GITHUB_APP_PRIVATE_KEY", pem.decode())
    sim.apps.register_app(APP_ID, public_pem(app_key), GRANTED, slug=SLUG, client_id=APP_CLIENT,
                          client_secret=app_secret, redirect_uris=[redirect_uri("github")])
    return sim


@pytest.fixture
def github(local_stack, monkeypatch, leak_guard, app_key):
    sim = github_with_app(local_stack, monkeypatch, leak_guard, app_key)
    sim.seed("acme", repos=3)
    sim.apps.add_installation(INSTALLATION, "acme", GRANTED, users=[OCTOCAT.id])
    yield sim
    sim.stop()


def install(stack, sim, installation: int | None = None):
    """Start the install flow as an admin and install on the simulator's page; with
    ``installation``, come back naming that one instead (a tampered redirect)."""
    started = begin(stack, "github", stack.token(TENANT, ADMIN, "admin"), github_app=True)
    if installation is None:
        back = authorize(started["provider_url"])
        assert query_of(back)["installation_id"] == str(INSTALLATION)
        return started, finish(stack, "github", back)
    state = query_of(started["provider_url"])["state"]
    code_url = authorize(f"{sim.oauth_url}/login/oauth/authorize?" + urlencode(
        {"client_id": APP_CLIENT, "redirect_uri": redirect_uri("github"), "state": state}))
    back = {"installation_id": str(installation), "setup_action": "install"}
    return started, finish(stack, "github", f"{code_url}&{urlencode(back)}")


def vault(stack):
    return vault_handlers.service("github", stack.ports)


def deliver(stack, topic: str, component: str) -> list[messages.Inbound]:
    """Pull what ``topic`` holds and hand each message to ``component``'s entry point."""
    got: list = []
    stack.ports.bus.pull(policy.subscription_name(topic), got.append, max_messages=10)
    inbound = [messages.decode(topic, m.data, m.attributes, m.message_id) for m in got]
    receive = event_function(component, handlers_for(component))
    for m in inbound:
        receive(pubsub_event(topic, m.sender, m.type, m.body))
    return inbound


def pulled(stack, topic: str) -> list[messages.Inbound]:
    got: list = []
    stack.ports.bus.pull(policy.subscription_name(topic), got.append, max_messages=10)
    return [messages.decode(topic, m.data, m.attributes, m.message_id) for m in got]


def everything_stored(stack) -> str:
    return repr([s.data for c in ("app_tokens", "personal_tokens")
                 for s in stack.ports.vault.query(c)] +
                [s.data for c in ("connections", "identities", "audit_entries")
                 for s in stack.ports.business.query(c)])


def test_an_admin_connects_an_installation_end_to_end(local_stack, github):
    started, done = install(local_stack, github)
    url = started["provider_url"]
    assert url.split("?")[0] == f"{github.oauth_url}/apps/{SLUG}/installations/new"
    assert list(query_of(url)) == ["state"]  # no client id, scope or PKCE on this page
    assert done.status_code == 302
    result = query_of(done.headers["Location"])
    assert result["status"] == "connected" and result["connection"] == started["connection"]
    record = local_stack.ports.vault.get("app_tokens", started["connection"])
    assert record["installation_id"] == str(INSTALLATION) and record["kind"] == "app"
    assert "access_token" not in record and "refresh_token" not in record
    assert not any(isinstance(v, bytes) for v in record.values())  # nothing encrypted: no token
    connection = local_stack.ports.business.get("connections", started["connection"])
    assert connection["kind"] == "app" and connection["installation_id"] == str(INSTALLATION)
    assert connection["tenant"] == TENANT and connection["account"]["login"] == OCTOCAT.login
    issued = list(github.access_tokens)  # the admin's user-to-server token: used, not kept
    assert issued and all(t.startswith("ghu_") for t in issued)
    assert not any(token in everything_stored(local_stack) for token in issued)
    [sync] = pulled(local_stack, "sync-requests-github")
    assert sync.sender == "oauth-github" and sync.body["connection"] == started["connection"]
    assert github.apps.installations[INSTALLATION].tokens == []  # minted only on release


def test_a_sync_request_becomes_an_installation_token_only_fetch_github_opens(
        local_stack, github):
    started, _ = install(local_stack, github)
    deliver(local_stack, "sync-requests-github", "vault-github")
    [job] = pulled(local_stack, "fetch-jobs-github")
    assert job.sender == "vault-github" and job.body["connection"] == started["connection"]
    claims, token = open_pushed_token(local_stack.ports, "fetch-github", job.body["envelope"],
                                      "fetch")
    assert github.apps.installations[INSTALLATION].tokens == [token]
    assert token.startswith("ghs_")
    assert token not in json.dumps(job.body)
    assert claims.audience == "fetch-github" and claims.connection == started["connection"]
    assert github.access_tokens[token].scopes == TABLE_SCOPES  # not the granted writes
    assert "access_token" not in local_stack.ports.vault.get("app_tokens",
                                                             started["connection"])
    entries = [s.data for s in local_stack.ports.business.query("audit_entries")]
    assert {("store", "stored"), ("release", "released")} <= {
        (e["event"], e["outcome"]) for e in entries}
    assert token not in repr(entries)
    assert verify(local_stack.ports.business, local_stack.ports.secrets, "vault-github").ok


def test_an_installation_connection_is_never_released_for_actions(local_stack, github):
    started, _ = install(local_stack, github)
    connection, service = started["connection"], vault(local_stack)
    with pytest.raises(NoPersonalToken):
        service.release_for_action(TENANT, ADMIN, connection)
    for purpose, recipient in (("action", "act-github"), ("fetch", "act-github")):
        with pytest.raises(ReleaseRefused):
            service.release(ReleaseRequest("app", purpose, recipient, TENANT, connection,
                                           ADMIN), user=ADMIN)
    local_stack.ports.business.put("actions", doc_id(TENANT, "act-1"), {
        "tenant": TENANT, "user": ADMIN, "provider": "github", "connection": connection,
        "status": "pending"})
    receive = event_function("vault-github", handlers_for("vault-github"))
    receive(pubsub_event("action-requests-github", "api", "action.requested",
                         {"tenant": TENANT, "user": ADMIN, "action_id": "act-1",
                          "connection": connection, "action": {"kind": "comment"}}))
    action = local_stack.ports.business.get("actions", doc_id(TENANT, "act-1"))
    assert action["reason"] == "no_personal_token"
    assert pulled(local_stack, "action-jobs-github") == []
    assert github.apps.installations[INSTALLATION].tokens == []  # nothing was even minted


def test_an_installation_the_user_cannot_access_stores_nothing(local_stack, github):
    github.apps.add_installation(INSTALLATION + 1, "elsewhere", users=[31337])
    started, done = install(local_stack, github, installation=INSTALLATION + 1)
    result = query_of(done.headers["Location"])
    assert result["status"] == "error" and result["reason"] == "github_app.not_your_installation"
    assert local_stack.ports.vault.query("app_tokens") == []
    assert local_stack.ports.business.get("connections", started["connection"]) is None
    assert pulled(local_stack, "sync-requests-github") == []


def test_an_install_request_awaiting_approval_stores_nothing(local_stack, github):
    started = begin(local_stack, "github", local_stack.token(TENANT, ADMIN, "admin"),
                    github_app=True)
    state = query_of(started["provider_url"])["state"]
    code_url = authorize(f"{github.oauth_url}/login/oauth/authorize?" + urlencode(
        {"client_id": APP_CLIENT, "redirect_uri": redirect_uri("github"), "state": state}))
    done = finish(local_stack, "github", code_url + "&setup_action=request")
    assert query_of(done.headers["Location"])["reason"] == "github_app.no_installation"
    assert local_stack.ports.vault.query("app_tokens") == []


def test_an_uninstalled_app_needs_reauth(local_stack, github):
    started, _ = install(local_stack, github)
    connection = started["connection"]
    assert vault(local_stack).release_for_fetch(TENANT, connection, "scheduler")
    assert github.apps.remove_installation(INSTALLATION)
    vault_handlers._SERVICES.clear()  # another instance: minted tokens are cached in memory
    with pytest.raises(NeedsReauth):
        vault(local_stack).release_for_fetch(TENANT, connection, "scheduler")
    assert local_stack.ports.vault.get("app_tokens", connection)["status"] == "needs_reauth"
    deliver(local_stack, "sync-requests-github", "vault-github")  # the first sync request
    assert local_stack.ports.business.get("connections", connection)["status"] == \
        "needs_reauth"
    assert pulled(local_stack, "fetch-jobs-github") == []


def test_without_app_credentials_a_release_is_a_clear_permanent_error(
        local_stack, github, monkeypatch):
    started, _ = install(local_stack, github)
    monkeypatch.delenv("KEYWAY_GITHUB_APP_ID")
    with pytest.raises(PermanentError) as refused:
        vault(local_stack).release_for_fetch(TENANT, started["connection"], "scheduler")
    assert refused.value.key == "github_app.not_configured"
    assert "KEYWAY_GITHUB_APP_ID" in str(refused.value)
    assert local_stack.ports.vault.get("app_tokens", started["connection"])["status"] == "active"


def test_a_member_cannot_start_the_install_flow(local_stack, github):
    response = local_stack.call("POST", "/api/v1/connections",
                                local_stack.token(TENANT, "member-7", "member"),
                                json={"provider": "github", "github_app": True})
    assert response.status_code == 403
    assert local_stack.ports.business.query("oauth_states") == []


def test_an_oauth_app_flow_ignores_an_appended_installation_id(local_stack, github):
    started = begin(local_stack, "github", local_stack.token(TENANT, ADMIN, "admin"))
    callback = authorize(started["provider_url"]) + f"&installation_id={INSTALLATION}"
    assert query_of(finish(local_stack, "github", callback).headers["Location"])["status"] == \
        "connected"
    record = local_stack.ports.vault.get("app_tokens", started["connection"])
    assert "installation_id" not in record and isinstance(record["access_token"], bytes)
