"""Field encryption overhead: FieldCipher encrypt + decrypt against raw ``cryptography``
AESGCM on the same payloads, and how often the key service is asked to unwrap a data key.

Method: per payload size, ``RUNS`` interleaved pairs (FieldCipher batch, then raw batch of
``OPS`` encrypt+decrypt each); the ratio is computed per pair. The raw baseline reuses one
``AESGCM`` object and a fresh ``os.urandom(12)`` IV per call, with associated data of the
same length as FieldCipher's. A third series builds a new (equal) ``FieldContext`` for every
call, as the vault's record codec does (constructing it is counted). Unwraps: the embedded
KeyService wrapped in a counting adapter; a fresh DataKeyring (a new instance) decrypts 10,000
fields.
"""

from __future__ import annotations

import dataclasses
import os
import struct
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from benchmarks.stats import ratio, summary
from shared.bootstrap import build
from shared.config import Config
from shared.crypto.datakeys import DataKeyring
from shared.crypto.fields import FieldCipher, FieldContext

RUNS = 45
OPS = 1000
PAYLOADS = {"token_40B": 40, "record_1KiB": 1024, "blob_16KiB": 16384}
DECRYPTS = 10_000
COMPONENT = "vault-github"


class CountingKeys:
    """The KeyService port, counting every call by name."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.calls: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def ensure_key(self, key_name):
        self._count("ensure_key")
        return self._inner.ensure_key(key_name)

    def encrypt(self, key_name, plaintext, associated_data):
        self._count("encrypt")
        return self._inner.encrypt(key_name, plaintext, associated_data)

    def decrypt(self, key_name, ciphertext, associated_data):
        self._count("decrypt")
        return self._inner.decrypt(key_name, ciphertext, associated_data)

    def rotate(self, key_name):
        self._count("rotate")
        return self._inner.rotate(key_name)

    def primary_version(self, key_name):
        self._count("primary_version")
        return self._inner.primary_version(key_name)


def _field_batch(cipher: FieldCipher, context: FieldContext, payload: bytes) -> float:
    start = time.perf_counter()
    for _ in range(OPS):
        if cipher.decrypt(cipher.encrypt(payload, context), context) is None:
            raise AssertionError
    return time.perf_counter() - start


def _field_new_context_batch(cipher: FieldCipher, context: FieldContext,
                             payload: bytes) -> float:
    """As :func:`_field_batch` with a new (equal) FieldContext per call, as the vault's record
    codec builds one per field: the cipher's per-object memo misses, its LRU answers."""
    values = dataclasses.astuple(context)
    start = time.perf_counter()
    for _ in range(OPS):
        if cipher.decrypt(cipher.encrypt(payload, FieldContext(*values)),
                          FieldContext(*values)) is None:
            raise AssertionError
    return time.perf_counter() - start


def _raw_batch(aead: AESGCM, aad: bytes, payload: bytes) -> float:
    start = time.perf_counter()
    for _ in range(OPS):
        iv = os.urandom(12)
        if aead.decrypt(iv, aead.encrypt(iv, payload, aad), aad) is None:
            raise AssertionError
    return time.perf_counter() - start


def _raw_new_batch(key: bytes, aad: bytes, payload: bytes) -> float:
    """Raw AESGCM building the cipher object per call, as FieldCipher's _aead does."""
    start = time.perf_counter()
    for _ in range(OPS):
        iv = os.urandom(12)
        sealed = AESGCM(key).encrypt(iv, payload, aad)
        if AESGCM(key).decrypt(iv, sealed, aad) is None:
            raise AssertionError
    return time.perf_counter() - start


def _field_associated_data(context: FieldContext, version: int) -> bytes:
    """Format-2 associated data as documented in ``shared/crypto/fields.py``."""
    parts = [b"keyway/field", b"\x02", COMPONENT.encode(), context.tenant.encode(),
             context.provider.encode(), context.collection.encode(),
             context.record_id.encode(), context.field.encode(), struct.pack(">I", version),
             struct.pack(">Q", context.generation)]
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


def run() -> dict:
    with tempfile.TemporaryDirectory(prefix="keyway-bench-crypto-") as tmp:
        base = build(Config.from_env({"KEYWAY_STATE_DIR": str(Path(tmp) / "state")}))
        counting = CountingKeys(base.keys)
        ports = dataclasses.replace(base, keys=counting)
        ports.keys.ensure_key(COMPONENT)
        keyring = DataKeyring(COMPONENT, ports)
        cipher = FieldCipher(keyring)
        context = FieldContext("t-1", "github", "app_tokens", "conn-1", "access_token", 1)
        version, key = keyring.primary()
        aad = _field_associated_data(context, version)  # the same bytes as FieldCipher's
        aead = AESGCM(key)
        throughput = {}
        for name, size in PAYLOADS.items():
            payload = os.urandom(size)
            field_s, raw_s, new_s, ctx_s = [], [], [], []
            _field_batch(cipher, context, payload)  # warm-up
            _raw_batch(aead, aad, payload)
            for _ in range(RUNS):
                field_s.append(_field_batch(cipher, context, payload))
                raw_s.append(_raw_batch(aead, aad, payload))
                new_s.append(_raw_new_batch(key, aad, payload))
                ctx_s.append(_field_new_context_batch(cipher, context, payload))
            throughput[name] = {
                "ops_per_run": OPS,
                "fieldcipher_ops_per_s": summary([OPS / s for s in field_s], 1),
                "raw_aesgcm_ops_per_s": summary([OPS / s for s in raw_s], 1),
                "time_ratio_field_over_raw": ratio(field_s, raw_s),
                "raw_aesgcm_new_object_per_op_ops_per_s": summary([OPS / s for s in new_s], 1),
                "time_ratio_field_over_raw_new_object": ratio(field_s, new_s),
                "time_ratio_field_new_context_per_call_over_raw": ratio(ctx_s, raw_s),
            }
        blobs = [cipher.encrypt(os.urandom(40), context) for _ in range(100)]
        counting.calls.clear()
        fresh = FieldCipher(DataKeyring(COMPONENT, ports))  # a new instance: cold key cache
        start = time.perf_counter()
        for i in range(DECRYPTS):
            fresh.decrypt(blobs[i % len(blobs)], context)
        seconds = time.perf_counter() - start
        unwraps = dict(counting.calls)
    return {
        "method": f"{RUNS} interleaved runs of {OPS} encrypt+decrypt per payload; "
                  "ratio = FieldCipher time / raw AESGCM time per pair",
        "per_payload": throughput,
        "unwrap_per_10000_decrypts": {"key_service_calls": unwraps,
                                      "unwraps": unwraps.get("decrypt", 0),
                                      "decrypts": DECRYPTS, "seconds": round(seconds, 3),
                                      "goal_met": unwraps.get("decrypt", 0) <= 1},
        "goal": "time ratio <= 2.0 per op (issue #20); 1 unwrap per instance",
    }


if __name__ == "__main__":
    import json
    print(json.dumps(run(), indent=2))
