"""Single-flight refresh on the Firestore emulator (kept small: contended emulator
transactions cost seconds each)."""

from __future__ import annotations

import dataclasses

import pytest

from shared.vault.records import APP
from tests.unit.conftest import make_service
from tests.unit.test_vault import TENANT
from tests.unit.test_vault_refresh import expiring, refresh_concurrently


@pytest.mark.emulator
def test_concurrent_refreshers_on_firestore_call_the_token_endpoint_once(
        ports, token_server, emulator_env, unique_project):
    from shared.adapters.gcp.firestore_store import FirestoreDocumentStore

    ports = dataclasses.replace(
        ports, business=FirestoreDocumentStore(unique_project, "(default)"),
        vault=FirestoreDocumentStore(unique_project, "vault"))
    token_server.delay = 0.3
    make_service(ports, token_server).store_app_token(TENANT, "conn-1", "admin-1",
                                                      expiring(token_server))
    results = refresh_concurrently(ports, token_server, 4)
    assert token_server.refresh_calls == 1
    assert {r.access_token for r in results} == {token_server.issued_access[0]}
    vault = make_service(ports, token_server)
    stored = vault.codec.decode(APP, "conn-1", ports.vault.get(APP, "conn-1"),
                                vault.anchors.floor(APP, "conn-1"))
    assert stored.refresh_token in token_server.valid_refresh
