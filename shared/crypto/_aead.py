"""Private AES-256-GCM helpers for :mod:`shared.crypto` (not part of the public API).

* :func:`encode_parts` — the canonical, unambiguous encoding used for associated data: every
  part is prefixed with its 4-byte big-endian length, so no two different part lists encode to
  the same bytes (``("ab", "c")`` and ``("a", "bc")`` differ).
* :func:`fail` — the one opaque :class:`~shared.errors.CryptoError` every decrypt failure
  raises (field encryption calls ``AESGCM`` itself, on its cached objects).
"""

from __future__ import annotations

import struct
from typing import NoReturn

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
