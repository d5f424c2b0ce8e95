"""Jira's rotating refresh tokens against the vault's single-flight refresh: concurrent
refreshers (one vault instance each) never present a used refresh token to the simulator,
which would revoke the whole token family if one were reused outside its leeway."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime, timedelta

import pytest
import requests

from keyway.simulators import JiraSimulator
from shared.vault.oauth import ClientCredentials, InvalidGrant, OAuthTokenClient
from shared.vault.records import APP
from shared.vault.service import VaultService
from shared.vault.tokens import TokenSet

TENANT = "tenant-a"
SCOPES = ("read:jira-work", "read:jira-user", "offline_access")


@pytest.fixture
def jira(leak_guard):
    sim = JiraSimulator(on_issue=leak_guard.track).start()
    sim.register_client("jira-client", leak_guard.track("jira-client-secret-1"),
                        ["http://127.0.0.1:8080/oauth-jira/callback"])
    sim.stall_next(0.3, count=1000, path_prefix="/oauth/token")  # widen the race window
    yield sim
    sim.stop()


def endpoint(ports, sim) -> OAuthTokenClient:
    return OAuthTokenClient(f"{sim.oauth_url}/oauth/token",
                            ClientCredentials("jira-client", "jira-client-secret-1"),
                            requests.Session(), ports.clock)


def service(ports, sim) -> VaultService:
    ports.keys.ensure_key("vault-jira")
    return VaultService("jira", ports, endpoint(ports, sim))


def store_expiring(ports, sim) -> TokenSet:
    issued = sim.oauth.mint("jira-client", scopes=SCOPES)
    tokens = TokenSet(issued.access_token, issued.refresh_token,
                      datetime.now(UTC) + timedelta(minutes=1), SCOPES)
    service(ports, sim).store_app_token(TENANT, "conn-1", "admin-1", tokens)
    return tokens


def refresh_concurrently(ports, sim, count: int) -> list:
    services = [service(ports, sim) for _ in range(count)]  # one per "instance"
    results: list = [None] * count
    barrier = threading.Barrier(count)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = services[i].refresher.fresh(APP, "conn-1")
        except Exception as e:  # recorded and asserted below
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def assert_one_clean_rotation(ports, sim, old: TokenSet, results: list) -> None:
    assert sim.refresh_calls == 1  # exactly one refresh reached the token endpoint
    assert sim.reuses == [] and sim.family_revocations == 0  # no used token presented again
    assert all(isinstance(r, TokenSet) for r in results), results
    assert len({r.access_token for r in results}) == 1
    assert results[0].access_token != old.access_token
    vault = service(ports, sim)
    stored = vault.codec.decode(APP, "conn-1", ports.vault.get(APP, "conn-1"),
                                vault.anchors.floor(APP, "conn-1"))
    assert stored.refresh_token != old.refresh_token
    assert not sim.oauth.family_revoked(stored.refresh_token)
    again = endpoint(ports, sim).refresh(stored.refresh_token)  # the persisted one still works
    assert again.access_token and sim.reuses == []


def test_twenty_concurrent_refreshers_rotate_the_jira_token_exactly_once(ports, jira):
    old = store_expiring(ports, jira)
    results = refresh_concurrently(ports, jira, 20)
    assert_one_clean_rotation(ports, jira, old, results)


@pytest.mark.emulator
def test_concurrent_refreshers_on_firestore_rotate_the_jira_token_exactly_once(
        ports, jira, emulator_env, unique_project):
    from shared.adapters.gcp.firestore_store import FirestoreDocumentStore

    ports = dataclasses.replace(
        ports, business=FirestoreDocumentStore(unique_project, "(default)"),
        vault=FirestoreDocumentStore(unique_project, "vault"))
    old = store_expiring(ports, jira)
    results = refresh_concurrently(ports, jira, 4)
    assert_one_clean_rotation(ports, jira, old, results)


def test_the_simulator_revokes_the_family_when_a_used_token_is_replayed(ports, jira):
    """The control: what the single-flight refresh prevents would be caught here."""
    jira.oauth.reuse_leeway = 0.0
    old = store_expiring(ports, jira)
    client = endpoint(ports, jira)
    fresh = client.refresh(old.refresh_token)
    with pytest.raises(InvalidGrant):
        client.refresh(old.refresh_token)  # a second, uncoordinated refresher
    assert jira.family_revocations == 1 and jira.reuses[0].revoked_family
    with pytest.raises(InvalidGrant):
        client.refresh(fresh.refresh_token)  # the whole family is gone
    assert fresh.access_token in jira.revoked


def test_a_reuse_within_the_leeway_is_answered_but_recorded(ports, jira):
    old = store_expiring(ports, jira)
    client = endpoint(ports, jira)
    client.refresh(old.refresh_token)
    client.refresh(old.refresh_token)
    assert jira.family_revocations == 0
    assert [r.revoked_family for r in jira.reuses] == [False]
