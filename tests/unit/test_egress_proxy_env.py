"""Issue #20 item 6: sessions that talk to a provider or a notification receiver never consult
the proxy environment (``HTTP(S)_PROXY``, ``ALL_PROXY``, ``NO_PROXY``, netrc, CA-bundle
variables). Every one is hardened by :func:`shared.http_egress.harden` (``trust_env`` off,
proxies ignored by the pinned adapter), and no setting turns proxies on: a proxy would resolve
the provider's name itself and undo the address pinning."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import requests.sessions
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.bootstrap import build
from shared.clock import SystemClock
from shared.config import Config
from shared.errors import PermanentError
from shared.fetch.client import shared_session
from shared.notify import send
from shared.notify.subscriptions import secret_name
from shared.oauth import account
from shared.providers import registry
from shared.vault.github_app import AppCredentials, InstallationTokenMinter
from shared.vault.oauth import ClientCredentials, OAuthTokenClient
from tests.fakes.egress_servers import Recorder
from tests.unit.test_github_app import SPEC, private_pem

GITHUB = registry.get("github")
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                   "all_proxy")


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    """A recording server every proxy variable names; NO_PROXY exempts nothing we call."""
    server = Recorder().start()
    for name in PROXY_VARIABLES:
        monkeypatch.setenv(name, server.url)
    monkeypatch.setenv("NO_PROXY", "example.invalid")
    monkeypatch.setenv("no_proxy", "example.invalid")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/nonexistent/ca.pem")
    yield server
    server.stop()


@pytest.fixture
def environment_unread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make requests' environment lookups fail loudly: a session that consulted them (in
    ``merge_environment_settings`` or for netrc) would raise instead of sending."""
    def consulted(*args: object, **kwargs: object) -> None:
        raise AssertionError("the proxy environment was consulted")

    monkeypatch.setattr(requests.sessions, "get_environ_proxies", consulted)
    monkeypatch.setattr(requests.sessions, "get_netrc_auth", consulted)


@pytest.fixture
def provider() -> Iterator[Recorder]:
    server = Recorder().start()
    yield server
    server.stop()


def _oauth(provider: Recorder) -> tuple[requests.Session, object]:
    client = OAuthTokenClient(f"{provider.url}/token", ClientCredentials("c-1", "s" * 32),
                              requests.Session(), SystemClock())
    return client._session, lambda: client.refresh("ghr_" + "f" * 36)


def _installation(provider: Recorder) -> tuple[requests.Session, object]:
    pem = private_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    minter = InstallationTokenMinter(AppCredentials("1", pem), provider.url,
                                     requests.Session(), SystemClock(), SPEC)

    def call() -> None:
        with pytest.raises(PermanentError):  # the recorder's answer holds no installation token
            minter.mint("42")

    return minter._session, call


def _api(provider: Recorder) -> tuple[requests.Session, object]:
    session = shared_session()  # what fetch-P, act-P and webhook removal hand their clients
    return session, lambda: account.whoami(GITHUB, provider.url, "gho_" + "w" * 36, session)


def _notify(provider: Recorder, tmp_path: Path) -> tuple[requests.Session, object]:
    ports = build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path)}))
    ports.secrets.add_version(secret_name("sub-1"), b"w" * 32)
    event = {"id": "e-1", "type": "sync.completed", "created_at": "2026-01-01T00:00:00Z",
             "tenant": "t-1", "data": {}}

    def call() -> None:
        assert send.post(ports, event, "sub-1", f"{provider.url}/hook", 1).ok

    return send._session(), call


CLIENTS = {"oauth_token_client": _oauth, "installation_token_minter": _installation,
           "provider_api_client": _api, "notification_sender": _notify}


@pytest.mark.parametrize("kind", sorted(CLIENTS))
def test_provider_and_notification_requests_never_reach_the_proxy_the_environment_names(
        kind: str, proxy: Recorder, provider: Recorder, environment_unread: None,
        tmp_path: Path) -> None:
    build_client = CLIENTS[kind]
    session, call = (build_client(provider, tmp_path) if kind == "notification_sender"
                     else build_client(provider))
    call()
    assert session.trust_env is False
    assert len(provider.requests) >= 1
    assert proxy.requests == []


@pytest.mark.parametrize("kind", sorted(CLIENTS))
def test_a_proxy_variable_naming_a_dead_address_breaks_no_request(
        kind: str, provider: Recorder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens on discard
    build_client = CLIENTS[kind]
    _, call = (build_client(provider, tmp_path) if kind == "notification_sender"
               else build_client(provider))
    call()
    assert len(provider.requests) >= 1
