"""Field-level AES-256-GCM encryption of vault records (DESIGN.md promise 2).

Each record field is encrypted on its own under the owning component's current data key
(:class:`~shared.crypto.datakeys.DataKeyring`), with a fresh ``os.urandom(12)`` IV per call.

Ciphertext layout (all lengths in bytes; integers big-endian)::

    offset 0    1   magic 0x4B ('K')
    offset 1    1   format: 0x02 (written today) or 0x01 (legacy, read only)
    offset 2    4   data-key version, uint32 (>= 1)
    offset 6   12   random IV
    offset 18  >=16 AES-256-GCM ciphertext followed by the 16-byte tag

so a ciphertext is ``34 + len(plaintext)`` bytes. It is parsed with bounds checks: wrong magic
or format, version 0 or fewer than 34 bytes is malformed. Both formats share this layout; they
differ only in their associated data.

Associated data: the parts below, each prefixed with its 4-byte big-endian length (so the
encoding is canonical and unambiguous)::

    format 2:  b"keyway/field" | 0x02 | component | tenant | provider | collection |
               record_id | field | key version as uint32 | record generation as uint64
    format 1:  the same without the generation (0x01 as the format byte)

so a ciphertext copied to another record, field, collection, provider, tenant or component,
relabelled with another key version, or — format 2 — put back into its record at another
generation (an older value of the same field swapped back), fails to decrypt. Context strings
are UTF-8. :meth:`FieldCipher.encrypt` writes format 2 only: a :class:`FieldContext` with
``generation=None`` names a legacy format-1 ciphertext and is accepted only by
:meth:`FieldCipher.decrypt`, which never accepts one format for the other.

Cost: the cipher keeps, per instance, two bounded LRU caches (:data:`CACHE_SIZE` entries
each): per (format, key version, component, tenant, provider, collection, record id, field) the
encoded associated data up to the generation, and per that plus the key the keyring handed out
and the generation, the whole associated data, the version's shared ``AESGCM`` object and the
header. A call looks its context up once, draws the IV and makes one AES-GCM call; a new
generation (every write) costs one append to a cached prefix. Both caches are
:func:`functools.lru_cache`, thread-safe without a lock of ours (at worst two threads build the
same entry). An entry is found only with the key the keyring hands out for the call, so a
version the keyring no longer hands out (retired) is never used from it. Nothing in either is
logged, and the cipher refuses ``repr`` of its contents and pickling.

Every decrypt failure — flipped bit anywhere, truncation, wrong context, another component's
key, an unknown or retired key version, garbage, empty input — raises the same opaque
``CryptoError()`` with the same message. Only an outage of the KMS or secret source while a key
is first unwrapped surfaces differently: ``UnavailableError`` (retryable).
"""

from __future__ import annotations

import functools
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.crypto._aead import IV_SIZE, TAG_SIZE, encode_parts, fail
from shared.crypto.datakeys import DataKeyring
from shared.errors import InvalidInput

MAGIC = 0x4B
FORMAT = 0x02  # associated data binds the record generation
LEGACY_FORMAT = 0x01  # no generation in the associated data: read only
HEADER = struct.Struct(">BBI")  # magic, format, key version
MIN_SIZE = HEADER.size + IV_SIZE + TAG_SIZE
_DOMAIN = b"keyway/field"
_GENERATION = struct.Struct(">IQ").pack  # the last associated-data part: 8, generation
_IV_END = HEADER.size + IV_SIZE
CACHE_SIZE = 4096  # entries per cache and cipher, the least recently used dropped


@dataclass(frozen=True)
class FieldContext:
    """Where a ciphertext belongs; every part is bound into its associated data.

    ``generation`` is the vault record's generation the value is written at (>= 1), or
    ``None`` only to read a legacy format-1 ciphertext, which bound none."""

    tenant: str
    provider: str
    collection: str
    record_id: str
    field: str
    generation: int | None

    def __post_init__(self) -> None:
        generation = self.generation
        if generation is not None and (type(generation) is not int
                                       or not 1 <= generation < 2**64):
            raise InvalidInput("FieldContext.generation must be an int >= 1, or None")
        for item in fields(self):
            if item.name == "generation":
                continue
            value = getattr(self, item.name)
            if not isinstance(value, str) or not value:
                raise InvalidInput(f"FieldContext.{item.name} must be a non-empty string")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidInput(f"FieldContext.{item.name} must be valid UTF-8") from None


def _parse(ciphertext: bytes) -> tuple[int, int, bytes, bytes]:
    """Split a ciphertext into ``(format, version, iv, sealed)``; malformed → ``CryptoError``."""
    if not isinstance(ciphertext, bytes) or len(ciphertext) < MIN_SIZE:
        fail()
    magic, fmt, version = HEADER.unpack_from(ciphertext)
    if magic != MAGIC or fmt not in (FORMAT, LEGACY_FORMAT) or version < 1:
        fail()
    iv_end = HEADER.size + IV_SIZE
    return fmt, version, ciphertext[HEADER.size:iv_end], ciphertext[iv_end:]


def _check_context(context: object) -> FieldContext:
    if not isinstance(context, FieldContext):
        raise InvalidInput("context must be a FieldContext")
    return context


def _encode_prefix(component: bytes, fmt: int, version: int, tenant: str, provider: str,
                   collection: str, record_id: str, field: str) -> bytes:
    """The associated data up to the generation: format 2 appends the generation, format 1's
    is whole."""
    return encode_parts(
        _DOMAIN, bytes([fmt]), component, tenant.encode("utf-8"), provider.encode("utf-8"),
        collection.encode("utf-8"), record_id.encode("utf-8"), field.encode("utf-8"),
        struct.pack(">I", version))


def _build_entry(aeads: dict[int, tuple[bytes, AESGCM]], prefix_of: Callable[..., bytes],
                 fmt: int, version: int, key: bytes, tenant: str, provider: str,
                 collection: str, record_id: str, field: str, generation: int | None
                 ) -> tuple[AESGCM, bytes, bytes]:
    """``(aead, associated data, header)`` of one context at one key version."""
    cached = aeads.get(version)
    if cached is None or cached[0] is not key:
        cached = aeads[version] = (key, AESGCM(key))
    prefix = prefix_of(fmt, version, tenant, provider, collection, record_id, field)
    associated_data = prefix if generation is None else prefix + _GENERATION(8, generation)
    return cached[1], associated_data, HEADER.pack(MAGIC, fmt, version)


class FieldCipher:
    """Encrypts and decrypts record fields under one component's data keys."""

    def __init__(self, keyring: DataKeyring) -> None:
        if not isinstance(keyring, DataKeyring):
            raise InvalidInput("keyring must be a DataKeyring")
        self._keyring = keyring
        # Per instance, so nothing outlives the cipher (module docstring, Cost): one AESGCM
        # object per key version, reused only while the keyring still hands out that very key
        # (a plain dict: a racing miss at worst builds a second one), and the entries of recent
        # contexts. The caches wrap module functions, not methods, so they hold no reference
        # back to the cipher and go with it.
        aeads: dict[int, tuple[bytes, AESGCM]] = {}
        prefix = functools.lru_cache(maxsize=CACHE_SIZE)(
            functools.partial(_encode_prefix, keyring.component.encode("utf-8")))
        self._entry = functools.lru_cache(maxsize=CACHE_SIZE)(
            functools.partial(_build_entry, aeads, prefix))

    def __repr__(self) -> str:
        return f"FieldCipher(component={self._keyring.component!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("FieldCipher holds key material and cannot be pickled")

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("FieldCipher holds key material and cannot be pickled")

    def encrypt(self, plaintext: bytes, context: FieldContext) -> bytes:
        """Encrypt one field value for ``context`` under the current data key."""
        if not isinstance(plaintext, bytes):
            raise InvalidInput("plaintext must be bytes")
        if not isinstance(context, FieldContext):
            _check_context(context)
        generation = context.generation
        if generation is None:
            raise InvalidInput("new ciphertexts always bind a generation")
        version, key = self._keyring.reserve()
        aead, associated_data, header = self._entry(
            FORMAT, version, key, context.tenant, context.provider, context.collection,
            context.record_id, context.field, generation)
        iv = os.urandom(IV_SIZE)
        return header + iv + aead.encrypt(iv, plaintext, associated_data)

    def decrypt(self, ciphertext: bytes, context: FieldContext) -> bytes:
        """The plaintext of a ciphertext from :meth:`encrypt` for the same ``context`` (a
        legacy format-1 ciphertext only with ``generation=None``, and only that)."""
        if not isinstance(context, FieldContext):
            _check_context(context)
        generation = context.generation
        if not isinstance(ciphertext, bytes) or len(ciphertext) < MIN_SIZE:
            fail()
        magic, fmt, version = HEADER.unpack_from(ciphertext)  # _parse, inline: the hot path
        if magic != MAGIC or version < 1 or fmt != (LEGACY_FORMAT if generation is None
                                                    else FORMAT):
            fail()
        aead, associated_data, _ = self._entry(
            fmt, version, self._keyring.key(version), context.tenant, context.provider,
            context.collection, context.record_id, context.field, generation)
        try:
            return aead.decrypt(ciphertext[HEADER.size:_IV_END], ciphertext[_IV_END:],
                                associated_data)
        except (InvalidTag, ValueError, TypeError):
            fail()

    def key_version(self, ciphertext: bytes) -> int:
        """The data-key version in a ciphertext's header; malformed → ``CryptoError``."""
        return _parse(ciphertext)[1]

    def binds_generation(self, ciphertext: bytes) -> bool:
        """Whether a ciphertext is format 2 (``False``: legacy format 1); malformed →
        ``CryptoError``."""
        return _parse(ciphertext)[0] == FORMAT
