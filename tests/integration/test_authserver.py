"""The test authorization server (oidc-provider on loopback) is real: the whole
authorization-code + S256 PKCE flow through its login and consent pages, and the refusals the
keyway connect flows rely on (wrong verifier, tampered redirect_uri, replayed code)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.authserver import (
    AuthServer,
    AuthServerUnavailable,
    ConsentFlowError,
    authorize_request,
    authserver_fixture,
    check_available,
    drive_consent,
    pkce_pair,
)

REDIRECT = "http://127.0.0.1:1/oauth-test/callback"  # never requested: drive_consent stops here
POST_CLIENT = {"client_id": "keyway-post", "client_secret": "post-secret-0123456789",
               "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_post"}
BASIC_CLIENT = {"client_id": "keyway-basic", "client_secret": "basic-secret-0123456789",
                "redirect_uris": [REDIRECT]}
SCOPE = "openid offline_access read_api"
TTL = 120
TIMEOUT = 10


@pytest.fixture(scope="module")
def authserver() -> Iterator[AuthServer]:
    yield from authserver_fixture([POST_CLIENT, BASIC_CLIENT], access_token_ttl=TTL)


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def authorize(server: AuthServer, client: dict, state: str, *, scope: str = SCOPE,
              redirect_uri: str = REDIRECT, **extra: str) -> tuple[str, str]:
    """Run the browser part; return (code, verifier)."""
    verifier, challenge = pkce_pair()
    url = authorize_request(server, client_id=client["client_id"], redirect_uri=redirect_uri,
                            state=state, code_challenge=challenge, scope=scope, **extra)
    callback = drive_consent(requests.Session(), url, username="alice", stop_at_prefix=REDIRECT)
    params = query(callback)
    assert callback.startswith(REDIRECT + "?")
    assert params["state"] == state
    assert params["iss"] == server.issuer
    assert "error" not in params
    return params["code"], verifier


def exchange(server: AuthServer, client: dict, code: str, verifier: str, *,
             basic: bool = False, redirect_uri: str = REDIRECT) -> requests.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "code_verifier": verifier}
    return token_request(server, client, form, basic=basic)


def token_request(server: AuthServer, client: dict, form: dict, *,
                  basic: bool = False) -> requests.Response:
    if basic:
        return requests.post(server.token_url, data=form, timeout=TIMEOUT,
                             auth=(client["client_id"], client["client_secret"]))
    form = {**form, "client_id": client["client_id"], "client_secret": client["client_secret"]}
    return requests.post(server.token_url, data=form, timeout=TIMEOUT)


def test_discovery_endpoints_and_pkce_methods(authserver):
    assert authserver.issuer == f"http://127.0.0.1:{authserver.port}"
    assert authserver.authorize_url.startswith(authserver.issuer + "/")
    assert authserver.token_url.startswith(authserver.issuer + "/")
    assert authserver.discovery["code_challenge_methods_supported"] == ["S256"]
    assert {"read_api", "api", "offline_access"} <= set(authserver.discovery["scopes_supported"])
    assert set(authserver.discovery["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic", "client_secret_post"}


def test_code_flow_with_pkce_end_to_end(authserver, leak_guard):
    code, verifier = authorize(authserver, POST_CLIENT, "state-e2e-1", prompt="consent")
    leak_guard.track(code)

    wrong = exchange(authserver, POST_CLIENT, code, pkce_pair()[0])
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"

    # a failed PKCE check does not consume the code: the right verifier still works
    response = exchange(authserver, POST_CLIENT, code, verifier)
    assert response.status_code == 200, response.json().get("error")
    tokens = response.json()
    leak_guard.track(tokens["access_token"])
    leak_guard.track(tokens["refresh_token"])
    assert tokens["token_type"].lower() == "bearer"
    assert tokens["expires_in"] == TTL
    assert set(tokens["scope"].split()) == {"openid", "offline_access", "read_api"}
    leak_guard.check_response(wrong)

    introspected = requests.post(authserver.introspection_url, timeout=TIMEOUT,
                                 data={"token": tokens["access_token"]},
                                 auth=(POST_CLIENT["client_id"], POST_CLIENT["client_secret"]))
    assert introspected.json()["active"] is True
    assert introspected.json()["sub"] == "alice"

    refreshed = token_request(authserver, POST_CLIENT, {
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.json().get("error")
    new = refreshed.json()
    leak_guard.track(new["access_token"])
    leak_guard.track(new["refresh_token"])
    assert new["access_token"] != tokens["access_token"]
    assert new["refresh_token"] != tokens["refresh_token"]  # rotated on use

    # the code is single-use (and replaying it revokes the grant's tokens)
    replay = exchange(authserver, POST_CLIENT, code, verifier)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    leak_guard.check_response(replay)
    revoked = requests.post(authserver.introspection_url, timeout=TIMEOUT,
                            data={"token": new["access_token"]},
                            auth=(POST_CLIENT["client_id"], POST_CLIENT["client_secret"]))
    assert revoked.json() == {"active": False}


def test_client_secret_basic_and_rotated_refresh_token_reuse(authserver, leak_guard):
    code, verifier = authorize(authserver, BASIC_CLIENT, "state-basic", prompt="consent")
    response = exchange(authserver, BASIC_CLIENT, code, verifier, basic=True)
    assert response.status_code == 200, response.json().get("error")
    first = response.json()["refresh_token"]
    leak_guard.track(first)
    rotated = token_request(authserver, BASIC_CLIENT,
                            {"grant_type": "refresh_token", "refresh_token": first}, basic=True)
    assert rotated.status_code == 200
    leak_guard.track(rotated.json()["refresh_token"])
    reused = token_request(authserver, BASIC_CLIENT,
                           {"grant_type": "refresh_token", "refresh_token": first}, basic=True)
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"


def test_offline_access_without_prompt_consent_gives_no_refresh_token(authserver):
    code, verifier = authorize(authserver, POST_CLIENT, "state-no-prompt")
    tokens = exchange(authserver, POST_CLIENT, code, verifier).json()
    assert "refresh_token" not in tokens
    assert "offline_access" not in tokens["scope"].split()


def test_wrong_client_secret_and_wrong_redirect_uri_at_token_endpoint(authserver):
    code, verifier = authorize(authserver, POST_CLIENT, "state-token-checks", prompt="consent")
    bad_secret = {**POST_CLIENT, "client_secret": "not-the-secret-000"}
    assert exchange(authserver, bad_secret, code, verifier).json()["error"] == "invalid_client"
    other = exchange(authserver, POST_CLIENT, code, verifier, redirect_uri=REDIRECT + "x")
    assert other.json()["error"] == "invalid_grant"
    # another client cannot redeem the code either
    stolen = exchange(authserver, BASIC_CLIENT, code, verifier, basic=True)
    assert stolen.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("tampered", [
    "http://127.0.0.1:1/oauth-test/callback/../evil",
    "http://127.0.0.1:1/oauth-test/callback?next=x",
    "http://127.0.0.1:1/oauth-test/callbackx",
    "http://evil.example/oauth-test/callback",
])
def test_tampered_redirect_uri_is_refused_at_the_authorize_step(authserver, tampered):
    _, challenge = pkce_pair()
    url = authorize_request(authserver, client_id=POST_CLIENT["client_id"], redirect_uri=tampered,
                            state="state-tampered", code_challenge=challenge, scope=SCOPE)
    response = requests.get(url, allow_redirects=False, timeout=TIMEOUT)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "redirect_uri did not match" in response.text
    with pytest.raises(ConsentFlowError, match="answered 400"):
        drive_consent(requests.Session(), url, username="alice", stop_at_prefix=tampered)


@pytest.mark.parametrize("change", [
    {"code_challenge_method": "plain"},
    {"code_challenge_method": None, "code_challenge": None},
])
def test_authorize_without_s256_pkce_is_refused(authserver, change):
    _, challenge = pkce_pair()
    url = authorize_request(authserver, client_id=POST_CLIENT["client_id"], redirect_uri=REDIRECT,
                            state="state-pkce", code_challenge=challenge, scope=SCOPE)
    parts = urlsplit(url)
    params = {**query(url), **change}
    params = {k: v for k, v in params.items() if v is not None}
    response = requests.get(f"{parts.scheme}://{parts.netloc}{parts.path}", params=params,
                            allow_redirects=False, timeout=TIMEOUT)
    # a registered redirect_uri: the error goes back to the client, never a code
    location = query(response.headers["Location"])
    assert response.headers["Location"].startswith(REDIRECT)
    assert location["error"] == "invalid_request"
    assert "code" not in location


@pytest.fixture
def always_server() -> Iterator[AuthServer]:
    yield from authserver_fixture([POST_CLIENT], refresh_tokens="always")


def test_refresh_tokens_always_mode(always_server):
    """GitLab-like: a refresh token on every exchange, no offline_access or prompt needed."""
    code, verifier = authorize(always_server, POST_CLIENT, "state-always", scope="read_api")
    tokens = exchange(always_server, POST_CLIENT, code, verifier).json()
    assert tokens["scope"] == "read_api"
    assert "refresh_token" in tokens
    refreshed = token_request(always_server, POST_CLIENT, {
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200


def test_missing_node_is_reported_as_unavailable(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(AuthServerUnavailable, match="node is not on PATH"):
        check_available()

