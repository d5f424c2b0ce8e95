"""Field-level AES-256-GCM: round trips, fresh IVs, a documented layout, and one opaque error for
every tampering — proven against the real embedded adapters."""

from __future__ import annotations

import copy
import dataclasses
import os
import pickle
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.bootstrap import build
from shared.config import Config
from shared.crypto.datakeys import COLLECTION, DataKeyring
from shared.crypto.fields import HEADER, MIN_SIZE, FieldCipher, FieldContext
from shared.errors import CryptoError, InvalidInput, UnavailableError
from shared.ports import Ports

COMPONENT = "vault-github"
CONTEXT = FieldContext(tenant="t-1", provider="github", collection="connections",
                       record_id="c-42", field="access_token", generation=3)
TOKEN = os.urandom(20).hex().encode()  # 40 bytes, random per run: no real token in the repo
OPAQUE = "cryptographic operation failed"
REGIONS = {  # byte ranges of a ciphertext of TOKEN (40 bytes): header, IV, body, tag
    "magic": range(0, 1), "format": range(1, 2), "version": range(2, 6), "iv": range(6, 18),
    "body": range(18, 18 + len(TOKEN)), "tag": range(18 + len(TOKEN), 34 + len(TOKEN)),
}


class DownKeyService:
    """A KeyService whose backend is down: every call raises ``UnavailableError``."""

    def _down(self, *args: object, **kwargs: object) -> bytes:
        raise UnavailableError("kms is down")

    ensure_key = encrypt = decrypt = rotate = primary_version = _down


@pytest.fixture
def ports(tmp_path: Path) -> Iterator[Ports]:
    built = build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path)}))
    yield built
    for store in (built.business, built.vault):
        store.close()


@pytest.fixture
def keyring(ports: Ports) -> DataKeyring:
    return DataKeyring(COMPONENT, ports)


@pytest.fixture
def cipher(keyring: DataKeyring) -> FieldCipher:
    return FieldCipher(keyring)


def assert_opaque(call: Callable[[], object]) -> CryptoError:
    """``call`` raises exactly the opaque CryptoError, with nothing chained that explains why."""
    with pytest.raises(CryptoError) as info:
        call()
    error = info.value
    assert type(error) is CryptoError and str(error) == OPAQUE and error.args == (OPAQUE,)
    assert error.__cause__ is None
    assert error.__suppress_context__ or error.__context__ is None
    return error


def _flip(blob: bytes, index: int, bit: int = 0) -> bytes:
    mutable = bytearray(blob)
    mutable[index] ^= 1 << bit
    return bytes(mutable)


@pytest.mark.parametrize("plaintext", [TOKEN, b"", b"\x00" * 7, os.urandom(10_000)])
def test_round_trip(cipher: FieldCipher, plaintext: bytes) -> None:
    ciphertext = cipher.encrypt(plaintext, CONTEXT)
    assert plaintext not in ciphertext or not plaintext
    assert cipher.decrypt(ciphertext, CONTEXT) == plaintext


def test_another_instance_decrypts_what_one_wrote(ports: Ports, cipher: FieldCipher) -> None:
    ciphertext = cipher.encrypt(TOKEN, CONTEXT)
    assert FieldCipher(DataKeyring(COMPONENT, ports)).decrypt(ciphertext, CONTEXT) == TOKEN


def test_every_encryption_uses_a_fresh_iv(cipher: FieldCipher) -> None:
    ciphertexts = [cipher.encrypt(TOKEN, CONTEXT) for _ in range(200)]
    assert len(set(ciphertexts)) == 200
    assert len({c[6:18] for c in ciphertexts}) == 200


def test_ciphertext_layout_is_the_documented_one(cipher: FieldCipher) -> None:
    ciphertext = cipher.encrypt(TOKEN, CONTEXT)
    assert HEADER.size == 6 and MIN_SIZE == 34
    assert ciphertext[0] == 0x4B and ciphertext[1] == 0x02
    assert struct.unpack(">I", ciphertext[2:6]) == (1,)
    assert len(ciphertext) == 6 + 12 + len(TOKEN) + 16
    assert cipher.key_version(ciphertext) == 1


@pytest.mark.parametrize("region", list(REGIONS))
def test_a_flipped_bit_in_any_region_fails_opaquely(cipher: FieldCipher, region: str) -> None:
    ciphertext = cipher.encrypt(TOKEN, CONTEXT)
    for index in REGIONS[region]:
        for bit in (0, 7):
            assert_opaque(lambda i=index, b=bit: cipher.decrypt(_flip(ciphertext, i, b), CONTEXT))
    assert cipher.decrypt(ciphertext, CONTEXT) == TOKEN


def test_a_truncated_or_extended_ciphertext_fails_opaquely(cipher: FieldCipher) -> None:
    ciphertext = cipher.encrypt(TOKEN, CONTEXT)
    for length in range(len(ciphertext)):
        assert_opaque(lambda n=length: cipher.decrypt(ciphertext[:n], CONTEXT))
    assert_opaque(lambda: cipher.decrypt(ciphertext + b"\x00", CONTEXT))


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(FieldContext)])
def test_wrong_associated_data_for_each_context_field_fails(cipher: FieldCipher, field: str
                                                            ) -> None:
    ciphertext = cipher.encrypt(TOKEN, CONTEXT)
    value = getattr(CONTEXT, field)
    other = dataclasses.replace(CONTEXT, **{field: value + 1 if field == "generation"
                                            else value + "x"})
    assert_opaque(lambda: cipher.decrypt(ciphertext, other))


def test_a_ciphertext_moved_to_another_record_or_field_fails(cipher: FieldCipher) -> None:
    access = cipher.encrypt(TOKEN, CONTEXT)
    refresh_ctx = dataclasses.replace(CONTEXT, field="refresh_token")
    other_record = dataclasses.replace(CONTEXT, record_id="c-43")
    refresh = cipher.encrypt(b"refresh", refresh_ctx)
    assert_opaque(lambda: cipher.decrypt(access, refresh_ctx))
    assert_opaque(lambda: cipher.decrypt(access, other_record))
    assert_opaque(lambda: cipher.decrypt(refresh, CONTEXT))
    # Length-prefixed associated data: moving characters between fields changes it too.
    shifted = dataclasses.replace(CONTEXT, tenant="t-1c", collection="onnections")
    assert_opaque(lambda: cipher.decrypt(access, shifted))


def test_another_components_key_cannot_decrypt(ports: Ports, cipher: FieldCipher) -> None:
    ciphertext = cipher.encrypt(TOKEN, CONTEXT)
    gitlab = FieldCipher(DataKeyring("vault-gitlab", ports))
    gitlab.encrypt(b"its own version 1", CONTEXT)
    assert gitlab.key_version(ciphertext) == 1
    assert_opaque(lambda: gitlab.decrypt(ciphertext, CONTEXT))
    assert_opaque(lambda: cipher.decrypt(gitlab.encrypt(TOKEN, CONTEXT), CONTEXT))


def test_relabelling_the_key_version_fails(cipher: FieldCipher, keyring: DataKeyring) -> None:
    ciphertext = cipher.encrypt(TOKEN, CONTEXT)
    keyring.rotate()
    relabelled = ciphertext[:2] + struct.pack(">I", 2) + ciphertext[6:]
    assert_opaque(lambda: cipher.decrypt(relabelled, CONTEXT))


MALFORMED = {
    "empty": b"", "magic only": b"K", "header only": b"K\x01" + struct.pack(">I", 1),
    "one byte short": b"K\x01" + struct.pack(">I", 1) + b"\x00" * 27,
    "version 0": b"K\x01" + b"\x00" * 60,
    "wrong magic": b"k\x01" + struct.pack(">I", 1) + b"\x00" * 40,
    "wrong format": b"K\x03" + struct.pack(">I", 1) + b"\x00" * 40,
    "str": "K\x01" + "a" * 60, "none": None, "bytearray": bytearray(64),
}
WELL_FORMED_GARBAGE = {
    "random body": b"K\x01" + struct.pack(">I", 1) + os.urandom(60),
    "unknown version": b"K\x01\xff\xff\xff\xff" + b"\x00" * 60,
    "random 34": os.urandom(34), "random 200": os.urandom(200),
}


@pytest.mark.parametrize("garbage", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_input_fails_opaquely(cipher: FieldCipher, garbage: object) -> None:
    cipher.encrypt(TOKEN, CONTEXT)
    assert_opaque(lambda: cipher.decrypt(garbage, CONTEXT))  # type: ignore[arg-type]
    assert_opaque(lambda: cipher.key_version(garbage))  # type: ignore[arg-type]


@pytest.mark.parametrize("garbage", list(WELL_FORMED_GARBAGE.values()),
                         ids=list(WELL_FORMED_GARBAGE))
def test_garbage_fails_opaquely(cipher: FieldCipher, garbage: bytes) -> None:
    cipher.encrypt(TOKEN, CONTEXT)
    assert_opaque(lambda: cipher.decrypt(garbage, CONTEXT))


def test_decrypt_before_any_key_exists_fails_opaquely(cipher: FieldCipher, ports: Ports) -> None:
    forged = b"K\x01" + struct.pack(">I", 1) + os.urandom(12 + 16 + 8)
    assert_opaque(lambda: cipher.decrypt(forged, CONTEXT))
    assert ports.vault.query(COLLECTION) == []  # decrypting never creates keys


def test_rotation_keeps_old_records_readable_until_their_version_is_retired(
    cipher: FieldCipher, keyring: DataKeyring
) -> None:
    old = [cipher.encrypt(TOKEN + bytes([i]), CONTEXT) for i in range(3)]
    assert keyring.rotate() == 2
    assert [cipher.decrypt(c, CONTEXT) for c in old] == [TOKEN + bytes([i]) for i in range(3)]
    new = cipher.encrypt(TOKEN, CONTEXT)
    assert cipher.key_version(new) == 2 and {cipher.key_version(c) for c in old} == {1}
    keyring.retire(1)
    for ciphertext in old:
        assert_opaque(lambda c=ciphertext: cipher.decrypt(c, CONTEXT))
    assert cipher.decrypt(new, CONTEXT) == TOKEN


def test_auto_rotation_keeps_every_record_readable(ports: Ports) -> None:
    cipher = FieldCipher(DataKeyring(COMPONENT, ports, rotate_after=10, reserve_block=4))
    ciphertexts = [cipher.encrypt(bytes([i]) * 5, CONTEXT) for i in range(30)]
    assert [cipher.key_version(c) for c in ciphertexts] == [1] * 10 + [2] * 10 + [3] * 10
    assert [cipher.decrypt(c, CONTEXT) for c in ciphertexts] == [bytes([i]) * 5 for i in range(30)]


def test_kms_outage_fails_closed(ports: Ports) -> None:
    down = dataclasses.replace(ports, keys=DownKeyService())
    with pytest.raises(UnavailableError):
        FieldCipher(DataKeyring(COMPONENT, down)).encrypt(TOKEN, CONTEXT)
    assert ports.vault.query(COLLECTION) == []
    ciphertext = FieldCipher(DataKeyring(COMPONENT, ports)).encrypt(TOKEN, CONTEXT)
    before = copy.deepcopy(ports.vault.get(COLLECTION, COMPONENT))
    cold = FieldCipher(DataKeyring(COMPONENT, down))  # a new instance: nothing cached
    with pytest.raises(UnavailableError):
        cold.encrypt(TOKEN, CONTEXT)
    with pytest.raises(UnavailableError):  # an outage is retryable, never a CryptoError
        cold.decrypt(ciphertext, CONTEXT)
    assert ports.vault.get(COLLECTION, COMPONENT) == before


def test_context_is_required_and_checked(cipher: FieldCipher) -> None:
    with pytest.raises(TypeError):
        cipher.encrypt(TOKEN)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        cipher.decrypt(cipher.encrypt(TOKEN, CONTEXT))  # type: ignore[call-arg]
    with pytest.raises(InvalidInput):
        cipher.encrypt(TOKEN, {"tenant": "t-1"})  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        dataclasses.replace(CONTEXT, record_id="")
    with pytest.raises(InvalidInput):
        dataclasses.replace(CONTEXT, field="\ud800")
    with pytest.raises(InvalidInput):
        cipher.encrypt("not bytes", CONTEXT)  # type: ignore[arg-type]


def test_the_cipher_refuses_repr_of_keys_and_pickling(cipher: FieldCipher,
                                                      keyring: DataKeyring) -> None:
    cipher.encrypt(TOKEN, CONTEXT)
    key = keyring.key(1)
    assert repr(cipher) == "FieldCipher(component='vault-github')"
    assert key.hex() not in repr(keyring) and repr(key) not in repr(keyring)
    for dump in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError):
            dump(cipher)


def test_the_key_and_plaintext_appear_in_no_decrypt_error(cipher: FieldCipher,
                                                          keyring: DataKeyring) -> None:
    ciphertext = cipher.encrypt(TOKEN, CONTEXT)
    key = keyring.key(1)
    failures = [_flip(ciphertext, 20), ciphertext[:-1], b"", os.urandom(64)]
    for bad in failures:
        error = assert_opaque(lambda b=bad: cipher.decrypt(b, CONTEXT))
        text = f"{error!s} {error!r} {error.__context__!r} {error.detail}"
        for secret in (key.hex(), repr(key), TOKEN.decode()):
            assert secret not in text


def legacy_ciphertext(keyring: DataKeyring, plaintext: bytes, context: FieldContext) -> bytes:
    """A format-1 ciphertext built by hand from the layout documented in ``fields.py``: what
    every vault record held before the generation was bound (no generation in the AD)."""
    version, key = keyring.primary()
    parts = [b"keyway/field", b"\x01", COMPONENT.encode(), context.tenant.encode(),
             context.provider.encode(), context.collection.encode(),
             context.record_id.encode(), context.field.encode(), struct.pack(">I", version)]
    aad = b"".join(struct.pack(">I", len(p)) + p for p in parts)
    iv = os.urandom(12)
    return b"K\x01" + struct.pack(">I", version) + iv + AESGCM(key).encrypt(iv, plaintext, aad)


def test_an_older_generations_ciphertext_of_the_same_field_fails(cipher: FieldCipher) -> None:
    older = cipher.encrypt(b"rotated-away refresh token", CONTEXT)
    current = dataclasses.replace(CONTEXT, generation=CONTEXT.generation + 1)
    cipher.encrypt(TOKEN, current)
    assert_opaque(lambda: cipher.decrypt(older, current))
    assert_opaque(lambda: cipher.decrypt(older, dataclasses.replace(CONTEXT, generation=2)))


def test_a_legacy_ciphertext_is_read_only_without_a_generation(cipher: FieldCipher,
                                                                keyring: DataKeyring) -> None:
    cipher.encrypt(TOKEN, CONTEXT)  # makes data key 1
    legacy = legacy_ciphertext(keyring, TOKEN, CONTEXT)
    unbound = dataclasses.replace(CONTEXT, generation=None)
    assert cipher.decrypt(legacy, unbound) == TOKEN
    assert not cipher.binds_generation(legacy)
    for generation in (1, CONTEXT.generation):  # never read as if it bound one
        assert_opaque(lambda g=generation: cipher.decrypt(
            legacy, dataclasses.replace(CONTEXT, generation=g)))
    assert_opaque(lambda: cipher.decrypt(legacy, dataclasses.replace(unbound, record_id="c-43")))


def test_a_current_ciphertext_is_never_read_as_legacy(cipher: FieldCipher) -> None:
    ciphertext = cipher.encrypt(TOKEN, CONTEXT)
    assert cipher.binds_generation(ciphertext)
    unbound = dataclasses.replace(CONTEXT, generation=None)
    assert_opaque(lambda: cipher.decrypt(ciphertext, unbound))
    relabelled = ciphertext[:1] + b"\x01" + ciphertext[2:]
    assert_opaque(lambda: cipher.decrypt(relabelled, unbound))
    with pytest.raises(InvalidInput):
        cipher.encrypt(TOKEN, unbound)
    for bad in (0, -1, 2**64, True, "3"):
        with pytest.raises(InvalidInput):
            dataclasses.replace(CONTEXT, generation=bad)


def test_a_warm_cipher_follows_another_instances_rotation_and_retirement(tmp_path: Path) -> None:
    """The inline fast paths (a context's remembered associated data, the per-view AESGCM
    objects, the lease) keep the keyring's freshness rule: within the metadata TTL a version
    retired elsewhere stops decrypting and new writes use the rotated key."""
    from shared.crypto.datakeys import METADATA_TTL
    from tests.support import FakeClock

    clock = FakeClock()
    ports = build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path)}), clock=clock)
    try:
        warm, admin = FieldCipher(DataKeyring(COMPONENT, ports)), DataKeyring(COMPONENT, ports)
        old = warm.encrypt(TOKEN, CONTEXT)
        for _ in range(3):  # every cache of the warm cipher filled for this context
            assert warm.decrypt(warm.encrypt(TOKEN, CONTEXT), CONTEXT) == TOKEN
        assert admin.rotate() == 2
        admin.retire(1)
        clock.advance(METADATA_TTL)
        assert_opaque(lambda: warm.decrypt(old, CONTEXT))
        assert warm.key_version(warm.encrypt(TOKEN, CONTEXT)) == 2
    finally:
        for store in (ports.business, ports.vault):
            store.close()
