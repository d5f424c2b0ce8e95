"""Private AES-256-GCM helpers for :mod:`shared.crypto` (not part of the public API).

* :func:`encode_parts` — the canonical, unambiguous encoding used for associated data: every
  part is prefixed with its 4-byte big-endian length, so no two different part lists encode to
  the same bytes (``("ab", "c")`` and ``("a", "bc")`` differ).
* :func:`seal_with` / :func:`open_with` — AES-256-GCM under an ``AESGCM`` object the caller
  keeps per key, with a fresh random 96-bit IV per call; every open failure is the same opaque
  :class:`~shared.errors.CryptoError`.
"""

from __future__ import annotations

import os
import struct
from typing import NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.errors import CryptoError

KEY_SIZE = 32  # AES-256
IV_SIZE = 12  # 96-bit random IV, GCM's native size
TAG_SIZE = 16  # full 128-bit tag


def fail() -> NoReturn:
    """Raise the one opaque ``CryptoError`` (without chaining whatever caused it)."""
    raise CryptoError() from None


def encode_parts(*parts: bytes) -> bytes:
    """Length-prefixed concatenation: ``len(p) as uint32 BE || p`` for every part."""
    return b"".join(struct.pack(">I", len(part)) + part for part in parts)


def seal_with(aead: AESGCM, plaintext: bytes, associated_data: bytes) -> tuple[bytes, bytes]:
    """Encrypt with a fresh ``os.urandom`` IV; returns ``(iv, ciphertext+tag)``. ``aead`` is
    built once per key by its owner (building one per call costs as much as a small seal)."""
    iv = os.urandom(IV_SIZE)
    return iv, aead.encrypt(iv, plaintext, associated_data)


def open_with(aead: AESGCM, iv: bytes, sealed: bytes, associated_data: bytes) -> bytes:
    """Authenticate and decrypt; any failure → the opaque ``CryptoError``."""
    try:
        return aead.decrypt(iv, sealed, associated_data)
    except (InvalidTag, ValueError, TypeError):
        fail()
