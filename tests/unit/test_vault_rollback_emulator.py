"""Rollback protection with both stores on the Firestore emulator: the vault records in the
`vault` database, their generation anchors in `(default)`."""

from __future__ import annotations

import dataclasses

import pytest

from shared.vault.anchors import COLLECTION as ANCHORS
from shared.vault.records import APP
from shared.vault.service import Undecryptable
from tests.unit.conftest import make_service
from tests.unit.test_vault import TENANT
from tests.unit.test_vault_refresh import expiring

pytestmark = pytest.mark.emulator


@pytest.fixture
def firestore_ports(ports, emulator_env, unique_project):
    from shared.adapters.gcp.firestore_store import FirestoreDocumentStore

    return dataclasses.replace(
        ports, business=FirestoreDocumentStore(unique_project, "(default)"),
        vault=FirestoreDocumentStore(unique_project, "vault"))


def _refresh(ports, vault) -> None:
    doc = ports.vault.get(APP, "conn-1")
    ports.vault.put(APP, "conn-1", {**doc, "expires_at": "2020-01-01T00:00:00.000000Z"})
    vault.release_for_fetch(TENANT, "conn-1", "scheduler")


def test_refreshes_advance_the_anchor_and_rollbacks_fail_closed_on_firestore(
        firestore_ports, token_server):
    ports, vault = firestore_ports, make_service(firestore_ports, token_server)
    vault.store_app_token(TENANT, "conn-1", "admin-1", expiring(token_server, minutes=60))
    copies = [ports.vault.get(APP, "conn-1")]
    for generation in (2, 3):
        _refresh(ports, vault)
        copies.append(ports.vault.get(APP, "conn-1"))
        assert copies[-1]["generation"] == generation
        assert ports.business.get(ANCHORS, f"{APP}:conn-1")["generation"] == generation
    calls = token_server.refresh_calls
    ports.vault.put(APP, "conn-1", {**copies[2], "refresh_token": copies[1]["refresh_token"],
                                    "expires_at": "2020-01-01T00:00:00.000000Z"})
    with pytest.raises(Undecryptable):  # an older field swapped back
        vault.release_for_fetch(TENANT, "conn-1", "scheduler")
    ports.vault.put(APP, "conn-1", copies[1])
    with pytest.raises(Undecryptable):  # the whole record, one generation back
        vault.release_for_fetch(TENANT, "conn-1", "scheduler")
    assert ports.vault.get(APP, "conn-1")["status_reason"] == "vault.undecryptable"
    assert token_server.refresh_calls == calls
