"""Byte compatibility of field ciphertexts across FieldCipher versions: records written by
earlier code (format 1 before generations, format 2 before the cached path) still decrypt,
and what this code writes is what the documented layout — and so the earlier code — reads."""

from __future__ import annotations

import gc
import json
import os
import struct
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.bootstrap import build
from shared.config import Config
from shared.crypto.datakeys import COLLECTION, DataKeyring, secret_name, wrap_associated_data
from shared.crypto.fields import FieldCipher, FieldContext
from shared.errors import CryptoError
from shared.ports import Ports

FIXTURE = json.loads((Path(__file__).parents[1] / "fixtures" / "crypto"
                      / "field_ciphertexts.json").read_text())
COMPONENT, VERSION = FIXTURE["component"], FIXTURE["version"]
KEY = bytes.fromhex(FIXTURE["key_hex"])  # a test-only constant, not a secret
VECTORS = FIXTURE["vectors"]


@pytest.fixture
def ports(tmp_path: Path) -> Iterator[Ports]:
    built = build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path)}))
    yield built
    for store in (built.business, built.vault):
        store.close()


@pytest.fixture
def cipher(ports: Ports) -> FieldCipher:
    """A cipher whose data key 1 is the fixture's key, installed as keyway stores keys."""
    ports.keys.ensure_key(COMPONENT)
    wrapped = ports.keys.encrypt(COMPONENT, KEY, wrap_associated_data(COMPONENT, VERSION))
    ports.vault.put(COLLECTION, COMPONENT, {"primary": VERSION, "versions": {str(VERSION): {
        "state": "active", "created_at": "2026-01-01T00:00:00.000000Z",
        "encryptions_reserved": 0,
        "secret_version": ports.secrets.add_version(secret_name(COMPONENT), wrapped)}}})
    return FieldCipher(DataKeyring(COMPONENT, ports))


def documented_decrypt(ciphertext: bytes, context: FieldContext) -> bytes:
    """Decrypt by the layout in ``shared/crypto/fields.py``'s docstring, written out by hand
    (the associated data the earlier code built, part by part)."""
    magic, fmt, version = struct.unpack_from(">BBI", ciphertext)
    assert magic == 0x4B and fmt == (1 if context.generation is None else 2)
    parts = [b"keyway/field", bytes([fmt]), COMPONENT.encode(), context.tenant.encode(),
             context.provider.encode(), context.collection.encode(),
             context.record_id.encode(), context.field.encode(), struct.pack(">I", version)]
    if context.generation is not None:
        parts.append(struct.pack(">Q", context.generation))
    aad = b"".join(struct.pack(">I", len(p)) + p for p in parts)
    return AESGCM(KEY).decrypt(ciphertext[6:18], ciphertext[18:], aad)


def _cases() -> list:
    return [pytest.param(FieldContext(*v["context"]), v["plaintext"].encode(),
                         bytes.fromhex(v["ciphertext"]),
                         id=f"format{2 if v['context'][-1] else 1}-{i}")
            for i, v in enumerate(VECTORS)]


@pytest.mark.parametrize(("context", "plaintext", "ciphertext"), _cases())
def test_ciphertexts_written_by_earlier_code_still_decrypt(
        cipher: FieldCipher, context: FieldContext, plaintext: bytes, ciphertext: bytes) -> None:
    assert cipher.decrypt(ciphertext, context) == plaintext
    assert documented_decrypt(ciphertext, context) == plaintext  # the reference agrees
    assert cipher.binds_generation(ciphertext) is (context.generation is not None)


def test_both_formats_written_by_earlier_code_are_covered() -> None:
    assert {v["context"][-1] is None for v in VECTORS} == {True, False}


@pytest.mark.parametrize(("context", "plaintext", "ciphertext"), _cases())
def test_earlier_ciphertexts_still_refuse_another_context(
        cipher: FieldCipher, context: FieldContext, plaintext: bytes, ciphertext: bytes) -> None:
    for other in ({"record_id": "elsewhere"}, {"field": "refresh_token" if context.field
                                               == "access_token" else "access_token"}):
        moved = FieldContext(**{**context.__dict__, **other})
        with pytest.raises(CryptoError):
            cipher.decrypt(ciphertext, moved)


@pytest.mark.parametrize(("context", "plaintext", "ciphertext"), _cases())
def test_what_this_code_writes_the_earlier_layout_reads(
        cipher: FieldCipher, context: FieldContext, plaintext: bytes, ciphertext: bytes) -> None:
    if context.generation is None:
        return  # format 1 is read only: nothing writes it any more
    for _ in range(3):  # the first call fills the cache, the others read from it
        written = cipher.encrypt(plaintext, context)
        assert len(written) == 34 + len(plaintext) and written[:6] == ciphertext[:6]
        assert documented_decrypt(written, context) == plaintext


def test_the_cache_keeps_contexts_apart(cipher: FieldCipher) -> None:
    contexts = [FieldContext("t-1", "github", "app_tokens", f"conn-{i}", "access_token", g)
                for i in range(3) for g in (1, 2)]
    written = [(c, cipher.encrypt(os.urandom(8), c)) for c in contexts]
    for context, ciphertext in written:
        for other in contexts:
            if other == context:
                assert documented_decrypt(ciphertext, other) == cipher.decrypt(ciphertext, other)
            else:
                with pytest.raises(CryptoError):
                    cipher.decrypt(ciphertext, other)


def test_a_dropped_cipher_and_its_cached_keys_go_at_once(ports: Ports) -> None:
    cipher = FieldCipher(DataKeyring(COMPONENT, ports))
    context = FieldContext("t-1", "github", "app_tokens", "conn-1", "access_token", 1)
    cipher.decrypt(cipher.encrypt(b"value", context), context)  # fills both caches
    gone = weakref.ref(cipher)
    enabled = gc.isenabled()
    gc.disable()  # no cycle collector: only reference counting may free it
    try:
        del cipher
        assert gone() is None
    finally:
        if enabled:
            gc.enable()
