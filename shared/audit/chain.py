"""Tamper-evident audit log: one keyed hash chain per component, in the business store.

Layout (default database)::

    audit_heads/<chain>                  {"seq": n, "mac": hex}          the newest entry
    audit_entries/<chain>-<seq:012d>     {chain, seq, time, event, requester, recipient,
                                          purpose, connection, outcome, detail, prev_mac, mac}

``mac = HMAC-SHA256(audit key, prev_mac + "\\n" + canonical JSON of the entry fields)`` where the
first entry's ``prev_mac`` is 64 zeros and the audit key is the secret ``audit-chain-key`` (32
random bytes, created on first use). Someone who can write the database but cannot read the
secret can edit, drop, insert or reorder entries, but cannot make :func:`verify` accept the
result. Limit: dropping the newest entries *and* rolling the head back to an older entry is a
consistent truncation that only an outside copy of the head can reveal.

Each chain (e.g. ``vault-github``) is appended to in one store transaction that reads the head
and writes the entry and the new head, so concurrent appenders of a chain serialize and never
fork it; separate chains per component keep components from contending with each other.
Entries never carry a secret: any field that :func:`shared.log.redact` would change is refused.

On Firestore, :func:`verify`'s query needs the composite index
``audit_entries (chain ASC, seq ASC)``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets as random_source
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.clock import isoformat
from shared.errors import ConfigError, Conflict, InvalidInput, NotFound
from shared.log import redact
from shared.ports import Clock, DocumentStore, Filter, Order, SecretSource, Snapshot, Transaction

HEADS = "audit_heads"
ENTRIES = "audit_entries"
KEY_SECRET = "audit-chain-key"  # noqa: S105 - the secret's name, not a value
GENESIS_MAC = "0" * 64
MAX_FIELD = 500
PAGE_SIZE = 200
_MAX_ROUNDS = 100
_CHAIN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_HEX_MAC = re.compile(r"[0-9a-f]{64}")
_REQUIRED = ("event", "requester", "outcome")
_OPTIONAL = ("recipient", "purpose", "connection")
_MACED = ("chain", "seq", "time", "event", "requester", "recipient", "purpose", "connection",
          "outcome", "detail")
_key_lock = threading.Lock()  # one process creates the audit key once, not once per thread


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify`: ``checked`` entries were sound; ``problem`` names the first
    inconsistency (never a field value) and ``seq`` the entry where it was found."""

    ok: bool
    checked: int
    problem: str | None = None
    seq: int | None = None


def entry_id(chain: str, seq: int) -> str:
    """The document id of entry ``seq`` of ``chain``."""
    return f"{chain}-{seq:012d}"


def canonical(entry: Mapping[str, Any]) -> bytes:
    """The MACed bytes of an entry: its fields as sorted, compact JSON (``KeyError`` if one is
    missing)."""
    fields = {name: entry[name] for name in _MACED}
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
        self.chain = _check_chain(chain)
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
        return self._store.transaction(lambda txn: self._append_in(txn, key, fields))

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
        return dict(entry)

    def _audit_key(self) -> bytes:
        if self._key is None:
            self._key = _load_key(self._secrets, create=True)
        return self._key


def verify(store: DocumentStore, secrets: SecretSource, chain: str, *,
           page_size: int = PAGE_SIZE) -> VerifyResult:
    """Walk ``chain`` in seq order and check every MAC, link and seq, then the head.

    Entries appended while the walk runs are followed until the walk catches up with the head.
    """
    walk = _Walk(_check_chain(chain), _read_key(secrets))
    for _ in range(_MAX_ROUNDS):
        before = walk.checked
        problem = _walk_entries(store, walk, page_size)
        if problem is None:
            problem, done = walk.check_head(store.get(HEADS, chain), walk.checked > before)
            if done:
                return VerifyResult(ok=True, checked=walk.checked)
        if problem is not None:
            return VerifyResult(ok=False, checked=walk.checked, problem=problem, seq=walk.at)
    return VerifyResult(ok=False, checked=walk.checked, problem="the chain kept growing")


def chains(store: DocumentStore) -> list[str]:
    """The names of every audit chain that has a head."""
    return sorted(snapshot.id for snapshot in store.query(HEADS))


class _Walk:
    """The state of one verification: how far the chain has been checked."""

    def __init__(self, chain: str, key: bytes | None) -> None:
        self.chain, self.key = chain, key
        self.last_seq, self.last_id, self.prev_mac, self.checked = 0, "", GENESIS_MAC, 0
        self.at: int | None = None  # the seq a problem was found at

    def _problem(self, text: str, seq: int | None) -> str:
        self.at = seq
        return text

    def step(self, snapshot: Snapshot) -> str | None:
        """Check the next entry in seq order; return a problem or ``None`` and advance."""
        if snapshot.id == self.last_id:
            return None  # the previous page's last entry, fetched again on purpose
        entry, expected = snapshot.data, self.last_seq + 1
        seq = entry.get("seq")
        if type(seq) is not int:
            return self._problem("a document with a non-integer seq is in the chain", expected)
        if seq != expected:
            text = "duplicated or reordered" if seq < expected else f"missing (next is {seq})"
            return self._problem(f"entry {expected}: {text}", expected)
        if snapshot.id != entry_id(self.chain, seq):
            return self._problem(f"entry {seq}: stored under the wrong id", seq)
        if entry.get("prev_mac") != self.prev_mac:
            return self._problem(f"entry {seq}: does not link to the previous entry", seq)
        if self.key is None:
            return self._problem("the audit key is missing", seq)
        try:
            mac = entry_mac(self.key, self.prev_mac, entry)
        except (KeyError, TypeError, ValueError):
            return self._problem(f"entry {seq}: malformed", seq)
        stored = entry.get("mac")
        if not isinstance(stored, str) or not hmac.compare_digest(
                mac.encode(), stored.encode("utf-8", "replace")):
            return self._problem(f"entry {seq}: altered (MAC mismatch)", seq)
        self.last_seq, self.last_id, self.prev_mac = seq, snapshot.id, stored
        self.checked += 1
        return None

    def check_head(
        self, head: Mapping[str, Any] | None, progressed: bool
    ) -> tuple[str | None, bool]:
        """Compare the head with the last checked entry: ``(problem, done)``."""
        if head is None:
            if self.checked == 0:
                return None, True
            return self._problem("the head is missing", self.last_seq), False
        seq = head.get("seq")
        if type(seq) is not int:
            return self._problem("the head is malformed", None), False
        if seq > self.last_seq and progressed:
            return None, False  # appended while walking: walk on
        if seq > self.last_seq:
            return self._problem(f"entries {self.last_seq + 1}-{seq} are missing",
                                 self.last_seq + 1), False
        if seq < self.last_seq:
            return self._problem("the head is behind the entries", seq), False
        if head.get("mac") != self.prev_mac:
            return self._problem("the head does not match the last entry", seq), False
        return None, True


def _walk_entries(store: DocumentStore, walk: _Walk, page_size: int) -> str | None:
    """Check every entry after ``walk.last_seq``, one page at a time.

    Each page starts at the last checked seq (inclusive) so a second document claiming that
    seq cannot hide on a page boundary; the entry already checked is skipped by its id.
    """
    if page_size < 2:
        raise InvalidInput("page_size must be at least 2")
    while True:
        page = store.query(
            ENTRIES,
            [Filter("chain", "==", walk.chain), Filter("seq", ">=", walk.last_seq)],
            [Order("seq")],
            limit=page_size,
        )
        before = walk.checked
        for snapshot in page:
            problem = walk.step(snapshot)
            if problem is not None:
                return problem
        if len(page) < page_size or walk.checked == before:
            return None


def _check_chain(chain: str) -> str:
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


def _read_key(secrets: SecretSource) -> bytes | None:
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
