"""The vault's promises: token-kind policy, tenant isolation, sealed push, encryption at rest,
rotation, disconnect with revocation, fail-closed KMS — with real embedded adapters and a real
OAuth token server on loopback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.audit.chain import verify
from shared.crypto.seal import EnvelopeRejected
from shared.errors import CryptoError, NotFound, UnavailableError
from shared.vault.receive import open_pushed_token
from shared.vault.records import APP, PERSONAL, personal_id
from shared.vault.release import ReleaseRefused, ReleaseRequest
from shared.vault.service import NoPersonalToken, Undecryptable
from shared.vault.tokens import TokenSet
from tests.fakes.oauth_token_server import OAuthTokenServer
from tests.unit.conftest import make_service

TENANT, OTHER_TENANT = "tenant-a", "tenant-b"


def tokens(server: OAuthTokenServer, prefix: str = "gho_", hours: float = 8) -> TokenSet:
    return TokenSet(access_token=server.on_issue(prefix + "A" * 36),
                    refresh_token=server.issue_refresh_token(),
                    expires_at=datetime.now(UTC) + timedelta(hours=hours), scopes=("repo",))


def test_app_token_is_never_sealed_for_actions(vault, token_server):
    vault.store_app_token(TENANT, "conn-1", "admin-1", tokens(token_server))
    for purpose, recipient in (("action", "act-github"), ("fetch", "act-github"),
                               ("action", "fetch-github"), ("fetch", "fetch-gitlab")):
        with pytest.raises(ReleaseRefused):
            vault.release(ReleaseRequest("app", purpose, recipient, TENANT, "conn-1", "admin-1"),
                          user="admin-1")


def test_personal_token_is_never_sealed_for_fetch(vault, token_server):
    vault.store_personal_token(TENANT, "alice", tokens(token_server, "gho_alice"))
    with pytest.raises(ReleaseRefused):
        vault.release(ReleaseRequest("personal", "fetch", "fetch-github", TENANT, "conn-1",
                                     "alice"), user="alice")


def test_a_member_asking_for_an_action_gets_only_their_own_personal_token(vault, ports,
                                                                          token_server):
    alice, bob = tokens(token_server, "gho_alice"), tokens(token_server, "gho_bob_")
    vault.store_personal_token(TENANT, "alice", alice)
    vault.store_personal_token(TENANT, "bob", bob)
    envelope = vault.release_for_action(TENANT, "bob", "conn-1")
    claims, token = open_pushed_token(ports, "act-github", envelope, "action")
    assert token == bob.access_token and claims.user == "bob"


def test_a_member_cannot_make_an_admins_app_token_act(vault, token_server):
    vault.store_app_token(TENANT, "conn-1", "admin-1", tokens(token_server))
    with pytest.raises(NoPersonalToken) as refused:
        vault.release_for_action(TENANT, "member-1", "conn-1")
    assert refused.value.status == 409
    assert "link" in refused.value.title.lower()


def test_a_user_with_a_token_in_another_tenant_is_refused(vault, token_server):
    vault.store_personal_token(OTHER_TENANT, "alice", tokens(token_server))
    with pytest.raises(NoPersonalToken):
        vault.release_for_action(TENANT, "alice", "conn-1")


def test_another_tenants_connection_is_never_released(vault, token_server):
    vault.store_app_token(TENANT, "conn-1", "admin-1", tokens(token_server))
    with pytest.raises(NotFound):
        vault.release_for_fetch(OTHER_TENANT, "conn-1", "scheduler")


def test_app_token_reaches_fetch_sealed_and_only_once(vault, ports, token_server):
    stored = tokens(token_server)
    vault.store_app_token(TENANT, "conn-1", "admin-1", stored)
    envelope = vault.release_for_fetch(TENANT, "conn-1", "scheduler")
    assert stored.access_token not in str(envelope)
    with pytest.raises((CryptoError, EnvelopeRejected)):
        open_pushed_token(ports, "act-github", envelope, "action")
    claims, token = open_pushed_token(ports, "fetch-github", envelope, "fetch")
    assert token == stored.access_token and claims.connection == "conn-1"
    with pytest.raises(EnvelopeRejected):
        open_pushed_token(ports, "fetch-github", envelope, "fetch")


def test_tokens_at_rest_are_encrypted_field_by_field(vault, ports, token_server, tmp_path):
    stored = tokens(token_server)
    vault.store_app_token(TENANT, "conn-1", "admin-1", stored)
    doc = ports.vault.get(APP, "conn-1")
    assert isinstance(doc["access_token"], bytes) and isinstance(doc["refresh_token"], bytes)
    for path in (tmp_path / "state").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert stored.access_token.encode() not in data, path
            assert stored.refresh_token.encode() not in data, path


def test_ciphertext_moved_to_another_record_fails(vault, ports, token_server):
    vault.store_personal_token(TENANT, "alice", tokens(token_server, "gho_alice"))
    vault.store_personal_token(TENANT, "bob", tokens(token_server, "gho_bob_"))
    alice_id, bob_id = (personal_id("github", TENANT, u) for u in ("alice", "bob"))
    bob = ports.vault.get(PERSONAL, bob_id)
    bob["access_token"] = ports.vault.get(PERSONAL, alice_id)["access_token"]
    ports.vault.put(PERSONAL, bob_id, bob)
    with pytest.raises(Undecryptable):  # the opaque decrypt failure, recorded on the record
        vault.release_for_action(TENANT, "bob", "conn-1")
    assert ports.vault.get(PERSONAL, bob_id)["status_reason"] == "vault.undecryptable"


def test_another_providers_vault_cannot_read_the_record(vault, ports, token_server):
    vault.store_app_token(TENANT, "conn-1", "admin-1", tokens(token_server))
    gitlab = make_service(ports, token_server, "gitlab")
    with pytest.raises(CryptoError):
        gitlab.codec.decode(APP, "conn-1", ports.vault.get(APP, "conn-1"), 0)


def test_rotation_reencrypt_and_retire_keep_everything_readable(vault, ports, token_server):
    stored = [tokens(token_server, f"gho_{i}") for i in range(3)]
    for i, t in enumerate(stored):
        vault.store_app_token(TENANT, f"conn-{i}", "admin-1", t)
    new_version = vault.keyring.rotate()
    assert vault.codec.key_versions(ports.vault.get(APP, "conn-0")) == {new_version - 1}
    progress: list[tuple[int, int]] = []
    moved = list(vault.reencrypt(lambda done, total: progress.append((done, total))))
    assert len(moved) == 3 and progress[-1] == (3, 3)
    vault.keyring.retire(new_version - 1)
    for i, t in enumerate(stored):
        doc = ports.vault.get(APP, f"conn-{i}")
        assert vault.codec.key_versions(doc) == {new_version}
        assert vault.codec.decode(APP, f"conn-{i}", doc, 2).access_token == t.access_token


def test_disconnect_revokes_at_the_provider_and_deletes_the_record(vault, ports, token_server):
    stored = tokens(token_server)
    vault.store_app_token(TENANT, "conn-1", "admin-1", stored)
    assert vault.disconnect(TENANT, "conn-1", "api") is True
    assert ports.vault.get(APP, "conn-1") is None
    assert stored.refresh_token in token_server.revoked
    assert stored.access_token in token_server.revoked


def test_disconnect_deletes_even_when_revocation_fails(vault, ports, token_server):
    vault.store_app_token(TENANT, "conn-1", "admin-1", tokens(token_server))
    token_server.down = True
    assert vault.disconnect(TENANT, "conn-1", "api") is False
    assert ports.vault.get(APP, "conn-1") is None


def test_disconnect_of_another_tenants_connection_changes_nothing(vault, ports, token_server):
    vault.store_app_token(TENANT, "conn-1", "admin-1", tokens(token_server))
    with pytest.raises(NotFound):
        vault.disconnect(OTHER_TENANT, "conn-1", "api")
    assert ports.vault.get(APP, "conn-1") is not None


def test_disconnect_runs_the_cleanup_with_a_fresh_token_before_revoking(vault, ports,
                                                                         token_server):
    stored = tokens(token_server, hours=0.01)  # about to expire: refreshed for the cleanup
    vault.store_app_token(TENANT, "conn-1", "admin-1", stored)
    seen: list[tuple[str, int]] = []
    vault.disconnect(TENANT, "conn-1", "api",
                     cleanup=lambda token: seen.append((token, len(token_server.revoked))))
    ((used, revoked_before),) = seen
    assert revoked_before == 0  # the cleanup ran while the token still worked
    assert used != stored.access_token  # a refreshed access token, not the expiring one
    assert used in token_server.revoked  # and revocation used the tokens after the refresh
    assert ports.vault.get(APP, "conn-1") is None
    entries = [(s.data["event"], s.data["outcome"]) for s in ports.business.query("audit_entries")]
    assert ("cleanup", "done") in entries and used not in str(entries)


def test_a_failing_cleanup_is_audited_and_disconnect_still_completes(vault, ports,
                                                                      token_server, caplog):
    vault.store_app_token(TENANT, "conn-1", "admin-1", tokens(token_server))

    def cleanup(token: str) -> None:
        raise UnavailableError("the provider is down")

    assert vault.disconnect(TENANT, "conn-1", "api", cleanup=cleanup) is True
    assert ports.vault.get(APP, "conn-1") is None
    outcomes = [s.data["outcome"] for s in ports.business.query("audit_entries")]
    assert "failed:backend.unavailable" in outcomes
    assert "vault.cleanup_failed" in [r.getMessage() for r in caplog.records]


class DownKeyService:
    """The key service port while Cloud KMS is unreachable."""

    def _down(self, *args, **kwargs):
        raise UnavailableError("kms down")

    ensure_key = encrypt = decrypt = rotate = primary_version = _down


def test_kms_unavailable_fails_closed_and_writes_nothing(ports, token_server):
    ports.keys = DownKeyService()
    vault = make_service(ports, token_server)
    with pytest.raises(UnavailableError) as caught:
        vault.store_app_token(TENANT, "conn-1", "admin-1", tokens(token_server))
    assert caught.value.retryable
    assert ports.vault.get(APP, "conn-1") is None


def test_every_release_refusal_and_revocation_is_audited(vault, ports, token_server):
    stored = tokens(token_server)
    vault.store_app_token(TENANT, "conn-1", "admin-1", stored)
    vault.release_for_fetch(TENANT, "conn-1", "scheduler")
    with pytest.raises(NoPersonalToken):
        vault.release_for_action(TENANT, "member-1", "conn-1")
    vault.disconnect(TENANT, "conn-1", "api")
    entries = [s.data for s in ports.business.query("audit_entries")]
    outcomes = [(e["event"], e["outcome"]) for e in entries]
    assert ("release", "released") in outcomes
    assert ("release", "refused:vault.no_personal_token") in outcomes
    assert ("revoke", "revoked") in outcomes
    assert stored.access_token not in str(entries)
    assert verify(ports.business, ports.secrets, "vault-github").ok
