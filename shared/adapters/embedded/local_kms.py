"""A local KMS: AES-256-GCM key wrapping under versioned master keys kept in a key directory.

The embedded :class:`~shared.ports.KeyService`. Each key is one JSON file
``<key_dir>/<key_name>.json`` (mode 0600, in a 0700 directory)::

    {"format": 1, "name": "vault-github", "primary": "2",
     "versions": {"1": {"key_b64": "...", "state": "DISABLED"},
                  "2": {"key_b64": "...", "state": "ENABLED"}}}

Every write goes to a temporary file created 0600 and is moved into place with ``os.replace``
while holding an exclusive ``flock`` on the directory, so concurrent rotations never lose a
version. Master keys are cached in memory after the first read (as ``AESGCM`` objects); a
process notices another process's rotation when it meets a version it has not cached, and
another process's ``disable_version`` only once it restarts.

Ciphertext layout, format 1 (all lengths in bytes)::

    offset 0       1   format byte, 0x01
    offset 1       1   L = length of the key-version id (1..16)
    offset 2       L   key-version id, ASCII digits ("1", "2", ...)
    offset 2+L    12   random nonce
    offset 14+L   >=16 AES-256-GCM ciphertext followed by the 16-byte tag

The AES-GCM associated data binds ``"keyway-local-kms/1"``, the key name, the version id and
the caller's associated data, each prefixed with its 4-byte big-endian length. Any decrypt
failure - tampering, truncation, wrong associated data, wrong key name, unknown or disabled
version, garbage - raises the same opaque ``CryptoError()``.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.adapters.embedded._files import Unpicklable, locked_dir, write_private
from shared.errors import Conflict, CryptoError, InvalidInput, NotFound, UnavailableError

FORMAT = 0x01
NONCE_SIZE = 12
TAG_SIZE = 16
MAX_VERSION_ID = 16
MAX_DATA = 64 * 1024  # Cloud KMS's limit for plaintext and associated data, kept here too
_DOMAIN = b"keyway-local-kms/1"
_KEY_NAME = re.compile(r"[a-z0-9-]{1,63}")
_ENABLED, _DISABLED = "ENABLED", "DISABLED"


@dataclass
class _Key:
    """One key as cached in memory: its primary version and a cipher per enabled version."""

    primary: str
    ciphers: dict[str, AESGCM | None] = field(default_factory=dict, repr=False)


def validate_key_name(key_name: str) -> str:
    """Return ``key_name`` if it is 1-63 of ``[a-z0-9-]``, else raise ``InvalidInput``."""
    if not isinstance(key_name, str) or not _KEY_NAME.fullmatch(key_name):
        raise InvalidInput("key name must be 1-63 lowercase letters, digits or '-'")
    return key_name


def validate_payload(plaintext: bytes, associated_data: bytes) -> None:
    """Shared encrypt-side checks: non-empty bytes, at most 64 KiB each."""
    for label, value in (("plaintext", plaintext), ("associated data", associated_data)):
        if not isinstance(value, bytes) or not value:
            raise InvalidInput(f"{label} must be non-empty bytes")
        if len(value) > MAX_DATA:
            raise InvalidInput(f"{label} is larger than 64 KiB")


def ciphertext_version(ciphertext: bytes) -> str:
    """The key-version id a format-1 ciphertext was made with (``CryptoError`` if malformed)."""
    return _parse(ciphertext)[0]


def _fail() -> NoReturn:
    raise CryptoError() from None


def _parse(blob: bytes) -> tuple[str, bytes, bytes]:
    """Split a ciphertext into (version id, nonce, sealed) with bounds checks."""
    if not isinstance(blob, bytes) or len(blob) < 2 or blob[0] != FORMAT:
        _fail()
    id_len = blob[1]
    start = 2 + id_len
    if not 1 <= id_len <= MAX_VERSION_ID or len(blob) < start + NONCE_SIZE + TAG_SIZE:
        _fail()
    raw_id = blob[2:start]
    if not raw_id.isdigit() or not raw_id.isascii():
        _fail()
    return raw_id.decode("ascii"), blob[start : start + NONCE_SIZE], blob[start + NONCE_SIZE :]


def _aad(key_name: str, version: str, associated_data: bytes) -> bytes:
    parts = (_DOMAIN, key_name.encode(), version.encode(), associated_data)
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


class LocalKeyService(Unpicklable):
    """KeyService over master keys in ``key_dir``; see the module docstring for the formats."""

    _refusal = "holds key material and cannot be pickled"

    def __init__(self, key_dir: Path) -> None:
        self._dir = Path(key_dir)
        self._cache: dict[str, _Key] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"LocalKeyService(key_dir={str(self._dir)!r})"

    # -- KeyService ---------------------------------------------------------------------------
    def ensure_key(self, key_name: str) -> None:
        """Create ``key_name`` with one enabled primary version "1" if it does not exist."""
        validate_key_name(key_name)
        with self._locked_dir():
            if self._read(key_name) is None:
                self._write(key_name, {"format": 1, "name": key_name, "primary": "1",
                                       "versions": {"1": _new_version()}})
            self._cache.pop(key_name, None)

    def encrypt(self, key_name: str, plaintext: bytes, associated_data: bytes) -> bytes:
        """Seal under the primary version; missing key → ``NotFound``."""
        validate_key_name(key_name)
        validate_payload(plaintext, associated_data)
        key = self._key(key_name)
        if key is None:
            raise NotFound(f"key {key_name!r} does not exist (call ensure_key first)")
        cipher = key.ciphers.get(key.primary)
        if cipher is None:
            raise Conflict(f"key {key_name!r}: primary version is not enabled")
        nonce = secrets.token_bytes(NONCE_SIZE)
        sealed = cipher.encrypt(nonce, plaintext, _aad(key_name, key.primary, associated_data))
        version = key.primary.encode("ascii")
        return bytes([FORMAT, len(version)]) + version + nonce + sealed

    def decrypt(self, key_name: str, ciphertext: bytes, associated_data: bytes) -> bytes:
        """Open a ciphertext from :meth:`encrypt`; every failure is the same ``CryptoError``."""
        validate_key_name(key_name)
        version, nonce, sealed = _parse(ciphertext)
        if not isinstance(associated_data, bytes) or not associated_data:
            _fail()
        key = self._key(key_name)
        if key is not None and version not in key.ciphers:
            with self._lock:  # another process may have rotated since we cached the key
                self._cache.pop(key_name, None)
            key = self._key(key_name)
        cipher = key.ciphers.get(version) if key is not None else None
        if cipher is None:
            _fail()
        try:
            return cipher.decrypt(nonce, sealed, _aad(key_name, version, associated_data))
        except InvalidTag:
            _fail()

    def rotate(self, key_name: str) -> str:
        """Add a new enabled version, make it primary and return its id."""
        validate_key_name(key_name)
        with self._locked_dir():
            record = self._require(key_name)
            new_id = str(max(int(v) for v in record["versions"]) + 1)
            record["versions"][new_id] = _new_version()
            record["primary"] = new_id
            self._write(key_name, record)
            self._cache.pop(key_name, None)
        return new_id

    def primary_version(self, key_name: str) -> str:
        """The id of the version :meth:`encrypt` uses; missing key → ``NotFound``."""
        validate_key_name(key_name)
        key = self._key(key_name)
        if key is None:
            raise NotFound(f"key {key_name!r} does not exist")
        return key.primary

    # -- extra --------------------------------------------------------------------------------
    def disable_version(self, key_name: str, version: str) -> None:
        """Make ``version`` unusable for decrypt (retirement). The primary cannot be disabled."""
        validate_key_name(key_name)
        with self._locked_dir():
            record = self._require(key_name)
            entry = record["versions"].get(str(version))
            if entry is None:
                raise NotFound(f"key {key_name!r} has no version {version!r}")
            if record["primary"] == str(version):
                raise Conflict(f"key {key_name!r}: rotate before disabling the primary version")
            entry["state"] = _DISABLED
            self._write(key_name, record)
            self._cache.pop(key_name, None)

    # -- storage ------------------------------------------------------------------------------
    def _key(self, key_name: str) -> _Key | None:
        """The cached key, loading it from disk on first use (``None`` if it does not exist)."""
        with self._lock:
            cached = self._cache.get(key_name)
            if cached is not None:
                return cached
            record = self._read(key_name)
            if record is None:
                return None
            try:
                key = _Key(primary=str(record["primary"]))
                for vid, entry in record["versions"].items():
                    enabled = entry.get("state") == _ENABLED
                    secret = base64.b64decode(entry["key_b64"], validate=True)
                    if len(secret) != 32:
                        raise ValueError("master keys are 256-bit")
                    key.ciphers[vid] = AESGCM(secret) if enabled else None
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise UnavailableError("local kms: key file is corrupt") from e
            self._cache[key_name] = key
            return key

    def _require(self, key_name: str) -> dict[str, Any]:
        record = self._read(key_name)
        if record is None:
            raise NotFound(f"key {key_name!r} does not exist")
        return record

    def _read(self, key_name: str) -> dict[str, Any] | None:
        """The key's JSON record, ``None`` if absent; unreadable storage → ``UnavailableError``."""
        try:
            with open(self._dir / f"{key_name}.json", "rb") as fh:
                record = json.loads(fh.read())
        except FileNotFoundError:
            return None
        except OSError as e:
            raise UnavailableError("local kms: key directory is unreadable") from e
        except ValueError as e:
            raise UnavailableError("local kms: key file is corrupt") from e
        if not isinstance(record, dict) or record.get("format") != 1:
            raise UnavailableError("local kms: key file has an unknown format")
        return record

    def _write(self, key_name: str, record: dict[str, Any]) -> None:
        """Atomically replace the key file: temp file created 0600, fsync, ``os.replace``."""
        write_private(self._dir / f"{key_name}.json", json.dumps(record, sort_keys=True).encode(),
                      "local kms: cannot write the key file", stem=key_name)

    @contextmanager
    def _locked_dir(self) -> Iterator[None]:
        """Create the directory 0700 if needed (tightening one others can reach, never
        loosening it) and hold an exclusive lock on it."""
        unusable = "local kms: key directory is unusable"
        with self._lock, locked_dir(self._dir, unusable, tighten=True):
            yield


def _new_version() -> dict[str, str]:
    key = AESGCM.generate_key(bit_length=256)
    return {"key_b64": base64.b64encode(key).decode("ascii"), "state": _ENABLED}
