"""The host registry and per-host OAuth clients (promise 9): a self-hosted host is used only
once registered by the tenant, with its own client; token requests to it carry that client
and never the global one or another host's; nothing goes to an unregistered base URL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import pytest

from shared.errors import InvalidInput
from shared.hosts import registry as hosts
from shared.http_egress import RedirectRefused
from shared.vault import handlers as vault_handlers
from shared.vault.endpoints import HostClientMissing, endpoint_for
from shared.vault.records import APP
from shared.vault.refresh import NeedsReauth
from shared.vault.tokens import TokenSet
from tests.fakes.egress_servers import Recorder

TENANT = "t-1"
GLOBAL_ID, GLOBAL_SECRET = "gl-cloud-app", "global-cloud-secret-" + "g" * 20  # noqa: S105
X_ID, X_SECRET = "gl-x-app", "host-x-secret-" + "x" * 24  # noqa: S105 - test credentials
Y_ID, Y_SECRET = "gl-y-app", "host-y-secret-" + "y" * 24  # noqa: S105


@pytest.fixture
def global_client(monkeypatch, leak_guard):
    leak_guard.track(GLOBAL_SECRET), leak_guard.track(X_SECRET), leak_guard.track(Y_SECRET)
    monkeypatch.setenv("KEYWAY_GITLAB_CLIENT_ID", GLOBAL_ID)
    monkeypatch.setenv("KEYWAY_SECRET_GITLAB_CLIENT_SECRET", GLOBAL_SECRET)


@pytest.fixture
def servers():
    x, y = Recorder("127.0.0.2").start(), Recorder("127.0.0.3").start()
    yield x, y
    x.stop()
    y.stop()


def register(ports, base_url: str, client_id: str = X_ID, secret: str = X_SECRET,
             tenant: str = TENANT, provider: str = "gitlab", local_mode: bool = True):
    return hosts.register(ports, tenant=tenant, provider=provider, base_url=base_url,
                          client_id=client_id, client_secret=secret, created_by="admin-1",
                          local_mode=local_mode)


def forms(server: Recorder) -> list[dict[str, str]]:
    return [{k: v[0] for k, v in parse_qs(r["body"]).items()} for r in server.requests]


def test_a_host_is_stored_without_its_secret(ports, leak_guard):
    leak_guard.track(X_SECRET)
    host = register(ports, "http://127.0.0.2:8443/gitlab/")
    doc = ports.business.get(hosts.COLLECTION, host.id)
    assert doc["base_url"] == "http://127.0.0.2:8443/gitlab" and doc["client_id"] == X_ID
    assert X_SECRET not in repr(doc) + repr(host) + repr(host.view())
    assert host.secret_name.startswith("host-gitlab-") and "secret_name" not in host.view()
    assert ports.secrets.access(host.secret_name).decode() == X_SECRET


@pytest.mark.parametrize("base_url", ["http://gitlab.example.com", "https://127.0.0.2",
                                      "https://10.1.2.3", "https://169.254.169.254",
                                      "https://[::1]", "http://8.8.8.8"])
def test_a_non_https_or_private_host_is_refused_outside_local_mode(ports, base_url):
    with pytest.raises(InvalidInput) as refused:
        register(ports, base_url, local_mode=False)
    assert refused.value.key == "ssrf.refused"
    assert ports.business.query(hosts.COLLECTION) == []


def test_local_mode_allows_loopback_but_never_a_private_or_metadata_host(ports):
    assert register(ports, "http://127.0.0.2:9000").base_url == "http://127.0.0.2:9000"
    for base_url in ("https://10.1.2.3", "http://169.254.169.254", "http://[fd00::1]"):
        with pytest.raises(InvalidInput, match="base URL refused"):
            register(ports, base_url)


@pytest.mark.parametrize(("client_id", "secret"), [("", X_SECRET), ("a b", X_SECRET),
                                                   (X_ID, "short"), (X_ID, "x" * 2000),
                                                   (X_ID, None), (7, X_SECRET)])
def test_a_malformed_client_is_refused_and_nothing_stored(ports, client_id, secret):
    with pytest.raises(hosts.InvalidClient):
        register(ports, "http://127.0.0.2:9000", client_id=client_id, secret=secret)
    assert ports.business.query(hosts.COLLECTION) == []


def test_a_cloud_only_provider_takes_no_host(ports):
    with pytest.raises(InvalidInput) as refused:
        register(ports, "http://127.0.0.2:9000", provider="bitbucket")
    assert refused.value.key == "oauth.no_base_url"


def test_a_host_is_found_only_for_its_tenant_and_provider(ports):
    host = register(ports, "http://127.0.0.2:9000")
    assert hosts.lookup(ports, TENANT, "gitlab", host.base_url) == host
    for tenant, provider in (("t-2", "gitlab"), (TENANT, "github")):
        with pytest.raises(hosts.HostNotRegistered) as refused:
            hosts.lookup(ports, tenant, provider, host.base_url)
        assert refused.value.key == "oauth.host_not_registered" and refused.value.status == 400


def test_registering_a_host_twice_is_a_conflict_that_keeps_the_first_secret(ports):
    host = register(ports, "http://127.0.0.2:9000")
    with pytest.raises(hosts.HostExists):
        register(ports, "http://127.0.0.2:9000/", client_id=Y_ID, secret=Y_SECRET)
    assert ports.secrets.access(host.secret_name).decode() == X_SECRET
    assert hosts.get(ports, host.id).client_id == X_ID


def test_an_abandoned_reservation_is_taken_over_but_a_fresh_one_is_not(ports):
    base = "http://127.0.0.2:9000"
    id_ = hosts.host_id(TENANT, "gitlab", base)
    pending = {"tenant": TENANT, "provider": "gitlab", "base_url": base, "client_id": Y_ID,
               "secret_name": hosts.secret_name("gitlab", id_), "status": "pending",
               "created_by": "admin-2"}
    fresh = datetime.now(UTC) - timedelta(seconds=30)
    ports.business.put(hosts.COLLECTION, id_, {**pending, "created_at": fresh.isoformat()})
    with pytest.raises(hosts.HostExists):
        register(ports, base)
    stale = datetime.now(UTC) - hosts.PENDING_TTL - timedelta(seconds=1)
    ports.business.put(hosts.COLLECTION, id_, {**pending, "created_at": stale.isoformat()})
    assert register(ports, base).client_id == X_ID
    assert ports.secrets.access(hosts.secret_name("gitlab", id_)).decode() == X_SECRET


def test_a_host_in_use_is_not_removed_until_its_connections_are_gone(ports):
    host = register(ports, "http://127.0.0.2:9000")
    ports.business.put("connections", "c-1", {"tenant": TENANT, "provider": "gitlab",
                                              "host": host.id, "status": "active"})
    with pytest.raises(hosts.HostInUse):
        hosts.remove(ports, TENANT, host.id)
    with pytest.raises(hosts.HostNotFound):
        hosts.remove(ports, "t-2", host.id)
    assert ports.secrets.access(host.secret_name)
    ports.business.put("connections", "c-1", {"tenant": TENANT, "provider": "gitlab",
                                              "host": host.id, "status": "disconnected"})
    hosts.remove(ports, TENANT, host.id)
    assert hosts.list_hosts(ports, TENANT) == []
    with pytest.raises(Exception, match="no enabled version"):
        ports.secrets.access(host.secret_name)


def test_a_hosts_code_exchange_refresh_and_revocation_carry_only_its_own_client(
        ports, global_client, servers):
    x, y = servers
    host = register(ports, x.url)
    register(ports, y.url, client_id=Y_ID, secret=Y_SECRET)
    endpoint = endpoint_for("gitlab", ports, host=host.id, tenant=TENANT)
    endpoint.exchange_code("code-1", "http://127.0.0.1:8080/oauth-gitlab/callback", "v" * 43)
    endpoint.refresh("refresh-" + "r" * 32)
    assert endpoint.revoke("access-" + "a" * 32)
    sent = forms(x)
    assert [r["path"] for r in x.requests] == ["/oauth/token", "/oauth/token", "/oauth/revoke"]
    assert all(f["client_id"] == X_ID and f["client_secret"] == X_SECRET for f in sent)
    everything = repr(x.requests)
    assert GLOBAL_SECRET not in everything and GLOBAL_ID not in everything
    assert Y_SECRET not in everything and y.requests == []


def test_a_host_of_another_tenant_or_provider_is_never_used(ports, global_client, servers):
    x, _ = servers
    host = register(ports, x.url)
    for provider, tenant in (("gitlab", "t-2"), ("github", TENANT)):
        endpoint = endpoint_for(provider, ports, host=host.id, tenant=tenant)
        with pytest.raises(HostClientMissing):
            endpoint.refresh("refresh-" + "r" * 32)
        assert endpoint.revoke("access-" + "a" * 32) is False
    assert x.requests == []


def test_a_base_url_without_a_registered_host_receives_nothing(ports, global_client, servers):
    """A record that names a base URL but no registered host (made before hosts existed):
    the global client is configured, yet nothing is sent there."""
    x, _ = servers
    endpoint = endpoint_for("gitlab", ports, base_url=x.url)
    with pytest.raises(hosts.HostNotRegistered):
        endpoint.exchange_code("code-1", "http://127.0.0.1:8080/oauth-gitlab/callback")
    with pytest.raises(HostClientMissing):
        endpoint.refresh("refresh-" + "r" * 32)
    assert endpoint.revoke("access-" + "a" * 32) is False
    assert x.requests == []


def test_the_vault_refreshes_and_revokes_a_hosts_tokens_with_that_hosts_client(
        ports, global_client, servers):
    x, y = servers
    host = register(ports, x.url)
    register(ports, y.url, client_id=Y_ID, secret=Y_SECRET)
    vault_handlers._SERVICES.clear()
    vault = vault_handlers.service("gitlab", ports)
    expiring = TokenSet("access-" + "a" * 32, "refresh-" + "r" * 32,
                        datetime.now(UTC) + timedelta(seconds=30), ("read_api",))
    vault.store_app_token(TENANT, "c-1", "admin-1", expiring, host.base_url, host=host.id)
    vault.refresher.fresh(APP, "c-1")
    vault.disconnect(TENANT, "c-1", "admin-1")
    vault_handlers._SERVICES.clear()
    assert [r["path"] for r in x.requests][0] == "/oauth/token" and len(x.requests) >= 2
    assert all(f["client_id"] == X_ID and f["client_secret"] == X_SECRET for f in forms(x))
    assert GLOBAL_SECRET not in repr(x.requests) and y.requests == []


@pytest.mark.parametrize("operation", ["exchange", "refresh", "revoke"])
def test_a_hosts_redirect_is_refused_and_its_target_receives_nothing(ports, global_client,
                                                                      servers, operation):
    target, _ = servers
    redirector = Recorder("127.0.0.4", status=307, location=target.url + "/oauth/token")
    redirector.start()
    try:
        endpoint = endpoint_for("gitlab", ports, host=register(ports, redirector.url).id,
                                tenant=TENANT)
        with pytest.raises(RedirectRefused) as refused:
            {"exchange": lambda: endpoint.exchange_code("code-1", "http://127.0.0.1/cb"),
             "refresh": lambda: endpoint.refresh("refresh-" + "r" * 32),
             "revoke": lambda: endpoint.revoke("access-" + "a" * 32)}[operation]()
    finally:
        redirector.stop()
    assert refused.value.key == "provider.redirect_refused" and target.requests == []
    assert len(redirector.requests) == 1


def test_a_stored_token_of_an_unregistered_host_turns_needs_reauth_and_nothing_is_sent(
        ports, global_client, servers):
    """A record made before hosts were registered names a base URL but no host: its refresh
    and revocation must not fall back to the global client."""
    x, _ = servers
    vault_handlers._SERVICES.clear()
    vault = vault_handlers.service("gitlab", ports)
    expiring = TokenSet("access-" + "a" * 32, "refresh-" + "r" * 32,
                        datetime.now(UTC) + timedelta(seconds=30), ("read_api",))
    vault.store_app_token(TENANT, "c-1", "admin-1", expiring, x.url)
    with pytest.raises(NeedsReauth) as reauth:
        vault.refresher.fresh(APP, "c-1")
    assert reauth.value.key == "oauth.host_not_registered"
    assert ports.vault.get(APP, "c-1")["status"] == "needs_reauth"
    assert vault.disconnect(TENANT, "c-1", "admin-1") is False
    vault_handlers._SERVICES.clear()
    assert x.requests == []


@pytest.mark.emulator
def test_the_registry_on_the_firestore_emulator(ports, emulator_env, unique_project):
    """The same reservation, lookup and in-use check on Firestore (the gcp store)."""
    import dataclasses

    from shared.adapters.gcp.firestore_store import FirestoreDocumentStore

    ports = dataclasses.replace(ports, business=FirestoreDocumentStore(unique_project,
                                                                       "(default)"))
    host = register(ports, "http://127.0.0.2:9000")
    with pytest.raises(hosts.HostExists):
        register(ports, "http://127.0.0.2:9000", client_id=Y_ID, secret=Y_SECRET)
    assert hosts.lookup(ports, TENANT, "gitlab", host.base_url) == host
    with pytest.raises(hosts.HostNotRegistered):
        hosts.lookup(ports, "t-2", "gitlab", host.base_url)
    ports.business.put("connections", "c-1", {"tenant": TENANT, "provider": "gitlab",
                                              "host": host.id, "status": "active"})
    with pytest.raises(hosts.HostInUse):
        hosts.remove(ports, TENANT, host.id)
    ports.business.delete("connections", "c-1")
    hosts.remove(ports, TENANT, host.id)
    assert hosts.list_hosts(ports, TENANT) == []
