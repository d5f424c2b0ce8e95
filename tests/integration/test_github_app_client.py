"""The GitHub App install flow redeems its code with the App's own OAuth client.

On GitHub a GitHub App has its own Client ID and client secrets, distinct from any OAuth App.
With "Request user authorization (OAuth) during installation" ticked, the code GitHub sends
back from the install page is issued to the App's client, and the token endpoint answers a
code presented by another client with HTTP 200 and ``bad_verification_code`` ("Generating a
user access token for a GitHub App"; "Troubleshooting OAuth app access token request
errors"). So keyway exchanges the install code with ``KEYWAY_GITHUB_APP_CLIENT_ID`` and the
secret ``github-app-client-secret``, and every other flow keeps the OAuth App's client
(``KEYWAY_GITHUB_CLIENT_ID``, ``github-client-secret``), whose classic scopes an App client
does not take.
"""

from __future__ import annotations

import requests

from tests.integration.conftest import query_of, redirect_uri
from tests.integration.test_connect_flow import authorize, begin, finish
from tests.integration.test_github_app_connect import (
    ADMIN,
    APP_CLIENT,
    INSTALLATION,
    OAUTH_APP_CLIENT,
    OAUTH_APP_SECRET,
    TENANT,
    app_key,  # noqa: F401 - a fixture
    everything_stored,
    github,  # noqa: F401 - a fixture
    install,
    pulled,
)

TROUBLESHOOTING = ("https://docs.github.com/apps/managing-oauth-apps/"
                   "troubleshooting-oauth-app-access-token-request-errors/")


def _tokens_by_client(sim) -> dict[str, set[str]]:
    by_client: dict[str, set[str]] = {}
    for token, info in list(sim.access_tokens.items()):
        by_client.setdefault(info.client_id, set()).add(token)
    return by_client


def _nothing_stored(stack, connection: str) -> None:
    assert stack.ports.vault.query("app_tokens") == []
    assert stack.ports.business.get("connections", connection) is None
    assert pulled(stack, "sync-requests-github") == []


def test_the_install_code_is_redeemed_with_the_apps_own_client(local_stack, github):  # noqa: F811
    started, done = install(local_stack, github)
    assert query_of(done.headers["Location"])["status"] == "connected"
    assert set(_tokens_by_client(github)) == {APP_CLIENT}  # the admin's App user token
    oauth_app = begin(local_stack, "github", local_stack.token(TENANT, ADMIN, "admin"))
    assert query_of(oauth_app["provider_url"])["client_id"] == OAUTH_APP_CLIENT
    finished = finish(local_stack, "github", authorize(oauth_app["provider_url"]))
    assert query_of(finished.headers["Location"])["status"] == "connected"
    member = begin(local_stack, "github", local_stack.token(TENANT, "member-7", "member"),
                   path="/api/v1/identities")
    finish(local_stack, "github", authorize(member["provider_url"]))
    used = _tokens_by_client(github)
    assert set(used) == {APP_CLIENT, OAUTH_APP_CLIENT} and len(used[OAUTH_APP_CLIENT]) == 2


def test_an_install_code_redeemed_with_the_oauth_apps_client_stores_nothing(
        local_stack, github, monkeypatch):  # noqa: F811
    """The defect this guards against: the install code exchanged with the OAuth App's
    client, as when ``KEYWAY_GITHUB_APP_CLIENT_ID`` names the OAuth App."""
    monkeypatch.setenv("KEYWAY_GITHUB_APP_CLIENT_ID", OAUTH_APP_CLIENT)
    monkeypatch.setenv("KEYWAY_SECRET_GITHUB_APP_CLIENT_SECRET", OAUTH_APP_SECRET)
    started, done = install(local_stack, github)
    result = query_of(done.headers["Location"])
    assert done.status_code == 302 and result["status"] == "error"
    assert result["reason"] == "oauth.code_rejected"
    _nothing_stored(local_stack, started["connection"])
    assert github.access_tokens == {}  # GitHub issued nothing for the code
    assert "access_token" not in everything_stored(local_stack)


def test_github_answers_another_clients_code_with_bad_verification_code(github):  # noqa: F811
    """Wire shape, as github.com answers: HTTP 200, JSON when asked for, form otherwise."""
    page = f"{github.oauth_url}/apps/keyway-test/installations/new"
    back = requests.get(page, params={"state": "s1"}, allow_redirects=False, timeout=10)
    assert query_of(back.headers["Location"])["installation_id"] == str(INSTALLATION)
    code = query_of(back.headers["Location"])["code"]
    form = {"client_id": OAUTH_APP_CLIENT, "client_secret": OAUTH_APP_SECRET, "code": code,
            "redirect_uri": redirect_uri("github")}
    token_url = f"{github.oauth_url}/login/oauth/access_token"
    answer = requests.post(token_url, data=form, headers={"Accept": "application/json"},
                           timeout=10)
    assert answer.status_code == 200
    assert answer.json() == {
        "error": "bad_verification_code",
        "error_description": "The code passed is incorrect or expired.",
        "error_uri": TROUBLESHOOTING + "#bad-verification-code"}
    as_form = requests.post(token_url, data=form, timeout=10)
    assert as_form.status_code == 200 and query_of("?" + as_form.text)["error"] == \
        "bad_verification_code"
    assert github.access_tokens == {}


def test_without_the_app_client_id_the_install_flow_is_refused_and_stores_nothing(
        local_stack, github, monkeypatch):  # noqa: F811
    monkeypatch.delenv("KEYWAY_GITHUB_APP_CLIENT_ID")
    response = local_stack.call("POST", "/api/v1/connections",
                                local_stack.token(TENANT, ADMIN, "admin"),
                                json={"provider": "github", "github_app": True})
    assert response.status_code == 409 and response.mimetype == "application/problem+json"
    assert response.json["code"] == "oauth.provider_not_configured"
    assert "KEYWAY_GITHUB_APP_CLIENT_ID" in response.json["detail"]
    assert local_stack.ports.business.query("oauth_states") == []
    begin(local_stack, "github", local_stack.token(TENANT, ADMIN, "admin"))  # OAuth App: fine


def test_without_the_app_client_secret_the_install_stores_nothing(
        local_stack, github, monkeypatch):  # noqa: F811
    monkeypatch.delenv("KEYWAY_SECRET_GITHUB_APP_CLIENT_SECRET")
    started, done = install(local_stack, github)
    result = query_of(done.headers["Location"])
    assert result["status"] == "error" and result["reason"] == "vault.provider_not_configured"
    _nothing_stored(local_stack, started["connection"])
    assert github.access_tokens == {}
