"""Per-component data keys: 256-bit, versioned, stored only wrapped by the component's KMS key.

A component (``vault-github``, ...) owns data keys ``1, 2, ...`` (DESIGN.md promise 2). Each
version's key is ``os.urandom(32)``, wrapped with ``ports.keys.encrypt(key_name=<component>,
associated_data=b"keyway/data-key/v1|<component>|<version>")`` (component names are
``[a-z0-9-]``, so ``|`` is unambiguous) and stored only in that wrapped form as a new version
of the secret ``<component>-data-key``. Metadata lives in the vault store, document
``data_keys/<component>``::

    {"primary": 2,
     "versions": {"1": {"state": "retired", "secret_version": "1", "created_at": "...Z",
                        "encryptions_reserved": 4096, "retired_at": "...Z"},
                  "2": {"state": "active", "secret_version": "3", "created_at": "...Z",
                        "encryptions_reserved": 8192}}}

* Version 1 is created on first use (:meth:`DataKeyring.primary`, :meth:`~DataKeyring.reserve`,
  :meth:`~DataKeyring.rotate`). A new version is recorded by a store transaction that succeeds
  only if no other instance recorded that version number first; the loser re-reads and uses
  the winner's key (its own secret version stays behind as an unused orphan).
* Counting: the cipher calls :meth:`~DataKeyring.reserve` before every encryption. Uses are
  reserved from the primary's ``encryptions_reserved`` in blocks of ``reserve_block`` (the
  last block of a version is shortened so the total never passes ``rotate_after``) and handed
  out from memory; a version with no budget left is rotated automatically
  (``crypto.data_key_rotated``, reason ``limit``), far below GCM's 2^32 random-IV bound.
* Unwrapped keys are cached per instance. Metadata is re-read when an unknown version is
  asked for (another instance may have rotated) and at most every :data:`METADATA_TTL`
  seconds, so a rotation or retirement by another instance reaches this one within that time.
  Retire a version only after its records were re-encrypted and that time has passed.
* Threads: every change happens under one lock, but :meth:`~DataKeyring.key` of a cached
  version and :meth:`~DataKeyring.reserve` inside a block take no lock. Under the lock the
  keyring publishes, by a single attribute assignment, an immutable view ``(keys, fresh_until)``
  (a dict that is never mutated after publication) and an immutable lease ``((version, key),
  limit, uses, fresh_until)``; a reader loads one attribute and sees either the old or the new
  object, never a half-made one. ``uses`` is an ``itertools.count``, whose ``next()`` runs in C
  without releasing the GIL, so each encryption draws a distinct number and at most ``limit``
  draw one below it: the budget holds without a lock. Past ``fresh_until`` (the metadata
  TTL), or past the block, or for an uncached version, a call takes the locked path.
  :class:`~shared.crypto.fields.FieldCipher` reads the view and the lease the same way,
  inline (the first lines of :meth:`~DataKeyring.key` and :meth:`~DataKeyring.reserve`), and
  calls those methods when the inline path misses.
* Failures: KMS or secrets down → ``UnavailableError`` (retryable; fail closed — nothing is
  written before the KMS has answered); a retired, unknown or unwrappable key → the opaque
  ``CryptoError``. Key bytes never appear in a log line, an error message or ``repr``.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
from collections.abc import Callable
from typing import Any, NamedTuple, NoReturn

from shared.clock import isoformat
from shared.crypto._aead import KEY_SIZE, fail
from shared.crypto._keymeta import (
    ACTIVE,
    COLLECTION,
    RETIRED,
    append_in,
    grant_in,
    next_version,
    retire_in,
    version_entry,
)
from shared.errors import ContentionError, InvalidInput, NotFound
from shared.log import get_logger
from shared.ports import Document, Ports

__all__ = ["ACTIVE", "COLLECTION", "RETIRED", "DataKeyring", "secret_name",
           "wrap_associated_data"]
WRAP_PREFIX = b"keyway/data-key/v1|"
METADATA_TTL = 60.0  # seconds between metadata re-reads while every asked-for key is cached
MAX_ROTATE_AFTER = 2**32 - 1  # NIST SP 800-38D: at most 2^32 random-IV encryptions per key
_ATTEMPTS = 8
_COMPONENT = re.compile(r"[a-z0-9-]{1,63}")
log = get_logger(__name__)


def secret_name(component: str) -> str:
    """The secret that holds ``component``'s wrapped data keys."""
    return f"{component}-data-key"


def wrap_associated_data(component: str, version: int) -> bytes:
    """Associated data binding a wrapped data key to its component and version."""
    return WRAP_PREFIX + component.encode("ascii") + b"|" + str(version).encode("ascii")


class _View(NamedTuple):
    """Published keys: ``keys`` is never mutated after publication; trusted until
    ``fresh_until`` (``clock.monotonic()``)."""
    keys: dict[int, bytes]
    fresh_until: float


class _Lease(NamedTuple):
    """A block of ``limit`` encryptions of ``use``, the primary's ``(version, key)``;
    ``next(uses)`` counts one. Read by index on the hot path: 0 use, 1 limit, 2 uses, 3 fresh."""
    use: tuple[int, bytes]
    limit: int
    uses: itertools.count
    fresh_until: float


_STALE = _View({}, float("-inf"))


class DataKeyring:
    """The data keys of one component; thread-safe; see the module docstring."""

    def __init__(self, component: str, ports: Ports, *, rotate_after: int = 2**31,
                 reserve_block: int = 4096) -> None:
        if not isinstance(component, str) or not _COMPONENT.fullmatch(component):
            raise InvalidInput("component must be 1-63 lowercase letters, digits or '-'")
        if type(rotate_after) is not int or not 1 <= rotate_after <= MAX_ROTATE_AFTER:
            raise InvalidInput(f"rotate_after must be an integer from 1 to {MAX_ROTATE_AFTER}")
        if type(reserve_block) is not int or reserve_block < 1:
            raise InvalidInput("reserve_block must be a positive integer")
        self._component, self._ports = component, ports
        self._rotate_after, self._reserve_block = rotate_after, reserve_block
        self._monotonic = ports.clock.monotonic
        self._lock = threading.RLock()
        self._keys: dict[int, bytes] = {}  # changed only under the lock; readers use _view
        self._view = _STALE  # replaced whole, under the lock (see the module docstring)
        self._meta: Document | None = None
        self._meta_at: float | None = None  # clock.monotonic() of the last metadata read
        self._lease: _Lease | None = None  # replaced whole, under the lock

    @property
    def monotonic(self) -> Callable[[], float]:
        """The clock the keyring judges freshness by (``clock.monotonic``)."""
        return self._monotonic

    @property
    def component(self) -> str:
        """The component that owns these keys (also its KMS key name)."""
        return self._component

    def __repr__(self) -> str:
        return f"DataKeyring(component={self._component!r}, cached_versions={sorted(self._keys)})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("DataKeyring holds key material and cannot be pickled")

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("DataKeyring holds key material and cannot be pickled")

    # -- public -------------------------------------------------------------------------------
    def primary(self) -> tuple[int, bytes]:
        """``(version, key)`` of the primary version, creating version 1 on first use."""
        with self._lock:
            meta = self._current_meta()
            if meta is None:
                meta = self._install(lambda m: m is None, "initial")
            version = int(meta["primary"])
            return version, self._key(version)

    def key(self, version: int) -> bytes:
        """The key of an active ``version``; retired, unknown or unwrappable → ``CryptoError``."""
        keys, fresh_until = self._view  # lock-free while cached and fresh (docstring, Threads)
        key = keys.get(version) if type(version) is int else None
        if key is not None and self._monotonic() < fresh_until:
            return key
        with self._lock:
            return self._key(version)

    def reserve(self) -> tuple[int, bytes]:
        """Count one encryption and return the ``(version, key)`` it must use."""
        lease = self._lease  # lock-free inside a fresh block (module docstring, Threads)
        if lease is not None and self._monotonic() < lease[3] and next(lease[2]) < lease[1]:
            return lease[0]
        with self._lock:
            self._current_meta()  # a rotation seen here ends the current block
            for _ in range(_ATTEMPTS):
                lease = self._lease
                if lease is not None and next(lease.uses) < lease.limit:
                    return lease.use
                version, granted = self._reserve_block_of_uses()
                key = self._key(version)
                if self._meta is None or int(self._meta["primary"]) != version:
                    return version, key  # a re-read ended this block: one use of it, no lease
                self._lease = _Lease((version, key), granted, itertools.count(),
                                     self._fresh_until())
        raise ContentionError(f"data keys of {self._component!r}: too many concurrent blocks")

    def rotate(self) -> int:
        """Add a new version, make it the primary and return it; older versions stay readable."""
        with self._lock:
            return int(self._install(lambda m: True, "requested")["primary"])

    def retire(self, version: int) -> None:
        """Make ``version`` unreadable; the primary → ``Conflict``, unknown → ``NotFound``."""
        if type(version) is not int or version < 1:
            raise InvalidInput("version must be a positive integer")
        now = isoformat(self._ports.clock.now())
        with self._lock:
            meta = self._ports.vault.transaction(
                lambda tx: retire_in(tx, self._component, version, now))
            self._keys.pop(version, None)
            self._remember(meta)  # publishes the view without it
        log.info("crypto.data_key_retired",
                 extra={"fields": {"component": self._component, "version": version}})

    def versions(self) -> dict[int, dict[str, Any]]:
        """``{version: metadata}`` read fresh from the vault store (``{}`` before first use)."""
        with self._lock:
            meta = self._read()
        return {} if meta is None else {int(v): dict(e) for v, e in meta["versions"].items()}

    def primary_version(self) -> int | None:
        """The primary version, read fresh (``None`` before first use); creates nothing."""
        with self._lock:
            meta = self._read()
        return None if meta is None else int(meta["primary"])

    # -- metadata -----------------------------------------------------------------------------
    def _read(self) -> Document | None:
        meta = self._ports.vault.get(COLLECTION, self._component)
        self._remember(meta)
        return meta

    def _current_meta(self) -> Document | None:
        """Cached metadata, re-read when missing or older than :data:`METADATA_TTL`."""
        age = None if self._meta_at is None else self._monotonic() - self._meta_at
        if self._meta is None or age is None or age >= METADATA_TTL:
            return self._read()
        return self._meta

    def _remember(self, meta: Document | None) -> None:
        """Adopt fresh metadata: forget keys no longer active and a block of an old primary."""
        self._meta, self._meta_at = meta, self._monotonic()
        for version in list(self._keys):
            entry = version_entry(meta, version)
            if entry is None or entry.get("state") != ACTIVE:
                del self._keys[version]
        lease = self._lease
        if lease is not None and (meta is None or lease.use[0] != int(meta["primary"])):
            self._lease = None
        elif lease is not None:  # the same block, trusted for another TTL
            self._lease = lease._replace(fresh_until=self._fresh_until())
        self._publish()

    def _fresh_until(self) -> float:
        return -float("inf") if self._meta_at is None else self._meta_at + METADATA_TTL

    def _publish(self) -> None:
        """Replace the lock-free view with a copy of the cached keys (call under the lock)."""
        self._view = _View(dict(self._keys), self._fresh_until())

    # -- keys ---------------------------------------------------------------------------------
    def _key(self, version: int) -> bytes:
        if type(version) is not int or version < 1:
            fail()
        meta = self._current_meta()
        cached = self._keys.get(version)
        if cached is not None:
            return cached
        entry = version_entry(meta, version)
        if entry is None:  # unknown here: another instance may have rotated
            entry = version_entry(self._read(), version)
        if entry is None or entry.get("state") != ACTIVE:
            fail()
        key = self._unwrap(version, str(entry["secret_version"]))
        self._keys[version] = key
        self._publish()
        return key

    def _wrap(self, version: int, key: bytes) -> bytes:
        """Wrap under the component's KMS key, creating that key if it does not exist yet."""
        keys, ad = self._ports.keys, wrap_associated_data(self._component, version)
        try:
            return keys.encrypt(self._component, key, ad)
        except NotFound:
            keys.ensure_key(self._component)
            return keys.encrypt(self._component, key, ad)

    def _unwrap(self, version: int, secret_version: str) -> bytes:
        try:
            wrapped = self._ports.secrets.access(secret_name(self._component), secret_version)
            key = self._ports.keys.decrypt(
                self._component, wrapped, wrap_associated_data(self._component, version))
        except NotFound:
            log.warning("crypto.data_key_missing",
                        extra={"fields": {"component": self._component, "version": version}})
            fail()
        if len(key) != KEY_SIZE:
            fail()
        return key

    # -- writes -------------------------------------------------------------------------------
    def _install(self, wanted: Callable[[Document | None], bool], reason: str) -> Document:
        """Record a new primary version while ``wanted(metadata)``; return the metadata after."""
        for _ in range(_ATTEMPTS):
            meta = self._read()
            if not wanted(meta):
                assert meta is not None  # every caller's predicate wants a missing document
                return meta
            version, key = next_version(meta), os.urandom(KEY_SIZE)
            wrapped = self._wrap(version, key)  # KMS first: an outage writes nothing
            entry = {"state": ACTIVE, "created_at": isoformat(self._ports.clock.now()),
                     "encryptions_reserved": 0,
                     "secret_version": self._ports.secrets.add_version(
                         secret_name(self._component), wrapped)}
            won, meta = self._ports.vault.transaction(
                lambda tx, v=version, e=entry: append_in(tx, self._component, v, e))
            self._remember(meta)
            if won:
                self._keys[version] = key
                self._publish()
                self._log_new(version, reason)
                return meta
        raise ContentionError(f"data keys of {self._component!r}: too many concurrent rotations")

    def _reserve_block_of_uses(self) -> tuple[int, int]:
        """Reserve a block of uses of the primary, rotating it when its budget is spent."""
        for _ in range(_ATTEMPTS):
            meta = self._read()
            if meta is None:
                self._install(lambda m: m is None, "initial")
                continue
            self._key(int(meta["primary"]))  # the KMS must answer before anything is written
            version, granted, meta = self._ports.vault.transaction(lambda tx: grant_in(
                tx, self._component, self._reserve_block, self._rotate_after))
            self._remember(meta)
            if granted:
                return version, granted
            if version:
                self._install(lambda m, v=version: m is None or m["primary"] == v, "limit")
        raise ContentionError(f"data keys of {self._component!r}: too many concurrent rotations")

    def _log_new(self, version: int, reason: str) -> None:
        event = "crypto.data_key_created" if version == 1 else "crypto.data_key_rotated"
        log.info(event, extra={"fields": {"component": self._component, "version": version,
                                          "reason": reason}})
