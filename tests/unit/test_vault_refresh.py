"""Single-flight refresh: many instances, one call to the provider, nobody loses a token."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from shared.errors import UnavailableError
from shared.vault.records import APP
from shared.vault.refresh import NeedsReauth
from shared.vault.tokens import TokenSet
from tests.unit.conftest import make_service
from tests.unit.test_vault import TENANT


def expiring(server, minutes: float = 1) -> TokenSet:
    return TokenSet(access_token=server.on_issue("gho_" + "E" * 36),
                    refresh_token=server.issue_refresh_token(),
                    expires_at=datetime.now(UTC) + timedelta(minutes=minutes), scopes=("repo",))


def refresh_concurrently(ports, server, count: int) -> list:
    services = [make_service(ports, server) for _ in range(count)]  # one per "instance"
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


def test_twenty_concurrent_refreshers_call_the_token_endpoint_once(ports, token_server):
    token_server.delay = 0.3  # widen the race window
    old = expiring(token_server)
    make_service(ports, token_server).store_app_token(TENANT, "conn-1", "admin-1", old)
    results = refresh_concurrently(ports, token_server, 20)
    assert token_server.refresh_calls == 1
    assert all(isinstance(r, TokenSet) for r in results), results
    assert {r.access_token for r in results} == {token_server.issued_access[0]}


def test_the_rotated_refresh_token_is_persisted_and_still_works(ports, token_server):
    vault = make_service(ports, token_server)
    old = expiring(token_server)
    vault.store_app_token(TENANT, "conn-1", "admin-1", old)
    vault.refresher.fresh(APP, "conn-1")
    stored = vault.codec.decode(APP, "conn-1", ports.vault.get(APP, "conn-1"), 2)
    assert stored.refresh_token != old.refresh_token
    assert stored.refresh_token in token_server.valid_refresh
    assert old.refresh_token not in token_server.valid_refresh
    assert ports.vault.get(APP, "conn-1")["generation"] == 2


def test_a_valid_token_is_not_refreshed(ports, token_server):
    vault = make_service(ports, token_server)
    vault.store_app_token(TENANT, "conn-1", "admin-1", expiring(token_server, minutes=60))
    vault.refresher.fresh(APP, "conn-1")
    assert token_server.refresh_calls == 0


def test_invalid_grant_marks_needs_reauth_and_stops_releases(ports, token_server):
    vault = make_service(ports, token_server)
    tokens = expiring(token_server)
    token_server.valid_refresh.clear()  # the provider revoked the grant
    vault.store_app_token(TENANT, "conn-1", "admin-1", tokens)
    ports.business.put("connections", "conn-1", {"tenant": TENANT, "status": "active"})
    with pytest.raises(NeedsReauth):
        vault.release_for_fetch(TENANT, "conn-1", "scheduler")
    assert ports.vault.get(APP, "conn-1")["status"] == "needs_reauth"
    with pytest.raises(NeedsReauth):
        vault.release_for_fetch(TENANT, "conn-1", "scheduler")
    assert token_server.refresh_calls == 1


def test_provider_outage_is_retryable_and_keeps_the_old_token(ports, token_server):
    vault = make_service(ports, token_server)
    tokens = expiring(token_server)
    vault.store_app_token(TENANT, "conn-1", "admin-1", tokens)
    token_server.down = True
    with pytest.raises(UnavailableError):
        vault.refresher.fresh(APP, "conn-1")
    doc = ports.vault.get(APP, "conn-1")
    assert doc["refresh_lease"] is None and doc["generation"] == 1
    assert vault.codec.decode(APP, "conn-1", doc, 1).refresh_token == tokens.refresh_token
    token_server.down = False
    assert vault.refresher.fresh(APP, "conn-1").access_token == token_server.issued_access[0]
