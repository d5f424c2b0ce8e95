"""Checkpoints: where an audit chain's head is anchored outside the chain itself.

Each append also writes, in the same transaction, ``audit_checkpoints/<chain>``::

    {"chain": "vault-github", "seq": 7, "head": <mac of entry 7>, "time": "...Z", "mac": hex}

``mac = HMAC-SHA256(audit key, "keyway/audit-checkpoint/v1\\n" + canonical JSON of the other
fields)`` — a MAC domain of its own (an entry's MAC message starts with 64 hex digits, never
with this prefix), so an entry MAC can never pass for a checkpoint MAC or the reverse. After the
transaction commits, the same facts go to the log stream as one structured line with the
stable key ``audit.checkpoint`` (``chain``, ``seq``, ``head``; never a secret: ``head`` is a
MAC output). Cloud Logging keeps those lines where the components' service accounts can only
write (``roles/logging.logWriter``), so an export of them (:func:`from_log_lines`) is the
anchor that survives a full rewrite of the business database: the threat model is in
docs/ARCHITECTURE.md ("Audit chain").
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.log import get_logger
from shared.ports import DocumentStore, Transaction

CHECKPOINTS = "audit_checkpoints"
LOG_KEY = "audit.checkpoint"
DOMAIN = b"keyway/audit-checkpoint/v1\n"
_FIELDS = ("chain", "seq", "head", "time")
log = get_logger("keyway.audit")


class InvalidCheckpoint(Exception):
    """A stored checkpoint whose fields or MAC do not verify (never carries a value)."""


@dataclass(frozen=True)
class Checkpoint:
    """The head of ``chain`` at ``seq`` was the entry whose MAC is ``head``; ``source`` says
    where this anchor was read (``store`` or ``log``)."""

    chain: str
    seq: int
    head: str
    source: str = "store"


def checkpoint_mac(key: bytes, record: Mapping[str, Any]) -> str:
    """HMAC-SHA256 hex of a checkpoint's fields, in the checkpoint domain."""
    fields = {name: record[name] for name in _FIELDS}
    body = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hmac.new(key, DOMAIN + body, hashlib.sha256).hexdigest()


def write(txn: Transaction, key: bytes, chain: str, seq: int, head: str, time: str) -> None:
    """Record the new head of ``chain`` (called in the append's transaction)."""
    record: dict[str, Any] = {"chain": chain, "seq": seq, "head": head, "time": time}
    record["mac"] = checkpoint_mac(key, record)
    txn.put(CHECKPOINTS, chain, record)


def emit(chain: str, seq: int, head: str) -> None:
    """The log-stream copy of a checkpoint, after its transaction committed."""
    log.info(LOG_KEY, extra={"fields": {"chain": chain, "seq": seq, "head": head}})


def read(store: DocumentStore, key: bytes | None, chain: str) -> Checkpoint | None:
    """The stored checkpoint of ``chain``; ``None`` if there is none; a record whose fields
    are not exactly the checkpoint's or whose MAC fails → :class:`InvalidCheckpoint`."""
    record = store.get(CHECKPOINTS, chain)
    if record is None:
        return None
    if key is None or set(record) != {*_FIELDS, "mac"} or record.get("chain") != chain:
        raise InvalidCheckpoint
    stored = record.get("mac")
    try:
        expected = checkpoint_mac(key, record)
    except (TypeError, ValueError) as e:
        raise InvalidCheckpoint from e
    if not isinstance(stored, str) or not hmac.compare_digest(
            expected.encode(), stored.encode("utf-8", "replace")):
        raise InvalidCheckpoint
    if type(record["seq"]) is not int or not isinstance(record["head"], str):
        raise InvalidCheckpoint
    return Checkpoint(chain, record["seq"], record["head"])


def chains(store: DocumentStore) -> set[str]:
    """The chains that have a stored checkpoint."""
    return {snapshot.id for snapshot in store.query(CHECKPOINTS)}


def from_log_lines(lines: Iterable[str]) -> list[Checkpoint]:
    """The ``audit.checkpoint`` lines of a log export: keyway's own JSON lines, or Cloud
    Logging entries (``gcloud logging read … --format=json``, one entry per line, or a JSON
    array) whose ``jsonPayload`` is such a line. Other lines are skipped."""
    found: list[Checkpoint] = []
    for item in _json_items(lines):
        payload = item.get("jsonPayload", item) if isinstance(item, dict) else None
        if not isinstance(payload, dict) or payload.get("message") != LOG_KEY:
            continue
        chain, seq, head = payload.get("chain"), payload.get("seq"), payload.get("head")
        if isinstance(chain, str) and type(seq) is int and isinstance(head, str):
            found.append(Checkpoint(chain, seq, head, "log"))
    return found


def _json_items(lines: Iterable[str]) -> Iterable[Any]:
    text = "\n".join(line.rstrip("\n") for line in lines)
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None
    if isinstance(whole, list):
        yield from whole
        return
    for line in text.splitlines():
        try:
            yield json.loads(line)
        except ValueError:
            continue
