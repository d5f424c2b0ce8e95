"""Cost of the vault's cryptography on the embedded backend: field encryption and decryption,
storing a token, and releasing it as a sealed envelope (no refresh: the token is fresh).

Bounded: fixed counts in a temporary state directory, removed afterwards.
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shared.bootstrap import build
from shared.config import Config
from shared.crypto import channels
from shared.crypto.fields import FieldCipher, FieldContext
from shared.vault.endpoints import UnconfiguredEndpoint
from shared.vault.service import VaultService
from shared.vault.tokens import TokenSet

N_FIELDS = 5000
N_RECORDS = 300


def _rate(count: int, seconds: float) -> dict:
    return {"count": count, "seconds": round(seconds, 4), "per_second": round(count / seconds, 1)}


def _timed(fn, count: int) -> dict:
    start = time.perf_counter()
    for i in range(count):
        fn(i)
    return _rate(count, time.perf_counter() - start)


def run() -> dict:
    with tempfile.TemporaryDirectory(prefix="keyway-bench-") as tmp:
        ports = build(Config.from_env({"KEYWAY_STATE_DIR": str(Path(tmp) / "state")}))
        ports.keys.ensure_key("vault-github")
        channels.ensure(ports.secrets)
        vault = VaultService("github", ports, UnconfiguredEndpoint("github"))
        cipher = FieldCipher(vault.keyring)
        context = FieldContext("t-1", "github", "app_tokens", "conn-1", "access_token", 1)
        token = b"gho_" + b"x" * 36
        blobs = [cipher.encrypt(token, context) for _ in range(10)]
        expires = datetime.now(UTC) + timedelta(hours=8)
        return {
            "field_encrypt": _timed(lambda i: cipher.encrypt(token, context), N_FIELDS),
            "field_decrypt": _timed(lambda i: cipher.decrypt(blobs[i % 10], context), N_FIELDS),
            "store_app_token": _timed(lambda i: vault.store_app_token(
                "t-1", f"conn-{i}", "admin", TokenSet(f"gho_{i:036d}", f"ghr_{i:036d}",
                                                      expires)), N_RECORDS),
            "release_for_fetch_sealed": _timed(lambda i: vault.release_for_fetch(
                "t-1", f"conn-{i}", "scheduler"), N_RECORDS),
        }
