"""Field-level AES-256-GCM encryption of vault records (DESIGN.md promise 2).

Each record field is encrypted on its own under the owning component's current data key
(:class:`~shared.crypto.datakeys.DataKeyring`), with a fresh random 96-bit IV per call.

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

Cost: a call with a context object it has seen (the same ``FieldContext`` instance) does one
AES-GCM call plus a few dictionary reads. Per instance the cipher keeps: per context object
(by identity, at most :data:`CACHE_SIZE`, then the lot is dropped) the last associated data
and header it built for it; a bounded LRU of associated data per (format, key version,
component, tenant, provider, collection, record id, field, generation), which serves new
context objects with the same values; one ``AESGCM`` object per key version, used only while
the keyring hands out that very key; and, for decryption, those objects for the keys of the
keyring's current lock-free view. The keyring's lease and view are read inline (the first
lines of :meth:`DataKeyring.reserve` and :meth:`DataKeyring.key`, with the clock read that
decides their freshness), so a rotation or retirement elsewhere reaches the cipher exactly as
it reaches the keyring; a version the keyring no longer hands out is never used. IVs come from
:mod:`shared.crypto._ivs` (``os.urandom`` read a block at a time, each IV handed out once,
dropped in a forked child). Everything is thread-safe without a lock of ours (at worst two
threads build the same entry). Nothing cached is logged, and the cipher refuses ``repr`` of
its contents and pickling.

Every decrypt failure — flipped bit anywhere, truncation, wrong context, another component's
key, an unknown or retired key version, garbage, empty input — raises the same opaque
``CryptoError()`` with the same message. Only an outage of the KMS or secret source while a key
is first unwrapped surfaces differently: ``UnavailableError`` (retryable).
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.crypto import _ivs
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
_IV_START = HEADER.size
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
        for value in (self.tenant, self.provider, self.collection, self.record_id, self.field):
            if not isinstance(value, str) or not value or not (value.isascii()
                                                                or _utf8(value)):
                self._refuse()

    def _refuse(self) -> NoReturn:
        """Raise for the first part that is not a non-empty, UTF-8-encodable string."""
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "generation":
                continue
            if not isinstance(value, str) or not value:
                raise InvalidInput(f"FieldContext.{item.name} must be a non-empty string")
            if not _utf8(value):
                raise InvalidInput(f"FieldContext.{item.name} must be valid UTF-8")
        raise AssertionError("unreachable: some part was refused")


def _utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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


_Memo = tuple["FieldContext", int, int, bytes, bytes]  # context, format, version, AD, header


def _associated_data(prefix_of: Callable[..., bytes], fmt: int, version: int, tenant: str,
                     provider: str, collection: str, record_id: str, field: str,
                     generation: int | None) -> bytes:
    """The whole associated data of one context at one key version."""
    prefix = prefix_of(fmt, version, tenant, provider, collection, record_id, field)
    return prefix if generation is None else prefix + _GENERATION(8, generation)


class FieldCipher:
    """Encrypts and decrypts record fields under one component's data keys."""

    def __init__(self, keyring: DataKeyring) -> None:
        if not isinstance(keyring, DataKeyring):
            raise InvalidInput("keyring must be a DataKeyring")
        self._keyring = keyring
        self._monotonic = keyring.monotonic
        # Per instance, so nothing outlives the cipher (module docstring, Cost): one AESGCM
        # object per key version, reused only while the keyring still hands out that very key,
        # and the associated-data prefixes of recent contexts. The cache wraps a module
        # function, not a method, so it holds no reference back to the cipher.
        self._aeads: dict[int, tuple[bytes, AESGCM]] = {}
        self._memos: dict[int, _Memo] = {}  # by id(context); see _remember
        self._live: tuple[Any, dict[int, AESGCM]] = (None, {})  # see _follow
        prefix = functools.lru_cache(maxsize=CACHE_SIZE)(
            functools.partial(_encode_prefix, keyring.component.encode("utf-8")))
        self._associated_data = functools.lru_cache(maxsize=CACHE_SIZE)(
            functools.partial(_associated_data, prefix))

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
        lease = self._keyring._lease  # DataKeyring.reserve's lock-free path, inline
        if lease is not None and self._monotonic() < lease[3] and next(lease[2]) < lease[1]:
            version, key = lease[0]
        else:
            version, key = self._keyring.reserve()
        memo = self._memos.get(id(context))  # (context, format, version, AD, header)
        if memo is None or memo[0] is not context or memo[2] != version or memo[1] != FORMAT:
            if context.generation is None:
                raise InvalidInput("new ciphertexts always bind a generation")
            memo = self._remember(context, FORMAT, version)
        aead = self._aeads.get(version)
        if aead is None or aead[0] is not key:
            aead = self._aead(version, key)
        iv = next(_ivs.CURRENT[0], None) or _ivs.refill()  # _ivs.take(), inline
        return memo[4] + iv + aead[1].encrypt(iv, plaintext, memo[3])

    def decrypt(self, ciphertext: bytes, context: FieldContext) -> bytes:
        """The plaintext of a ciphertext from :meth:`encrypt` for the same ``context`` (a
        legacy format-1 ciphertext only with ``generation=None``, and only that)."""
        if not isinstance(context, FieldContext):
            _check_context(context)
        if not isinstance(ciphertext, bytes) or len(ciphertext) < MIN_SIZE:
            fail()
        memo = self._memos.get(id(context))
        if memo is None or memo[0] is not context or not ciphertext.startswith(memo[4]):
            magic, fmt, version = HEADER.unpack_from(ciphertext)
            if magic != MAGIC or version < 1 or fmt != (LEGACY_FORMAT if context.generation
                                                        is None else FORMAT):
                fail()
            memo = self._remember(context, fmt, version)
        version = memo[2]
        view = self._keyring._view  # DataKeyring.key's lock-free path, inline (its Threads)
        live = self._live
        if live[0] is not view:
            live = self._follow(view)
        aead = live[1].get(version)
        if aead is None or self._monotonic() >= view[1]:
            aead = self._aead(version, self._keyring.key(version))[1]
        try:
            return aead.decrypt(ciphertext[_IV_START:_IV_END], ciphertext[_IV_END:], memo[3])
        except (InvalidTag, ValueError, TypeError):
            fail()

    def _remember(self, context: FieldContext, fmt: int, version: int) -> _Memo:
        """Build (from the bounded cache) and keep for ``context`` (this very object) its
        associated data and header at ``fmt`` and ``version`` — the last asked for."""
        memo = (context, fmt, version,
                self._associated_data(fmt, version, context.tenant, context.provider,
                                      context.collection, context.record_id, context.field,
                                      context.generation),
                HEADER.pack(MAGIC, fmt, version))
        memos = self._memos
        if len(memos) >= CACHE_SIZE:
            memos.clear()
        memos[id(context)] = memo  # the memo holds the context: its id is not reused meanwhile
        return memo

    def _aead(self, version: int, key: bytes) -> tuple[bytes, AESGCM]:
        """The ``AESGCM`` of ``key``, kept per version while the keyring hands out that very
        key (a plain dict: a racing miss at worst builds a second one)."""
        entry = self._aeads.get(version)
        if entry is None or entry[0] is not key:
            entry = self._aeads[version] = (key, AESGCM(key))
        return entry

    def _follow(self, view: Any) -> tuple[Any, dict[int, AESGCM]]:
        """The ``AESGCM`` of every key in the keyring's current view, by version (what
        decryption reads; rebuilt whenever the keyring publishes another view)."""
        live = self._live = (view, {version: self._aead(version, key)[1]
                                    for version, key in view[0].items()})
        return live

    def key_version(self, ciphertext: bytes) -> int:
        """The data-key version in a ciphertext's header; malformed → ``CryptoError``."""
        return _parse(ciphertext)[1]

    def binds_generation(self, ciphertext: bytes) -> bool:
        """Whether a ciphertext is format 2 (``False``: legacy format 1); malformed →
        ``CryptoError``."""
        return _parse(ciphertext)[0] == FORMAT
