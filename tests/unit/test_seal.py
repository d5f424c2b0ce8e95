"""Sealed push envelopes (promise 3): only the addressed recipient opens a token, once, in time.

Real embedded adapters throughout: channel keys from the local secret source, nonces in the
SQLite business store.
"""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.bootstrap import build
from shared.config import Config
from shared.crypto import channels
from shared.crypto.replay import ReplayGuard
from shared.crypto.seal import (
    Claims,
    EnvelopeRejected,
    associated_data,
    new_claims,
    open_envelope,
    seal,
)
from shared.errors import CryptoError, InvalidInput, PermanentError, PolicyViolation
from shared.ports import Ports

TOKEN = b"test-access-token-" + os.urandom(9).hex().encode()  # random per run, not a real token
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def ports(tmp_path) -> Ports:
    built = build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path)}))
    channels.ensure(built.secrets)
    return built


@pytest.fixture
def keys(ports: Ports) -> channels.ChannelKeys:
    return channels.ChannelKeys(ports.secrets)


@pytest.fixture
def fetch_key(keys: channels.ChannelKeys) -> bytes:
    return keys.key("vault-github", "fetch-github")


@pytest.fixture
def guard(ports: Ports) -> ReplayGuard:
    return ReplayGuard(ports.business, ports.clock)


def fetch_claims(now: datetime = NOW, ttl: int = 300) -> Claims:
    return new_claims("vault-github", "fetch-github", "fetch", "conn-1", None, now, ttl)


def open_as_fetch(key: bytes, envelope: dict, guard: ReplayGuard, now: datetime = NOW):
    return open_envelope(key, envelope, audience="fetch-github", purpose="fetch", now=now,
                         replay=guard)


def expect_rejection(key: str, call) -> EnvelopeRejected:
    with pytest.raises(EnvelopeRejected) as info:
        call()
    assert info.value.key == key
    assert isinstance(info.value, PermanentError)
    assert TOKEN.decode() not in str(info.value)
    return info.value


def forge_with_real_key(key: bytes, claims: Claims) -> dict:
    """An envelope authenticated with the right key whose claims seal() would refuse."""
    iv = os.urandom(12)
    ct = AESGCM(key).encrypt(iv, TOKEN, associated_data(claims))
    text = base64.urlsafe_b64encode(iv + ct).rstrip(b"=").decode()
    return {"v": 1, "claims": claims.as_dict(), "ct": text}


def roundtrip_json(envelope: dict) -> dict:
    return json.loads(json.dumps(envelope))


# ---- the happy path ---------------------------------------------------------------------
def test_the_addressed_recipient_opens_the_token_with_its_claims(fetch_key, guard) -> None:
    claims = fetch_claims()
    envelope = roundtrip_json(seal(fetch_key, claims, TOKEN))
    opened, plaintext = open_as_fetch(fetch_key, envelope, guard, NOW + timedelta(seconds=10))
    assert plaintext == TOKEN
    assert opened == claims
    assert envelope["v"] == 1 and set(envelope) == {"v", "claims", "ct"}


def test_a_personal_token_reaches_act_for_its_user(keys, guard) -> None:
    key = keys.key("vault-gitlab", "act-gitlab")
    claims = new_claims("vault-gitlab", "act-gitlab", "action", "conn-2", "user-7", NOW)
    opened, plaintext = open_envelope(key, seal(key, claims, TOKEN), audience="act-gitlab",
                                      purpose="action", now=NOW, replay=guard)
    assert (opened.user, plaintext) == ("user-7", TOKEN)


def test_sealed_output_contains_no_plaintext(fetch_key) -> None:
    text = json.dumps(seal(fetch_key, fetch_claims(), TOKEN))
    assert TOKEN.decode() not in text
    assert base64.b64encode(TOKEN).decode()[:20] not in text
    assert base64.urlsafe_b64encode(TOKEN).decode()[:20] not in text


def test_every_seal_uses_a_fresh_iv(fetch_key) -> None:
    claims = fetch_claims()
    assert seal(fetch_key, claims, TOKEN)["ct"] != seal(fetch_key, claims, TOKEN)["ct"]


# ---- rejections of authentic envelopes -------------------------------------------------
def test_envelope_for_another_audience_is_rejected(fetch_key, guard) -> None:
    envelope = seal(fetch_key, fetch_claims(), TOKEN)
    expect_rejection("envelope.wrong_audience", lambda: open_envelope(
        fetch_key, envelope, audience="act-github", purpose="fetch", now=NOW, replay=guard))


def test_envelope_for_another_purpose_is_rejected(fetch_key, guard) -> None:
    envelope = seal(fetch_key, fetch_claims(), TOKEN)
    expect_rejection("envelope.wrong_purpose", lambda: open_envelope(
        fetch_key, envelope, audience="fetch-github", purpose="action", now=NOW, replay=guard))


def test_an_app_token_envelope_forged_as_action_is_rejected(fetch_key, guard) -> None:
    claims = Claims("vault-github", "fetch-github", "action", "conn-1", "user-1",
                    int(NOW.timestamp()) + 60, "a" * 32)
    forged = forge_with_real_key(fetch_key, claims)
    expect_rejection("envelope.wrong_purpose", lambda: open_as_fetch(fetch_key, forged, guard))


def test_envelope_not_issued_by_the_audiences_vault_is_rejected(fetch_key, guard) -> None:
    claims = Claims("vault-gitlab", "fetch-github", "fetch", "conn-1", None,
                    int(NOW.timestamp()) + 60, "b" * 32)
    forged = forge_with_real_key(fetch_key, claims)
    expect_rejection("envelope.wrong_issuer", lambda: open_as_fetch(fetch_key, forged, guard))


def test_expired_envelope_is_rejected(fetch_key, guard) -> None:
    envelope = seal(fetch_key, fetch_claims(ttl=60), TOKEN)
    expect_rejection("envelope.expired",
                     lambda: open_as_fetch(fetch_key, envelope, guard, NOW + timedelta(seconds=61)))


def test_envelope_expiring_too_far_ahead_is_rejected(fetch_key, guard) -> None:
    envelope = seal(fetch_key, fetch_claims(now=NOW + timedelta(seconds=31)), TOKEN)
    expect_rejection("envelope.expiry_too_far", lambda: open_as_fetch(fetch_key, envelope, guard))


def test_envelope_within_the_clock_skew_still_opens(fetch_key, guard) -> None:
    envelope = seal(fetch_key, fetch_claims(now=NOW + timedelta(seconds=30)), TOKEN)
    assert open_as_fetch(fetch_key, envelope, guard)[1] == TOKEN


def test_replayed_envelope_is_rejected(fetch_key, guard) -> None:
    envelope = seal(fetch_key, fetch_claims(), TOKEN)
    assert open_as_fetch(fetch_key, envelope, guard)[1] == TOKEN
    expect_rejection("envelope.replayed", lambda: open_as_fetch(fetch_key, envelope, guard))


def test_replay_is_caught_across_instances_sharing_the_store(tmp_path, fetch_key) -> None:
    config = Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path)})
    first, second = build(config), build(config)
    envelope = seal(fetch_key, fetch_claims(), TOKEN)
    open_as_fetch(fetch_key, envelope, ReplayGuard(first.business, first.clock))
    expect_rejection("envelope.replayed", lambda: open_as_fetch(
        fetch_key, envelope, ReplayGuard(second.business, second.clock)))


# ---- tampering and wrong keys: opaque CryptoError ------------------------------------------
@pytest.mark.parametrize("field, value", [
    ("connection", "conn-2"),
    ("user", "user-1"),
    ("audience", "fetch-gitlab"),
    ("issuer", "vault-gitlab"),
    ("expires_at", int(NOW.timestamp()) + 100),
    ("nonce", "c" * 32),
])
def test_tampered_claims_fail_to_decrypt(fetch_key, guard, field, value) -> None:
    envelope = roundtrip_json(seal(fetch_key, fetch_claims(), TOKEN))
    envelope["claims"][field] = value
    with pytest.raises(CryptoError) as info:
        open_envelope(fetch_key, envelope, audience=envelope["claims"]["audience"],
                      purpose="fetch", now=NOW, replay=guard)
    assert str(info.value) == "cryptographic operation failed"


def flip_bit(text: str) -> str:
    raw = bytearray(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


@pytest.mark.parametrize("tamper", [
    flip_bit,
    lambda ct: ct[:-4],
    lambda ct: ct[:20],
    lambda ct: "",
    lambda ct: ct + "=",
    lambda ct: ct.replace(ct[5], "+" if ct[5] != "+" else "/", 1),
], ids=["flipped-bit", "truncated-tag", "truncated-to-iv", "empty", "padded", "not-base64url"])
def test_tampered_ciphertext_fails_to_decrypt(fetch_key, guard, tamper) -> None:
    envelope = seal(fetch_key, fetch_claims(), TOKEN)
    envelope["ct"] = tamper(envelope["ct"])
    with pytest.raises(CryptoError):
        open_as_fetch(fetch_key, envelope, guard)


@pytest.mark.parametrize("mangle", [
    lambda e: e.pop("v"),
    lambda e: e.update(v=2),
    lambda e: e.update(v=True),
    lambda e: e.update(extra=1),
    lambda e: e["claims"].pop("user"),
    lambda e: e["claims"].update(expires_at=str(e["claims"]["expires_at"])),
    lambda e: e["claims"].update(nonce="XYZ"),
    lambda e: e["claims"].update(purpose="admin"),
    lambda e: e.update(claims="nope"),
    lambda e: e.update(ct=123),
])
def test_malformed_envelopes_fail_opaquely(fetch_key, guard, mangle) -> None:
    envelope = roundtrip_json(seal(fetch_key, fetch_claims(), TOKEN))
    mangle(envelope)
    with pytest.raises(CryptoError):
        open_as_fetch(fetch_key, envelope, guard)


def test_non_dict_envelope_fails_opaquely(fetch_key, guard) -> None:
    with pytest.raises(CryptoError):
        open_as_fetch(fetch_key, ["v", 1], guard)  # type: ignore[arg-type]


def test_envelope_sealed_under_another_channels_key_fails_to_decrypt(keys, guard) -> None:
    act_key = keys.key("vault-github", "act-github")
    envelope = seal(act_key, fetch_claims(), TOKEN)
    with pytest.raises(CryptoError):
        open_as_fetch(keys.key("vault-github", "fetch-github"), envelope, guard)


def test_forged_envelope_does_not_burn_the_nonce_of_the_genuine_one(fetch_key, guard) -> None:
    genuine = seal(fetch_key, fetch_claims(), TOKEN)
    forged = roundtrip_json(genuine)
    forged["ct"] = seal(os.urandom(32), fetch_claims(), b"attacker")["ct"]
    with pytest.raises(CryptoError):
        open_as_fetch(fetch_key, forged, guard)
    stale = roundtrip_json(genuine)
    expect_rejection("envelope.expired",
                     lambda: open_as_fetch(fetch_key, stale, guard, NOW + timedelta(hours=1)))
    assert open_as_fetch(fetch_key, genuine, guard)[1] == TOKEN


def test_a_wrong_length_key_fails_opaquely(fetch_key, guard) -> None:
    with pytest.raises(CryptoError):
        seal(b"short", fetch_claims(), TOKEN)
    with pytest.raises(CryptoError):
        open_as_fetch(fetch_key[:16], seal(fetch_key, fetch_claims(), TOKEN), guard)


# ---- what a vault may seal ---------------------------------------------------------------
@pytest.mark.parametrize("ttl", [0, -1, 301, 3600])
def test_lifetimes_beyond_five_minutes_or_below_one_second_are_refused(ttl) -> None:
    with pytest.raises(InvalidInput):
        fetch_claims(ttl=ttl)


def test_new_claims_expire_ttl_after_now_with_a_random_nonce() -> None:
    first, second = fetch_claims(ttl=120), fetch_claims(ttl=120)
    assert first.expires_at == int(NOW.timestamp()) + 120
    assert first.nonce != second.nonce and len(first.nonce) == 32


def test_claims_off_the_allowed_channels_are_refused() -> None:
    with pytest.raises(PolicyViolation):
        new_claims("vault-github", "fetch-gitlab", "fetch", "c", None, NOW)
    with pytest.raises(PolicyViolation):
        new_claims("api", "fetch-github", "fetch", "c", None, NOW)


def test_purpose_must_match_the_audience_and_actions_name_their_user() -> None:
    with pytest.raises(InvalidInput):
        new_claims("vault-github", "fetch-github", "action", "c", "u", NOW)
    with pytest.raises(InvalidInput):
        new_claims("vault-github", "act-github", "fetch", "c", None, NOW)
    with pytest.raises(InvalidInput):
        new_claims("vault-github", "act-github", "action", "c", None, NOW)


def test_seal_refuses_bad_input(fetch_key) -> None:
    with pytest.raises(InvalidInput):
        seal(fetch_key, fetch_claims(), b"")
    with pytest.raises(InvalidInput):
        new_claims("vault-github", "fetch-github", "fetch", "c", None, NOW, nonce="not-hex")
    with pytest.raises(InvalidInput):
        new_claims("vault-github", "fetch-github", "fetch", "c", None, NOW.replace(tzinfo=None))


# ---- the replay guard ------------------------------------------------------------------
class FixedClock:
    """A clock standing still at ``moment`` (the Clock port, no patching)."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment

    def monotonic(self) -> float:
        return 0.0

    def sleep(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


def test_a_nonce_is_claimed_once(guard) -> None:
    expires = int(NOW.timestamp()) + 60
    assert guard.claim("d" * 32, expires) is True
    assert guard.claim("d" * 32, expires) is False
    assert guard.claim("e" * 32, expires) is True


def test_eight_threads_claiming_one_nonce_get_exactly_one_true(tmp_path, ports) -> None:
    import threading

    config = Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path)})
    guards = [ReplayGuard(ports.business, ports.clock) for _ in range(4)]
    guards += [ReplayGuard(build(config).business, ports.clock) for _ in range(4)]
    barrier = threading.Barrier(len(guards))
    results: list[bool] = []
    lock = threading.Lock()

    def claim(g: ReplayGuard) -> None:
        barrier.wait()
        outcome = g.claim("f" * 32, int(NOW.timestamp()) + 60)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=claim, args=(g,)) for g in guards]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == [False] * 7 + [True]


def test_purge_expired_removes_only_expired_nonces(ports) -> None:
    clock = FixedClock(NOW)
    guard = ReplayGuard(ports.business, clock, grace_seconds=0)
    base = int(NOW.timestamp())
    expired = [f"{i:032x}" for i in range(3)]
    alive = [f"{i:032x}" for i in range(10, 13)]
    for offset, nonce in enumerate(expired, start=1):
        guard.claim(nonce, base - 100 * offset)
    for offset, nonce in enumerate(alive, start=1):
        guard.claim(nonce, base + 100 * offset)
    guard.claim("9" * 32, base)  # expires exactly now: still valid, kept
    assert guard.purge_expired(limit=2) == 2
    assert guard.purge_expired() == 1
    assert guard.purge_expired() == 0
    left = {s.id for s in ports.business.query("envelope_nonces")}
    assert left == {*alive, "9" * 32}
    assert all(guard.claim(n, base - 100) for n in expired)  # forgotten once purged


def test_purge_keeps_nonces_within_the_grace_period(ports) -> None:
    guard = ReplayGuard(ports.business, FixedClock(NOW))  # default grace: 60 s
    base = int(NOW.timestamp())
    guard.claim("1" * 32, base - 30)
    guard.claim("2" * 32, base - 90)
    assert guard.purge_expired() == 1
    assert guard.claim("1" * 32, base - 30) is False


def test_stored_expiry_is_a_queryable_iso_string(ports, guard) -> None:
    guard.claim("3" * 32, int(NOW.timestamp()))
    doc = ports.business.get("envelope_nonces", "3" * 32)
    assert doc is not None and doc["expires_at"] == "2025-03-01T12:00:00.000000Z"


@pytest.mark.parametrize("nonce, expires", [("ABC", 1), ("A" * 32, 1), ("a" * 32, "1"),
                                            ("a" * 32, True), ("a" * 32, -5)])
def test_claiming_a_malformed_nonce_is_refused(guard, nonce, expires) -> None:
    with pytest.raises(InvalidInput):
        guard.claim(nonce, expires)
