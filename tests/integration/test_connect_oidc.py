"""The whole authorization-code + PKCE flow against a real OAuth 2.0 authorization server
(npm ``oidc-provider`` on loopback, standing at GitLab's OAuth paths), driven through its
login and consent pages, then a real refresh of the stored token."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import requests

from shared.vault.handlers import service
from tests.authserver import authserver_fixture, drive_consent
from tests.integration.conftest import query_of, redirect_uri

CLIENT = {"client_id": "keyway-gitlab", "client_secret": "oidc-client-secret-0123456789",
          "redirect_uris": [redirect_uri("gitlab")]}
ROUTES = {"authorization": "/oauth/authorize", "token": "/oauth/token",
          "revocation": "/oauth/revoke"}


@pytest.fixture(scope="module")
def oidc():
    yield from authserver_fixture([CLIENT], refresh_tokens="always", routes=ROUTES)


@pytest.fixture
def configured(local_stack, oidc, monkeypatch):
    local_stack.provider_config(monkeypatch, "gitlab", CLIENT["client_id"],
                                CLIENT["client_secret"], oidc.issuer, f"{oidc.issuer}/api/v4")
    return local_stack


def run_flow(stack, *, kind: str = "app", username: str = "alice") -> tuple[dict, str]:
    role, path = ("admin", "/api/v1/connections") if kind == "app" else ("member",
                                                                       "/api/v1/identities")
    token = stack.token("tenant-a", username, role)
    started = json.loads(stack.call("POST", path, token,
                                    json={"provider": "gitlab"}).get_data())
    provider_url = stack.through_start(started["authorize_url"],
                                       token if kind == "personal" else None)
    callback = drive_consent(requests.Session(), provider_url, username=username,
                             stop_at_prefix=redirect_uri("gitlab"))
    return started, callback


def test_connect_through_a_real_authorization_server(configured):
    started, callback = run_flow(configured)
    assert query_of(callback)["state"] == query_of(started["authorize_url"])["state"]
    done = configured.call("GET", "/oauth-gitlab/callback?" + callback.split("?", 1)[1])
    assert query_of(done.headers["Location"])["status"] == "connected"
    vault = service("gitlab", configured.ports)
    tokens = vault.codec.decode("app_tokens", started["connection"],
                                configured.ports.vault.get("app_tokens", started["connection"]),
                                vault.anchors.floor("app_tokens", started["connection"]))
    configured.leak_guard.track(tokens.access_token)
    configured.leak_guard.track(tokens.refresh_token)
    assert tokens.refresh_token and tokens.expires_at > datetime.now(UTC)
    assert "read_api" in tokens.scopes


def test_the_stored_refresh_token_really_refreshes(configured):
    started, callback = run_flow(configured, username="bob")
    configured.call("GET", "/oauth-gitlab/callback?" + callback.split("?", 1)[1])
    doc = configured.ports.vault.get("app_tokens", started["connection"])
    configured.ports.vault.put("app_tokens", started["connection"],
                               {**doc, "expires_at": "2020-01-01T00:00:00.000000Z"})
    vault = service("gitlab", configured.ports)
    fresh = vault.refresher.fresh("app_tokens", started["connection"])
    configured.leak_guard.track(fresh.access_token)
    assert fresh.expires_at > datetime.now(UTC)
    assert configured.ports.vault.get("app_tokens", started["connection"])["generation"] == 2


def test_a_mismatched_verifier_is_refused_by_the_server(configured):
    started, callback = run_flow(configured, username="carol")
    for snap in configured.ports.business.query("oauth_states"):
        configured.ports.business.put("oauth_states", snap.id, {**snap.data, "verifier": "v" * 64})
    done = configured.call("GET", "/oauth-gitlab/callback?" + callback.split("?", 1)[1])
    assert query_of(done.headers["Location"])["status"] == "error"
    assert configured.ports.vault.get("app_tokens", started["connection"]) is None


def test_a_personal_identity_through_the_real_server(configured):
    _, callback = run_flow(configured, kind="personal", username="dave")
    done = configured.call("GET", "/oauth-gitlab/callback?" + callback.split("?", 1)[1])
    assert query_of(done.headers["Location"])["identity"] == "linked"
    assert configured.ports.vault.get("personal_tokens", "gitlab:tenant-a:dave") is not None
