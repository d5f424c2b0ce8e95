"""Promise 9 and 6 at every use: token-bearing requests never follow a redirect, and the
address checked is the address connected to (:mod:`shared.http_egress`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from shared import bootstrap
from shared.clock import SystemClock
from shared.fetch.client import ProviderClient
from shared.hosts import registry as hosts
from shared.http_egress import AddressRefused, RedirectRefused, egress_session
from shared.oauth import account
from shared.providers import registry
from shared.vault.endpoints import endpoint_for
from shared.vault.github_app import AppCredentials, InstallationTokenMinter
from shared.vault.oauth import ClientCredentials, OAuthTokenClient
from tests.fakes.egress_servers import Listener, Recorder, ScriptedDns, TlsRecorder, self_signed
from tests.unit.test_github_app import SPEC, private_pem

GITHUB = registry.get("github")
SECRET = "client-secret-" + "s" * 24  # noqa: S105 - a test credential
CODE, VERIFIER, REFRESH = "code-" + "c" * 20, "verifier-" + "v" * 40, "ghr_" + "f" * 36
NAME = "rebind.keyway.test"


@pytest.fixture
def location() -> Iterator[Recorder]:
    """Where a hostile redirect points: it must never be contacted."""
    server = Recorder().start()
    yield server
    server.stop()


def redirector(status: int, to: Recorder) -> Recorder:
    return Recorder(status=status, location=f"{to.url}/steal").start()


def _assert_clean(error: BaseException, *secrets: str) -> None:
    assert not any(s in f"{error!s}{error!r}" for s in secrets)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("operation", ["exchange", "refresh", "revoke", "revoke_grant"])
def test_token_endpoint_refuses_redirects_and_never_contacts_the_location(
        status, operation, location, leak_guard):
    for secret in (SECRET, CODE, VERIFIER, REFRESH):
        leak_guard.track(secret)
    provider = redirector(status, location)
    try:
        grant = operation == "revoke_grant"
        client = OAuthTokenClient(
            f"{provider.url}/token", ClientCredentials("client-1", SECRET), requests.Session(),
            SystemClock(), revoke_style="github_grant" if grant else "rfc7009",
            revoke_url=f"{provider.url}/applications/{{client_id}}/grant" if grant
            else f"{provider.url}/revoke")
        calls = {"exchange": lambda: client.exchange_code(CODE, "https://k/cb", VERIFIER),
                 "refresh": lambda: client.refresh(REFRESH),
                 "revoke": lambda: client.revoke(REFRESH),
                 "revoke_grant": lambda: client.revoke(REFRESH)}
        with pytest.raises(RedirectRefused) as refused:
            calls[operation]()
    finally:
        provider.stop()
    assert refused.value.key == "provider.redirect_refused"
    assert len(provider.requests) == 1 and location.requests == []
    _assert_clean(refused.value, SECRET, CODE, VERIFIER, REFRESH, location.url)


def test_installation_token_request_refuses_a_redirect(location, leak_guard):
    pem = private_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    provider = redirector(307, location)
    try:
        minter = InstallationTokenMinter(AppCredentials("1", pem), provider.url,
                                         requests.Session(), SystemClock(), SPEC)
        with pytest.raises(RedirectRefused):
            minter.mint("42")
    finally:
        provider.stop()
    assert location.requests == []


def test_whoami_after_the_exchange_refuses_a_redirect(location, leak_guard):
    token = leak_guard.track("gho_" + "w" * 36)
    provider = redirector(302, location)
    try:
        with pytest.raises(RedirectRefused):
            account.whoami(GITHUB, provider.url, token, requests.Session())
    finally:
        provider.stop()
    assert location.requests == []


@pytest.fixture
def second_address() -> Iterator[Listener]:
    """The loopback address a rebinding name switches to (TLS never reaches it)."""
    listener = Listener("127.0.0.2").start()
    yield listener
    listener.stop()


def test_dns_rebinding_after_the_check_never_reaches_the_second_address(
        second_address, monkeypatch, leak_guard):
    token = leak_guard.track("gho_" + "d" * 36)
    dns = ScriptedDns(NAME, ["140.82.112.6"], ["127.0.0.2"])
    monkeypatch.setattr("socket.getaddrinfo", dns)
    client = ProviderClient(GITHUB, f"https://{NAME}:{second_address.port}/api/v3", token,
                            requests.Session(), SystemClock(), local_mode=False, max_attempts=1,
                            purpose="fetch",
                            timeout=2)  # the construction check saw a public address
    with pytest.raises(AddressRefused) as refused:
        client.get("GET /user")
    assert refused.value.key == "ssrf.refused"
    assert second_address.connections == 0


@pytest.fixture
def deployed(monkeypatch) -> Iterator[None]:
    """A process on the gcp backend: loopback is refused too."""
    monkeypatch.setenv("KEYWAY_BACKEND", "gcp")
    for name, value in (("KEYWAY_PROJECT", "keyway-test"),
                        ("KEYWAY_PUBLIC_URL", "https://keyway.example"),
                        ("KEYWAY_AUTH_ISSUER", "https://issuer.keyway.example")):
        monkeypatch.setenv(name, value)
    bootstrap.environment_config.cache_clear()
    yield
    bootstrap.environment_config.cache_clear()


@pytest.mark.parametrize("now", ["127.0.0.2", "10.0.0.7", "169.254.169.254",
                                 "::ffff:169.254.169.254", "fd00::7"])
@pytest.mark.parametrize("operation", ["refresh", "revoke"])
def test_a_host_resolving_to_a_refused_address_at_refresh_time_is_refused(
        now, operation, second_address, ports, deployed, monkeypatch, leak_guard):
    leak_guard.track(SECRET), leak_guard.track(REFRESH)
    monkeypatch.setenv("KEYWAY_SECRET_GITHUB_CLIENT_SECRET", SECRET)
    monkeypatch.setattr("socket.getaddrinfo", ScriptedDns(NAME, ["140.82.112.6"], [now]))
    base = f"https://{NAME}:{second_address.port}"
    host = hosts.register(ports, tenant="t-1", provider="github", base_url=base,  # clean
                          client_id="Iv1.ghes", client_secret=SECRET, created_by="admin-1",
                          local_mode=False)
    endpoint = endpoint_for("github", ports, {}, host=host.id, tenant="t-1")
    with pytest.raises(AddressRefused) as refused:
        endpoint.refresh(REFRESH) if operation == "refresh" else endpoint.revoke(REFRESH)
    assert refused.value.key == "ssrf.refused" and second_address.connections == 0
    _assert_clean(refused.value, SECRET, REFRESH)


def test_each_request_resolves_once_and_connects_to_the_checked_address():
    server = Recorder().start()
    lookups: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    try:
        session = egress_session(local_mode=True, resolve=resolve)
        for _ in range(2):
            assert session.get(f"http://sim.keyway.test:{server.port}/x", timeout=5).ok
    finally:
        server.stop()
    assert lookups == ["sim.keyway.test"] * 2
    assert [r["host"] for r in server.requests] == [f"sim.keyway.test:{server.port}"] * 2


def test_loopback_is_refused_outside_local_mode_before_connecting(second_address):
    session = egress_session(local_mode=False, resolve=lambda host, port: ["127.0.0.2"])
    with pytest.raises(AddressRefused):
        session.get(f"https://sim.keyway.test:{second_address.port}/", timeout=2)
    assert second_address.connections == 0


def test_pinned_tls_still_sends_and_verifies_the_host_name(tmp_path):
    cert, key = self_signed("pinned.keyway.test", tmp_path)
    server = TlsRecorder(cert, key).start()
    session = egress_session(local_mode=True, resolve=lambda host, port: ["127.0.0.1"])
    try:
        answer = session.get(f"https://pinned.keyway.test:{server.port}/x", verify=cert,
                             timeout=5)
        with pytest.raises(requests.exceptions.SSLError):  # same address, another name
            session.get(f"https://other.keyway.test:{server.port}/x", verify=cert, timeout=5)
    finally:
        server.stop()
    assert answer.ok and server.sni[0] == "pinned.keyway.test"
    assert [r["host"] for r in server.requests] == [f"pinned.keyway.test:{server.port}"]
