"""Retiring a data-key version: refused while records use it, forced only on the record, and a
token that no longer decrypts turns its connection away from `active` with a visible reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from shared.actions.model import doc_id
from shared.audit import ENTRIES, verify
from shared.errors import CryptoError
from shared.ids import identity_id
from shared.messages import Inbound
from shared.vault import handlers, keys
from shared.vault.refresh import NeedsReauth
from shared.vault.service import Undecryptable
from shared.vault.tokens import TokenSet
from tests.integration.test_cli import keyway, seeded

TENANT = "t-1"


def _key_retirements(ports) -> list[dict]:
    return [s.data for s in ports.business.query(ENTRIES) if s.data["event"] == "key_retire"]


def _with_identity(ports, vault) -> TokenSet:
    personal = TokenSet("gho_p" + "P" * 36, None, datetime.now(UTC) + timedelta(hours=8))
    vault.store_personal_token(TENANT, "u-1", personal)
    return personal


def test_retire_is_refused_with_a_count_while_records_use_the_version(tmp_path):
    state = tmp_path / "state"
    ports, vault, tokens = seeded(state, 3)
    personal = _with_identity(ports, vault)
    assert keyway(state, "keys", "rotate", "vault-github").returncode == 0
    refused = keyway(state, "keys", "retire", "vault-github", "1")
    assert refused.returncode == 1
    assert "crypto.data_key_in_use" in refused.stderr
    assert "4 record(s) (3 in app_tokens, 1 in personal_tokens)" in refused.stderr
    assert "keyway keys reencrypt vault-github" in refused.stderr
    for t in (*tokens, personal):
        assert t.access_token not in refused.stdout + refused.stderr
    assert vault.keyring.versions()[1]["state"] == "active"
    assert _key_retirements(ports) == []
    doc = ports.vault.get("app_tokens", "conn-0")
    assert vault.codec.decode("app_tokens", "conn-0", doc, 1).access_token == tokens[0].access_token


def test_retire_is_allowed_and_audited_after_reencrypt(tmp_path):
    state = tmp_path / "state"
    ports, vault, _ = seeded(state, 2)
    _with_identity(ports, vault)
    assert keyway(state, "keys", "rotate", "vault-github").returncode == 0
    assert keyway(state, "keys", "reencrypt", "vault-github").returncode == 0
    retired = keyway(state, "keys", "retire", "vault-github", "1", "--by", "alice")
    assert retired.returncode == 0, retired.stderr
    assert retired.stdout.strip() == "vault-github: data key version 1 retired"
    [entry] = _key_retirements(ports)
    assert (entry["requester"], entry["outcome"], entry["detail"]) == (
        "operator:alice", "retired", "version=1 records=0")


def test_a_forced_retire_is_audited_with_who_when_version_and_count(tmp_path):
    state = tmp_path / "state"
    ports, vault, tokens = seeded(state, 3)
    assert keyway(state, "keys", "rotate", "vault-github").returncode == 0
    forced = keyway(state, "keys", "retire", "vault-github", "1", "--force", "--by", "alice")
    assert forced.returncode == 0, forced.stderr
    assert "3 record(s) now unreadable" in forced.stdout
    assert vault.keyring.versions()[1]["state"] == "retired"
    [entry] = _key_retirements(ports)
    assert (entry["chain"], entry["requester"], entry["outcome"], entry["detail"]) == (
        "vault-github", "operator:alice", "forced", "version=1 records=3")
    assert entry["time"].endswith("Z")
    assert verify(ports.business, ports.secrets, "vault-github").ok
    assert not any(t.access_token in forced.stdout + forced.stderr for t in tokens)


def test_a_sync_after_a_forced_retire_leaves_the_connection_not_active(local_stack,
                                                                      caplog):
    ports = local_stack.ports
    vault = handlers.service("github", ports)
    token = local_stack.leak_guard.track("gho_" + "S" * 36)
    local_stack.leak_guard.track("ghr_" + "T" * 36)
    vault.store_app_token(TENANT, "conn-1", "admin", TokenSet(
        token, "ghr_" + "T" * 36, datetime.now(UTC) + timedelta(hours=8)))
    ports.business.put("connections", "conn-1", {"tenant": TENANT, "provider": "github",
                                                 "kind": "app", "status": "active"})
    vault.keyring.rotate()
    keys.retire(vault, 1, "operator:alice", force=True)
    sync = Inbound("sync-requests-github", "sync.requested", 1, "scheduler",
                   {"tenant": TENANT, "connection": "conn-1"}, "m-1")
    with pytest.raises(Undecryptable):
        handlers.on_sync_requested("github", ports, sync)
    connection = ports.business.get("connections", "conn-1")
    assert (connection["status"], connection["status_reason"]) == (
        "needs_reauth", "vault.undecryptable")
    assert ports.vault.get("app_tokens", "conn-1")["status"] == "needs_reauth"
    with pytest.raises(NeedsReauth) as again:  # the next sync: same reason, no decrypt tried
        handlers.on_sync_requested("github", ports, sync)
    assert again.value.key == "vault.undecryptable"
    assert ports.business.get("connections", "conn-1")["status_reason"] == "vault.undecryptable"
    assert "vault.undecryptable" in [r.getMessage() for r in caplog.records]
    listed = local_stack.call("GET", "/api/v1/connections",
                              local_stack.token(TENANT, "admin", "admin"))
    [item] = json.loads(listed.get_data())["items"]
    assert (item["status"], item["status_reason"]) == ("needs_reauth", "vault.undecryptable")


def test_reencrypt_skips_and_marks_a_record_that_no_longer_decrypts(local_stack):
    ports = local_stack.ports
    vault = handlers.service("github", ports)
    for n in (1, 2):
        vault.store_app_token(TENANT, f"conn-{n}", "admin", TokenSet(
            local_stack.leak_guard.track(f"gho_{n}" + "U" * 36), None, None))
        if n == 1:
            vault.keyring.rotate()
            keys.retire(vault, 1, "operator:alice", force=True)
    moved = list(vault.reencrypt())
    assert moved == ["app_tokens/conn-2"]
    assert ports.vault.get("app_tokens", "conn-1")["status_reason"] == "vault.undecryptable"


def test_an_action_after_a_forced_retire_marks_the_identity(local_stack):
    ports = local_stack.ports
    vault = handlers.service("github", ports)
    vault.store_personal_token(TENANT, "u-1", TokenSet(
        local_stack.leak_guard.track("gho_" + "V" * 36), None, None))
    ports.business.put("identities", identity_id("github", TENANT, "u-1"),
                       {"tenant": TENANT, "provider": "github", "user": "u-1"})
    ports.business.put("actions", doc_id(TENANT, "a-1"), {
        "tenant": TENANT, "user": "u-1", "provider": "github", "connection": "conn-1",
        "status": "pending"})
    vault.keyring.rotate()
    keys.retire(vault, 1, "operator:alice", force=True)
    act = Inbound("action-requests-github", "action.requested", 1, "api",
                  {"tenant": TENANT, "user": "u-1", "action_id": "a-1", "connection": "conn-1",
                   "action": {"type": "comment"}}, "m-2")
    with pytest.raises(Undecryptable):
        handlers.on_action_requested("github", ports, act)
    action = ports.business.get("actions", doc_id(TENANT, "a-1"))
    assert (action["status"], action["reason"]) == ("failed", "undecryptable")
    identity = ports.business.get("identities", identity_id("github", TENANT, "u-1"))
    assert (identity["status"], identity["status_reason"]) == ("needs_reauth",
                                                               "vault.undecryptable")


class _PrimaryKeyBroken:
    """A refresher whose re-encryption fails (the primary key cannot be unwrapped) while the
    stored token itself still decrypts."""

    def fresh(self, collection: str, record_id: str):
        raise CryptoError


def test_a_failure_that_is_not_the_stored_token_does_not_mark_it(local_stack):
    ports = local_stack.ports
    vault = handlers.service("github", ports)
    vault.store_app_token(TENANT, "conn-1", "admin", TokenSet(
        local_stack.leak_guard.track("gho_" + "W" * 36), None, None))
    vault.refresher = _PrimaryKeyBroken()
    with pytest.raises(CryptoError):
        vault.release_for_fetch(TENANT, "conn-1", "scheduler")
    record = ports.vault.get("app_tokens", "conn-1")
    assert (record["status"], record.get("status_reason")) == ("active", None)
