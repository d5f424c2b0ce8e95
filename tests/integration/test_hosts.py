"""``/api/v1/hosts`` and the attack it closes (promise 9): a tenant admin can no longer point a
connection at a host they run and collect keyway's global client secret, the code and the
PKCE verifier. Only registered hosts can be named; each gets only its own client; a token
endpoint that redirects gets nothing more and the flow ends with a clear reason."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from werkzeug.test import EnvironBuilder

from shared.api import hosts as hosts_api
from shared.api.app import Context
from shared.auth.principal import SCOPES, Principal
from shared.errors import InvalidInput
from shared.hosts import registry as hosts
from shared.messages import Inbound
from shared.vault import handlers as vault_handlers
from shared.vault.refresh import NeedsReauth
from shared.vault.tokens import TokenSet
from tests.fakes.egress_servers import Recorder
from tests.integration.conftest import query_of
from tests.integration.test_connect_flow import begin

TENANT, OTHER = "tenant-a", "tenant-b"
GLOBAL_SECRET = "global-gitlab-secret-" + "g" * 20  # noqa: S105 - test credentials
HOST_SECRET = "self-hosted-secret-" + "h" * 24  # noqa: S105


@pytest.fixture
def global_client(local_stack, monkeypatch, leak_guard):
    leak_guard.track(GLOBAL_SECRET), leak_guard.track(HOST_SECRET)
    monkeypatch.setenv("KEYWAY_GITLAB_CLIENT_ID", "gl-cloud-client")
    monkeypatch.setenv("KEYWAY_SECRET_GITLAB_CLIENT_SECRET", GLOBAL_SECRET)


@pytest.fixture
def attacker():
    server = Recorder("127.0.0.3").start()
    yield server
    server.stop()


def admin(stack, tenant: str = TENANT) -> str:
    return stack.token(tenant, "admin-1", "admin")


def register(stack, base_url: str, tenant: str = TENANT, **extra):
    body = {"provider": "gitlab", "base_url": base_url, "client_id": "self-hosted-app",
            "client_secret": HOST_SECRET, **extra}
    return stack.call("POST", "/api/v1/hosts", admin(stack, tenant), json=body)


def problem(response) -> str:
    assert response.mimetype == "application/problem+json"
    return json.loads(response.get_data())["code"]


def test_an_admin_registers_lists_and_removes_a_host_and_never_sees_its_secret(
        local_stack, global_client, attacker):
    created = register(local_stack, attacker.url + "/")
    assert created.status_code == 201, created.get_data(as_text=True)
    host = json.loads(created.get_data())
    assert host["base_url"] == attacker.url and host["client_id"] == "self-hosted-app"
    assert "client_secret" not in host and "secret_name" not in host
    listed = local_stack.call("GET", "/api/v1/hosts", admin(local_stack))
    assert json.loads(listed.get_data())["items"] == [host]
    other = local_stack.call("GET", "/api/v1/hosts", admin(local_stack, OTHER))
    assert json.loads(other.get_data())["items"] == []
    assert register(local_stack, attacker.url).status_code == 409
    gone = local_stack.call("DELETE", f"/api/v1/hosts/{host['id']}", admin(local_stack, OTHER))
    assert gone.status_code == 404 and problem(gone) == "hosts.not_found"
    assert any(k.startswith("host-gitlab-") for k in _secret_names(local_stack))
    removed = local_stack.call("DELETE", f"/api/v1/hosts/{host['id']}", admin(local_stack))
    assert removed.status_code == 204 and local_stack.ports.business.query("hosts") == []
    assert attacker.requests == []
    assert not any(k.startswith("host-") for k in _secret_names(local_stack))


def test_a_member_cannot_register_a_host(local_stack, global_client, attacker):
    member = local_stack.token(TENANT, "member-1", "member")
    response = local_stack.call("POST", "/api/v1/hosts", member, json={
        "provider": "gitlab", "base_url": attacker.url, "client_id": "x",
        "client_secret": HOST_SECRET})
    assert response.status_code == 403
    assert local_stack.ports.business.query("hosts") == []


@pytest.mark.parametrize(("body", "code"), [
    ({"base_url": "https://10.0.0.1"}, "ssrf.refused"),
    ({"base_url": "https://169.254.169.254"}, "ssrf.refused"),
    ({"base_url": "http://93.184.216.34"}, "ssrf.refused"),
    ({"client_secret": "short"}, "hosts.invalid_client"),
    ({"provider": "bitbucket"}, "oauth.no_base_url"),
    ({"extra": 1}, "input.unknown_field"),
])
def test_a_bad_registration_is_a_400_and_stores_nothing(local_stack, global_client, attacker,
                                                        body, code):
    response = register(local_stack, body.pop("base_url", attacker.url), **body)
    assert response.status_code == 400 and problem(response) == code
    assert local_stack.ports.business.query("hosts") == []
    assert not any(k.startswith("host-") for k in _secret_names(local_stack))


@pytest.mark.parametrize("base_url", ["http://127.0.0.2:8929", "https://127.0.0.2",
                                      "https://[::1]:8443"])
def test_outside_local_mode_the_api_refuses_a_loopback_or_plain_http_host(local_stack,
                                                                         base_url):
    """The same handler with a deployed (``gcp``) configuration: loopback and http are local
    conveniences only."""
    body = json.dumps({"provider": "gitlab", "base_url": base_url, "client_id": "app",
                       "client_secret": HOST_SECRET}).encode()
    request = EnvironBuilder(method="POST", path="/api/v1/hosts", data=body,
                             content_type="application/json").get_request()
    deployed = dataclasses.replace(local_stack.config, backend="gcp")
    ctx = Context(local_stack.ports, deployed, request,
                  Principal(TENANT, "admin-1", "admin", frozenset(SCOPES)), {}, body)
    with pytest.raises(InvalidInput) as refused:
        hosts_api.create_host(ctx)
    assert refused.value.key == "ssrf.refused"
    assert local_stack.ports.business.query("hosts") == []


def _secret_names(stack) -> list[str]:
    path = stack.config.secrets_file
    return list(json.loads(path.read_text())) if path.exists() else []


@pytest.mark.parametrize("path", ["/api/v1/connections", "/api/v1/identities"])
def test_an_unregistered_host_is_refused_and_receives_nothing(local_stack, global_client,
                                                              attacker, path):
    """The reproduced attack: a base URL the caller runs. Before any host registry this
    answered 201 and the callback then sent the global client secret, the code and the
    verifier to it."""
    response = local_stack.call("POST", path, admin(local_stack),
                                json={"provider": "gitlab", "base_url": attacker.url})
    assert response.status_code == 400 and problem(response) == "oauth.host_not_registered"
    assert local_stack.ports.business.query("oauth_states") == []
    assert attacker.requests == []


def test_another_tenants_host_cannot_be_named(local_stack, global_client, attacker):
    assert register(local_stack, attacker.url, tenant=OTHER).status_code == 201
    response = local_stack.call("POST", "/api/v1/connections", admin(local_stack),
                                json={"provider": "gitlab", "base_url": attacker.url})
    assert response.status_code == 400 and problem(response) == "oauth.host_not_registered"
    assert local_stack.ports.business.query("oauth_states") == []


def _begin_and_call_back(stack, base_url: str) -> tuple[dict, object]:
    """Start the flow, take its start step in the stack's browser, and come back to the
    callback with a code as the host would send it."""
    flow = begin(stack, "gitlab", admin(stack), base_url=base_url)
    state = query_of(flow["provider_url"])["state"]
    done = stack.call("GET", f"/oauth-gitlab/callback?code=code-1&state={state}")
    return flow, done


def test_a_redirecting_token_endpoint_gets_only_its_own_client_and_the_flow_ends_clearly(
        local_stack, global_client, attacker):
    """The registered host answers the code exchange with a 307 to another server: that
    server receives nothing, no token is stored and the browser lands on a clear reason."""
    redirector = Recorder("127.0.0.2", status=307, location=attacker.url + "/oauth/token")
    redirector.start()
    try:
        assert register(local_stack, redirector.url).status_code == 201
        flow, done = _begin_and_call_back(local_stack, redirector.url)
    finally:
        redirector.stop()
    authorize = query_of(flow["provider_url"])
    assert urlsplit(flow["provider_url"]).netloc == urlsplit(redirector.url).netloc
    assert authorize["client_id"] == "self-hosted-app"
    assert query_of(done.headers["Location"]) == {
        "provider": "gitlab", "kind": "app", "status": "error",
        "reason": "provider.redirect_refused"}
    assert attacker.requests == []
    [sent] = [parse_qs(r["body"]) for r in redirector.requests]
    assert sent["client_id"] == ["self-hosted-app"] and sent["client_secret"] == [HOST_SECRET]
    assert GLOBAL_SECRET not in repr(redirector.requests)
    assert local_stack.ports.vault.query("app_tokens") == []
    assert local_stack.ports.business.query("connections") == []


def test_a_host_is_not_removed_while_a_connection_uses_it(local_stack, global_client, attacker):
    host = json.loads(register(local_stack, attacker.url).get_data())
    local_stack.ports.business.put("connections", "c-1", {
        "tenant": TENANT, "provider": "gitlab", "kind": "app", "status": "active",
        "base_url": attacker.url, "host": host["id"]})
    response = local_stack.call("DELETE", f"/api/v1/hosts/{host['id']}", admin(local_stack))
    assert response.status_code == 409 and problem(response) == "hosts.in_use"
    assert hosts.get(local_stack.ports, host["id"]) is not None


def test_a_connection_made_before_hosts_were_registered_shows_needs_reauth_and_sends_nothing(
        local_stack, global_client, attacker):
    """A self-hosted connection stored with a base URL but no registered host: its sync asks
    for a refresh, which is not sent anywhere (the global client stays home); the connection
    turns needs_reauth with the stable reason, as its health shows."""
    ports = local_stack.ports
    vault = vault_handlers.service("gitlab", ports)
    vault.store_app_token(TENANT, "c-old", "admin-1", TokenSet(
        "access-" + "a" * 32, "refresh-" + "r" * 32,
        datetime.now(UTC) + timedelta(seconds=30), ("read_api",)), attacker.url)
    ports.business.put("connections", "c-old", {
        "tenant": TENANT, "provider": "gitlab", "kind": "app", "status": "active",
        "base_url": attacker.url, "api_base": attacker.url + "/api/v4"})
    sync = Inbound("sync-requests-gitlab", "sync.requested", 1, "scheduler",
                   {"tenant": TENANT, "connection": "c-old"}, "m-1")
    with pytest.raises(NeedsReauth) as refused:
        vault_handlers.on_sync_requested("gitlab", ports, sync)
    assert refused.value.key == "oauth.host_not_registered"
    connection = ports.business.get("connections", "c-old")
    assert (connection["status"], connection["status_reason"]) == (
        "needs_reauth", "oauth.host_not_registered")
    listed = local_stack.call("GET", "/api/v1/connections", admin(local_stack))
    [item] = json.loads(listed.get_data())["items"]
    assert item["health"]["state"] == "needs_reauth" and item["host"] is None
    assert item["health"]["reason"] == "oauth.host_not_registered"
    assert attacker.requests == []
