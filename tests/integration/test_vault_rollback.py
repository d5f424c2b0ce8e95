"""Rollback protection for vault records: a field from an older generation of its record, or
the whole record restored from an older copy, fails closed — the opaque decrypt error, the
connection `needs_reauth` with `vault.undecryptable`, no envelope pushed, nothing refreshed —
while store → refresh → use keeps working across generations, and a crash between the record
write and the anchor write leaves a usable record."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from shared import messages, policy
from shared.actions.model import doc_id
from shared.crypto.fields import FieldContext
from shared.errors import CryptoError
from shared.ids import identity_id
from shared.messages import Inbound
from shared.vault import handlers
from shared.vault.anchors import COLLECTION as ANCHORS
from shared.vault.receive import open_pushed_token
from shared.vault.records import APP, PERSONAL
from shared.vault.service import Undecryptable, VaultService
from shared.vault.tokens import TokenSet
from tests.integration.test_vault_flow import stack  # noqa: F401 - the fixture
from tests.unit.test_fields import legacy_ciphertext

TENANT, CONN = "t-1", "conn-1"
SYNC = Inbound("sync-requests-github", "sync.requested", 1, "scheduler",
               {"tenant": TENANT, "connection": CONN}, "m-1")


def _vault(ports) -> VaultService:
    return handlers.service("github", ports)


def _connect(ports, server, minutes: float = 60) -> TokenSet:
    token = TokenSet("gho_" + "S" * 36, server.issue_refresh_token(),
                     datetime.now(UTC) + timedelta(minutes=minutes), ("repo",))
    _vault(ports).store_app_token(TENANT, CONN, "admin", token)
    ports.business.put("connections", CONN, {"tenant": TENANT, "provider": "github",
                                             "kind": "app", "status": "active"})
    return token


def _expire(ports) -> None:
    """Make the stored access token due for refresh (a clear field: no ciphertext touched)."""
    doc = ports.vault.get(APP, CONN)
    ports.vault.put(APP, CONN, {**doc, "expires_at": "2020-01-01T00:00:00.000000Z"})


def _jobs(ports) -> list[messages.Inbound]:
    got: list = []
    ports.bus.pull(policy.subscription_name("fetch-jobs-github"), got.append, max_messages=10)
    return [messages.decode("fetch-jobs-github", m.data, m.attributes, m.message_id)
            for m in got]


def _synced_token(ports) -> str:
    """Run one sync request; the token fetch-github receives."""
    handlers.on_sync_requested("github", ports, SYNC)
    [job] = _jobs(ports)
    return open_pushed_token(ports, "fetch-github", job.body["envelope"], "fetch")[1]


def _assert_failed_closed(ports, server, refresh_calls: int) -> None:
    with pytest.raises(Undecryptable) as refused:
        handlers.on_sync_requested("github", ports, SYNC)
    assert refused.value.key == "vault.undecryptable"
    connection = ports.business.get("connections", CONN)
    assert (connection["status"], connection["status_reason"]) == (
        "needs_reauth", "vault.undecryptable")
    assert ports.vault.get(APP, CONN)["status"] == "needs_reauth"
    assert _jobs(ports) == []  # no envelope pushed
    assert server.refresh_calls == refresh_calls  # nothing refreshed with it


def test_an_older_access_token_swapped_back_fails_closed(stack):  # noqa: F811
    ports, server = stack
    _connect(ports, server)
    replaced = ports.vault.get(APP, CONN)  # generation 1
    newer = _connect(ports, server)  # the admin connected again: generation 2
    assert _synced_token(ports) == newer.access_token
    doc = ports.vault.get(APP, CONN)
    ports.vault.put(APP, CONN, {**doc, "access_token": replaced["access_token"]})
    _assert_failed_closed(ports, server, refresh_calls=0)


def test_an_older_rotated_refresh_token_swapped_back_fails_closed(stack):  # noqa: F811
    ports, server = stack
    _connect(ports, server, minutes=1)
    rotated_away = ports.vault.get(APP, CONN)["refresh_token"]  # generation 1
    assert _synced_token(ports) == server.issued_access[0]  # refreshed: generation 2
    _expire(ports)
    doc = ports.vault.get(APP, CONN)
    ports.vault.put(APP, CONN, {**doc, "refresh_token": rotated_away})
    _assert_failed_closed(ports, server, refresh_calls=1)


def test_the_whole_record_restored_from_an_older_copy_is_refused(stack):  # noqa: F811
    ports, server = stack
    _connect(ports, server, minutes=1)
    old_copy = ports.vault.get(APP, CONN)  # every field and generation 1, together
    assert _synced_token(ports) == server.issued_access[0]
    assert ports.business.get(ANCHORS, f"{APP}:{CONN}")["generation"] == 2
    ports.vault.put(APP, CONN, old_copy)
    _assert_failed_closed(ports, server, refresh_calls=1)


def test_a_restored_copy_of_a_disconnected_record_is_refused(stack):  # noqa: F811
    ports, server = stack
    _connect(ports, server)
    old_copy = ports.vault.get(APP, CONN)
    _vault(ports).disconnect(TENANT, CONN, "api")
    ports.vault.put(APP, CONN, old_copy)
    ports.business.put("connections", CONN, {"tenant": TENANT, "status": "active"})
    _assert_failed_closed(ports, server, refresh_calls=0)


def test_a_ciphertext_from_another_record_at_the_same_generation_fails(stack):  # noqa: F811
    ports, server = stack
    _connect(ports, server)
    _vault(ports).store_app_token(TENANT, "conn-2", "admin", TokenSet(
        "gho_" + "O" * 36, None, datetime.now(UTC) + timedelta(hours=1)))
    doc, other = ports.vault.get(APP, CONN), ports.vault.get(APP, "conn-2")
    assert doc["generation"] == other["generation"] == 1
    ports.vault.put(APP, CONN, {**doc, "access_token": other["access_token"]})
    _assert_failed_closed(ports, server, refresh_calls=0)


def test_store_refresh_and_use_work_across_several_generations(stack):  # noqa: F811
    ports, server = stack
    _connect(ports, server, minutes=1)
    for generation in range(2, 6):
        _expire(ports)
        assert _synced_token(ports) == server.issued_access[-1]
        doc = ports.vault.get(APP, CONN)
        assert doc["generation"] == generation
        assert ports.business.get(ANCHORS, f"{APP}:{CONN}")["generation"] == generation
    assert len(server.valid_refresh) == 1  # each rotated refresh token persisted and used
    assert _synced_token(ports) == server.issued_access[-1]  # still valid: no refresh
    assert server.refresh_calls == 4
    assert ports.business.get("connections", CONN)["status"] == "active"


class _Crash(Exception):
    """The process dies: nothing after this point runs."""


class _CrashOnAnchorWrite:
    """The business store of an instance that crashes right before writing an anchor."""

    def __init__(self, store) -> None:
        self._store = store

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    def transaction(self, fn):
        store = self._store

        class Tx:
            def __init__(self, tx) -> None:
                self._tx = tx

            def get(self, collection, doc_id):
                return self._tx.get(collection, doc_id)

            def put(self, collection, doc_id, data):
                if collection == ANCHORS:
                    raise _Crash
                self._tx.put(collection, doc_id, data)

            def delete(self, collection, doc_id):
                self._tx.delete(collection, doc_id)

        return store.transaction(lambda tx: fn(Tx(tx)))


def test_a_crash_between_the_record_and_the_anchor_write_leaves_a_usable_record(
        stack):  # noqa: F811
    ports, server = stack
    _connect(ports, server, minutes=1)
    crashing = dataclasses.replace(ports, business=_CrashOnAnchorWrite(ports.business))
    with pytest.raises(_Crash):  # refreshed and written at generation 2; anchor still 1
        VaultService("github", crashing, _vault(ports)._endpoints).refresher.fresh(APP, CONN)
    assert ports.vault.get(APP, CONN)["generation"] == 2
    assert ports.business.get(ANCHORS, f"{APP}:{CONN}")["generation"] == 1
    assert _synced_token(ports) == server.issued_access[0]  # usable, and now anchored
    assert ports.business.get(ANCHORS, f"{APP}:{CONN}")["generation"] == 2
    assert ports.business.get("connections", CONN)["status"] == "active"


def _legacy_record(ports, token: TokenSet) -> dict:
    """An app-token record as written before generations were bound (format-1 fields)."""
    keyring = _vault(ports).keyring
    keyring.primary()  # the data key exists
    fields = {field: legacy_ciphertext(keyring, getattr(token, field).encode(), FieldContext(
        TENANT, "github", APP, CONN, field, None)) for field in ("access_token", "refresh_token")}
    return {"tenant": TENANT, "provider": "github", "kind": "app", "connection": CONN,
            "user": "admin", "base_url": None, "expires_at": None, "scopes": ["repo"],
            "account_id": None, "generation": 3, "status": "active", "status_reason": None,
            "refresh_lease": None, "updated_at": "2026-01-01T00:00:00.000000Z", **fields}


def test_a_legacy_record_is_read_once_then_rewritten_with_a_generation(stack):  # noqa: F811
    ports, server = stack
    token = TokenSet("gho_" + "L" * 36, "ghr_" + "L" * 36, None)
    legacy = _legacy_record(ports, token)
    ports.vault.put(APP, CONN, legacy)
    ports.business.put("connections", CONN, {"tenant": TENANT, "status": "active"})
    assert _synced_token(ports) == token.access_token  # read with the legacy AD
    doc, vault = ports.vault.get(APP, CONN), _vault(ports)
    assert doc["generation"] == 4
    assert doc["access_token"][1] == doc["refresh_token"][1] == 0x02  # format 2: bound
    assert ports.business.get(ANCHORS, f"{APP}:{CONN}")["generation"] == 4
    audited = [(e.data["event"], e.data["outcome"]) for e in ports.business.query("audit_entries")]
    assert ("rebind", "generation=4") in audited
    assert vault.codec.decode(APP, CONN, doc, 4).refresh_token == token.refresh_token
    with pytest.raises(CryptoError):  # the legacy ciphertexts are now a rollback
        vault.codec.decode(APP, CONN, {**doc, "access_token": legacy["access_token"]}, 4)
    ports.vault.put(APP, CONN, legacy)
    _assert_failed_closed(ports, server, refresh_calls=0)


def test_an_older_personal_token_swapped_back_marks_the_identity(stack):  # noqa: F811
    ports, _ = stack
    vault, record_id = _vault(ports), identity_id("github", TENANT, "u-1")
    vault.store_personal_token(TENANT, "u-1", TokenSet("gho_" + "P" * 36, None, None))
    unlinked = ports.vault.get(PERSONAL, record_id)
    vault.store_personal_token(TENANT, "u-1", TokenSet("gho_" + "Q" * 36, None, None))
    ports.business.put("identities", record_id, {"tenant": TENANT, "provider": "github",
                                                 "user": "u-1", "status": "active"})
    ports.business.put("actions", doc_id(TENANT, "a-1"), {
        "tenant": TENANT, "user": "u-1", "provider": "github", "connection": CONN,
        "status": "pending"})
    doc = ports.vault.get(PERSONAL, record_id)
    ports.vault.put(PERSONAL, record_id, {**doc, "access_token": unlinked["access_token"]})
    act = Inbound("action-requests-github", "action.requested", 1, "api",
                  {"tenant": TENANT, "user": "u-1", "action_id": "a-1", "connection": CONN,
                   "action": {"type": "comment"}}, "m-2")
    with pytest.raises(Undecryptable):
        handlers.on_action_requested("github", ports, act)
    action = ports.business.get("actions", doc_id(TENANT, "a-1"))
    assert (action["status"], action["reason"]) == ("failed", "undecryptable")
    identity = ports.business.get("identities", record_id)
    assert (identity["status"], identity["status_reason"]) == ("needs_reauth",
                                                               "vault.undecryptable")
    got: list = []
    ports.bus.pull(policy.subscription_name("action-jobs-github"), got.append)
    assert got == []  # no envelope pushed to act-github
