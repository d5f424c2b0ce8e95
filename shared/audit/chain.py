"""Tamper-evident audit log: one keyed hash chain per component, in the business store.

Layout (default database)::

    audit_heads/<chain>                  {"seq": n, "mac": hex}          the newest entry
    audit_entries/<chain>-<seq:012d>     {chain, seq, time, event, requester, recipient,
                                          purpose, connection, outcome, detail, prev_mac, mac}
    audit_checkpoints/<chain>            the head, MACed in its own domain (checkpoint.py)

``mac = HMAC-SHA256(audit key, prev_mac + "\\n" + canonical(entry))`` where the first entry's
``prev_mac`` is 64 zeros and the audit key is the secret ``audit-chain-key`` (32 random bytes,
created on first use). :func:`canonical` is the one encoding: every field of the stored entry
except ``mac`` and ``prev_mac`` (which the message already starts with), as sorted, compact
JSON — so a field added, removed or changed changes the MAC. Someone who can write the database
but cannot read the secret can edit, drop, insert or reorder entries, but cannot make
:func:`shared.audit.verify.verify` accept the result; a deleted chain or a dropped tail with its
head rolled back shows against the checkpoints (the threat model: docs/ARCHITECTURE.md).

Each chain (e.g. ``vault-github``) is appended to in one store transaction that reads the head
and writes the entry, the new head and the checkpoint, so concurrent appenders of a chain
serialize and never fork it; separate chains per component keep components from contending
with each other. Entries never carry a secret: any field that :func:`shared.log.redact` would
change is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets as random_source
import threading
from collections.abc import Mapping
from typing import Any

from shared.audit import checkpoint
from shared.clock import isoformat
from shared.errors import ConfigError, Conflict, InvalidInput, NotFound
from shared.log import redact
from shared.ports import Clock, DocumentStore, SecretSource, Transaction

HEADS = "audit_heads"
ENTRIES = "audit_entries"
KEY_SECRET = "audit-chain-key"  # noqa: S105 - the secret's name, not a value
GENESIS_MAC = "0" * 64
MAX_FIELD = 500
_CHAIN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_HEX_MAC = re.compile(r"[0-9a-f]{64}")
_REQUIRED = ("event", "requester", "outcome")
_OPTIONAL = ("recipient", "purpose", "connection")
FIELDS = frozenset({"chain", "seq", "time", "event", "requester", "recipient", "purpose",
                    "connection", "outcome", "detail", "prev_mac", "mac"})  # what append writes
_UNMACED = ("mac", "prev_mac")  # the MAC itself, and the link the MAC message starts with
_key_lock = threading.Lock()  # one process creates the audit key once, not once per thread


def entry_id(chain: str, seq: int) -> str:
    """The document id of entry ``seq`` of ``chain``."""
    return f"{chain}-{seq:012d}"


def canonical(entry: Mapping[str, Any]) -> bytes:
    """The MACed bytes of an entry: every field but ``mac`` and ``prev_mac``, as sorted,
    compact JSON (``TypeError`` for a value JSON cannot encode)."""
    fields = {name: value for name, value in entry.items() if name not in _UNMACED}
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8")


def entry_mac(key: bytes, prev_mac: str, entry: Mapping[str, Any]) -> str:
    """HMAC-SHA256 hex of ``prev_mac`` and the entry's canonical JSON under ``key``."""
    message = prev_mac.encode("ascii") + b"\n" + canonical(entry)
    return hmac.new(key, message, hashlib.sha256).hexdigest()


class AuditLog:
    """Appends to one audit chain; safe to share between threads."""

    def __init__(self, store: DocumentStore, secrets: SecretSource, clock: Clock,
                 chain: str) -> None:
        self._store = store
        self._secrets = secrets
        self._clock = clock
        self.chain = check_chain(chain)
        self._key: bytes | None = None

    def __repr__(self) -> str:
        return f"AuditLog(chain={self.chain!r})"

    def append(self, event: str, *, requester: str, recipient: str | None,
               purpose: str | None, connection: str | None, outcome: str,
               detail: str = "") -> dict[str, Any]:
        """Append one entry in one transaction and return it (with ``seq`` and ``mac``).

        A field that is not a string of at most 500 characters, an empty required field or a
        value that looks like a token → ``InvalidInput`` and nothing is written.
        """
        fields = _validated({
            "event": event, "requester": requester, "recipient": recipient,
            "purpose": purpose, "connection": connection, "outcome": outcome, "detail": detail,
        })
        key = self._audit_key()
        entry = self._store.transaction(lambda txn: self._append_in(txn, key, fields))
        checkpoint.emit(self.chain, entry["seq"], entry["mac"])
        return entry

    def _append_in(self, txn: Transaction, key: bytes, fields: dict[str, Any]) -> dict[str, Any]:
        """The transaction body: read the head, write the entry and the new head."""
        head = txn.get(HEADS, self.chain) or {"seq": 0, "mac": GENESIS_MAC}
        seq, prev_mac = head.get("seq"), head.get("mac")
        if type(seq) is not int or seq < 0 or not isinstance(prev_mac, str) \
                or not _HEX_MAC.fullmatch(prev_mac):
            raise Conflict(f"audit chain {self.chain!r} has a malformed head")
        seq += 1
        if txn.get(ENTRIES, entry_id(self.chain, seq)) is not None:
            raise Conflict(f"audit chain {self.chain!r}: the head is behind its entries")
        entry = {"chain": self.chain, "seq": seq, "time": isoformat(self._clock.now()), **fields}
        entry["prev_mac"] = prev_mac
        entry["mac"] = entry_mac(key, prev_mac, entry)
        txn.put(ENTRIES, entry_id(self.chain, seq), entry)
        txn.put(HEADS, self.chain, {"seq": seq, "mac": entry["mac"]})
        checkpoint.write(txn, key, self.chain, seq, entry["mac"], entry["time"])
        return dict(entry)

    def _audit_key(self) -> bytes:
        if self._key is None:
            self._key = _load_key(self._secrets, create=True)
        return self._key


def check_chain(chain: str) -> str:
    if not isinstance(chain, str) or not _CHAIN.fullmatch(chain):
        raise InvalidInput("an audit chain name is 1-63 lowercase letters, digits or '-'")
    return chain


def _validated(values: dict[str, Any]) -> dict[str, Any]:
    """The entry fields, each checked; the error names the field, never its value."""
    for name, value in values.items():
        if value is None and name in _OPTIONAL:
            continue
        if not isinstance(value, str):
            raise InvalidInput(f"audit field {name!r} must be a string")
        if name in _REQUIRED and not value:
            raise InvalidInput(f"audit field {name!r} must not be empty")
        if len(value) > MAX_FIELD:
            raise InvalidInput(f"audit field {name!r} is longer than {MAX_FIELD} characters")
        if redact(value) != value:
            raise InvalidInput(f"audit field {name!r} looks like it carries a secret")
    return values


def read_key(secrets: SecretSource) -> bytes | None:
    try:
        return _load_key(secrets, create=False)
    except NotFound:
        return None


def _load_key(secrets: SecretSource, *, create: bool) -> bytes:
    """The audit key; with ``create``, made (32 random bytes) if the secret does not exist."""
    try:
        return _checked_key(secrets.access(KEY_SECRET))
    except NotFound:
        if not create:
            raise
    with _key_lock:
        try:
            return _checked_key(secrets.access(KEY_SECRET))
        except NotFound:
            secrets.add_version(KEY_SECRET, random_source.token_bytes(32))
        return _checked_key(secrets.access(KEY_SECRET))


def _checked_key(key: bytes) -> bytes:
    if len(key) < 32:
        raise ConfigError(f"secret {KEY_SECRET!r} must be at least 32 bytes")
    return key


# Verification lives in its own module; its names stay importable from here for callers that
# always imported them from the chain. Imported last: verify.py uses the names above.
from shared.audit.verify import VerifyResult, chains, verify  # noqa: E402

__all__ = ["ENTRIES", "HEADS", "KEY_SECRET", "AuditLog", "VerifyResult", "canonical", "chains",
           "entry_id", "entry_mac", "verify"]
