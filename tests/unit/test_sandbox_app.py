"""The sandbox GitHub App (``make run``) has its own OAuth client, as a real App does: the code
its install page sends back is redeemed with that client, never with the sandbox OAuth App's."""

from __future__ import annotations

import os

import pytest
import requests

from keyway import sandbox as sandbox_mod
from keyway.simulators import GitHubSimulator
from shared.adapters.embedded.local_secrets import LocalSecretSource
from tests.integration.conftest import query_of

CALLBACK = "http://127.0.0.1:8080/oauth-github/callback"
OAUTH_APP, OAUTH_SECRET = "keyway-sandbox-github", "sandbox-oauth-app-secret"


@pytest.fixture
def sandbox(tmp_path, monkeypatch, leak_guard):
    for name in (*sandbox_mod.SANDBOX_APP, "KEYWAY_SECRET_GITHUB_APP_CLIENT_SECRET"):
        monkeypatch.setenv(name, "")  # so that what _sandbox_app sets is undone afterwards
        monkeypatch.delenv(name)
    with GitHubSimulator(on_issue=leak_guard.track) as sim:
        sim.register_client(OAUTH_APP, OAUTH_SECRET, [CALLBACK])
        secrets = LocalSecretSource(tmp_path / "secrets.json", env={})
        sandbox_mod._sandbox_app(sim, secrets, OAUTH_APP)
        leak_guard.track(os.environ["KEYWAY_SECRET_GITHUB_APP_CLIENT_SECRET"])
        yield sim


def _install_code(sim) -> str:
    page = f"{sim.url}/apps/{sandbox_mod.SANDBOX_APP['KEYWAY_GITHUB_APP_SLUG']}/installations/new"
    back = requests.get(page, params={"state": "s"}, allow_redirects=False, timeout=10)
    assert back.headers["Location"].startswith(CALLBACK + "?")
    return query_of(back.headers["Location"])["code"]


def _exchange(sim, client_id: str, secret: str, code: str) -> dict:
    return requests.post(f"{sim.oauth_url}/login/oauth/access_token", timeout=10,
                         headers={"Accept": "application/json"},
                         data={"client_id": client_id, "client_secret": secret, "code": code,
                               "redirect_uri": CALLBACK}).json()


def test_the_sandbox_app_has_its_own_client_and_configures_it(sandbox):
    client_id = os.environ["KEYWAY_GITHUB_APP_CLIENT_ID"]
    secret = os.environ["KEYWAY_SECRET_GITHUB_APP_CLIENT_SECRET"]
    assert client_id == "keyway-sandbox-github-app" != OAUTH_APP
    assert len(secret) >= 24 and secret != OAUTH_SECRET
    assert sandbox.oauth.clients[client_id].redirect_uris == (CALLBACK,)
    code = _install_code(sandbox)
    assert _exchange(sandbox, OAUTH_APP, OAUTH_SECRET, code)["error"] == "bad_verification_code"
    granted = _exchange(sandbox, client_id, secret, code)
    assert granted["access_token"].startswith("ghu_")
    assert sandbox.access_tokens[granted["access_token"]].client_id == client_id
