"""The local-mode issuer: its tokens verify, its keys are private on disk, rotation keeps old
tokens valid, and it refuses to mint tokens with roles or scopes keyway does not know."""

from __future__ import annotations

import logging
import os
import stat
import threading
from pathlib import Path

import pytest

from shared.auth import SCOPES, LocalIssuer, StaticJwks, TokenVerifier, Unauthenticated
from shared.errors import ConfigError, InvalidInput
from tests.support import FakeClock

ISSUER = "http://127.0.0.1:8080/api/local-issuer"
AUDIENCE = "keyway-api"
TENANT_CLAIM = "https://keyway.dev/tenant"
ROLE_CLAIM = "https://keyway.dev/role"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_issuer(state_dir: Path, clock: FakeClock) -> LocalIssuer:
    return LocalIssuer(state_dir, ISSUER, AUDIENCE, clock, TENANT_CLAIM, ROLE_CLAIM)


@pytest.fixture
def issuer(tmp_path: Path, clock: FakeClock) -> LocalIssuer:
    return make_issuer(tmp_path / "state", clock)


def verifier_for(issuer: LocalIssuer, clock: FakeClock) -> TokenVerifier:
    return TokenVerifier(ISSUER, AUDIENCE, StaticJwks(issuer.jwks()), clock,
                         tenant_claim=TENANT_CLAIM, role_claim=ROLE_CLAIM)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_issued_tokens_verify_as_the_principal_they_name(issuer, clock, leak_guard) -> None:
    token = leak_guard.track(issuer.issue("tenant-a", "dev-user", "admin"))
    principal = verifier_for(issuer, clock).verify(f"Bearer {token}")
    assert (principal.tenant, principal.user, principal.role) == ("tenant-a", "dev-user",
                                                                  "admin")
    assert principal.scopes == frozenset(SCOPES)


def test_a_member_token_carries_only_the_scopes_asked_for(issuer, clock, leak_guard) -> None:
    token = leak_guard.track(issuer.issue("tenant-b", "m", "member", scopes=["data:read"]))
    principal = verifier_for(issuer, clock).verify(f"Bearer {token}")
    assert principal.role == "member" and principal.scopes == frozenset({"data:read"})


def test_issued_tokens_expire_after_their_ttl(issuer, clock, leak_guard) -> None:
    token = leak_guard.track(issuer.issue("tenant-a", "u", "member", ttl=60))
    verifier = verifier_for(issuer, clock)
    verifier.verify(f"Bearer {token}")
    clock.advance(60 + 30)  # ttl plus the verifier's leeway
    with pytest.raises(Unauthenticated):
        verifier.verify(f"Bearer {token}")


def test_key_directory_is_0700_and_key_files_are_0600_whatever_the_umask(
        tmp_path, clock) -> None:
    old_umask = os.umask(0)
    try:
        issuer = make_issuer(tmp_path / "state", clock)
        issuer.issue("t", "u", "admin")
        issuer.rotate()
    finally:
        os.umask(old_umask)
    assert mode(issuer.key_dir) == 0o700
    files = sorted(p.name for p in issuer.key_dir.iterdir())
    assert files == ["current.pem", "previous.pem"]  # no staged leftovers
    for name in files:
        path = issuer.key_dir / name
        assert mode(path) == 0o600
        assert path.read_bytes().startswith(b"-----BEGIN " + b"PRIVATE KEY-----")


def test_loose_permissions_on_an_existing_key_directory_are_tightened(tmp_path, clock) -> None:
    issuer = make_issuer(tmp_path / "state", clock)
    issuer.issue("t", "u", "admin")
    os.chmod(issuer.key_dir, 0o755)  # noqa: S103 - the loose mode under test
    os.chmod(issuer.key_dir / "current.pem", 0o644)
    issuer.jwks()
    assert mode(issuer.key_dir) == 0o700
    assert mode(issuer.key_dir / "current.pem") == 0o600


def test_the_key_persists_so_another_process_verifies_the_same_tokens(tmp_path, clock,
                                                                       leak_guard) -> None:
    first = make_issuer(tmp_path / "state", clock)
    token = leak_guard.track(first.issue("tenant-a", "u", "admin"))
    second = make_issuer(tmp_path / "state", clock)
    assert second.current_kid() == first.current_kid()
    assert verifier_for(second, clock).verify(f"Bearer {token}").tenant == "tenant-a"


def test_concurrent_first_use_agrees_on_one_key(tmp_path, clock) -> None:
    kids: list[str] = []
    barrier = threading.Barrier(8)

    def first_use() -> None:
        barrier.wait()
        kids.append(make_issuer(tmp_path / "state", clock).current_kid())

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(kids) == 8 and len(set(kids)) == 1


def test_the_jwks_publishes_public_keys_only_with_kids(issuer) -> None:
    keys = issuer.jwks()["keys"]
    assert len(keys) == 1
    (key,) = keys
    assert key["kid"] == issuer.current_kid()
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-256", "ES256", "sig")
    assert "d" not in key


def test_rotate_keeps_tokens_signed_by_the_previous_key_verifying(issuer, clock,
                                                                  leak_guard) -> None:
    old_kid = issuer.current_kid()
    old_token = leak_guard.track(issuer.issue("tenant-a", "u", "admin"))
    new_kid = issuer.rotate()
    assert new_kid != old_kid and issuer.current_kid() == new_kid
    assert [k["kid"] for k in issuer.jwks()["keys"]] == [new_kid, old_kid]
    new_token = leak_guard.track(issuer.issue("tenant-a", "u", "member"))
    verifier = verifier_for(issuer, clock)
    assert verifier.verify(f"Bearer {old_token}").role == "admin"
    assert verifier.verify(f"Bearer {new_token}").role == "member"


def test_a_second_rotation_retires_the_oldest_key(issuer, clock, leak_guard) -> None:
    oldest = leak_guard.track(issuer.issue("tenant-a", "u", "admin"))
    issuer.rotate()
    issuer.rotate()
    assert len(issuer.jwks()["keys"]) == 2
    with pytest.raises(Unauthenticated):
        verifier_for(issuer, clock).verify(f"Bearer {oldest}")


@pytest.mark.parametrize("role", ["owner", "Admin", "", "root"])
def test_issue_rejects_roles_other_than_admin_and_member(issuer, role) -> None:
    with pytest.raises(InvalidInput) as info:
        issuer.issue("tenant-a", "u", role)
    assert info.value.key == "auth.invalid_role"


@pytest.mark.parametrize("scopes", [["repo"], ["data:read", "data:write"], "data:read",
                                    ["connections:*"]])
def test_issue_rejects_unknown_scopes(issuer, scopes) -> None:
    with pytest.raises(InvalidInput) as info:
        issuer.issue("tenant-a", "u", "admin", scopes=scopes)
    assert info.value.key == "auth.invalid_scope"


@pytest.mark.parametrize("tenant,user,ttl", [("", "u", 60), ("t", "two words", 60),
                                             ("t", "u", 0), ("t", "u", 86401),
                                             ("t", "u", True)])
def test_issue_rejects_bad_ids_and_ttls(issuer, tenant, user, ttl) -> None:
    with pytest.raises(InvalidInput):
        issuer.issue(tenant, user, "member", ttl=ttl)


def test_a_token_is_never_logged(issuer, caplog, leak_guard) -> None:
    with caplog.at_level(logging.DEBUG):
        token = leak_guard.track(issuer.issue("tenant-a", "u", "admin"))
        issuer.rotate()
    assert any(r.getMessage() == "auth.local_token_issued" for r in caplog.records)
    assert token not in caplog.text
    for part in token.split("."):
        assert part not in caplog.text


def test_a_key_file_that_is_not_a_p256_key_is_a_config_error(issuer) -> None:
    issuer.jwks()
    (issuer.key_dir / "current.pem").write_bytes(b"not a key")
    with pytest.raises(ConfigError):
        issuer.issue("tenant-a", "u", "admin")
