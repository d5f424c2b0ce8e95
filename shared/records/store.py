"""Writing normalized records: idempotent, ordered by ``updated_at``, deletions as tombstones.

A record lives in the business store's collection named by its kind, under its record id.
Each write is one transaction that reads the stored version, compares, then writes (reads
before writes, so it is valid on Firestore too). The rules:

* ``upsert`` writes only when the record's ``updated_at`` is strictly newer than the stored
  version. The same record twice, a redelivered webhook or an overlapping sync page: the second
  call returns ``False`` and writes nothing. An older event arriving late changes nothing.
* ``mark_deleted`` keeps the document as a tombstone (``deleted: True``, ``deleted_at``) and
  the tombstone's version is ``deleted_at``: an upsert older than (or as old as) the deletion
  does not resurrect it; a strictly newer one is written, which restores the record (the
  provider says it exists again after the deletion, and the provider is the truth).
* Fields keyway keeps about a record rather than the provider's (:data:`KEPT`: a repository's
  ``fresh_as_of``, :mod:`shared.freshness`) survive a newer version of the record.
* Versions are fixed-width UTC ISO strings (:func:`shared.clock.isoformat`), so comparing the
  strings compares the times.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shared.errors import InvalidInput
from shared.ports import Document, DocumentStore, Transaction
from shared.records.model import KINDS, is_timestamp, parse_record_id

KEPT = ("fresh_as_of",)


def _version(stored: Document) -> str:
    """The version a stored document is compared with: ``deleted_at`` for a tombstone."""
    value = stored.get("deleted_at") if stored.get("deleted") else stored.get("updated_at")
    return value if isinstance(value, str) else ""


def _check_target(kind: Any, record_id: Any) -> None:
    if kind not in KINDS:
        raise InvalidInput(f"kind: unknown kind {kind!r}")
    if not isinstance(record_id, str) or not record_id:
        raise InvalidInput("id: a record needs a non-empty string id")


def _check_record(record: Any) -> tuple[str, str, str]:
    if not isinstance(record, dict):
        raise InvalidInput("record: expected a dict")
    _check_target(record.get("kind"), record.get("id"))
    if not is_timestamp(record.get("updated_at")):
        raise InvalidInput("updated_at: a record needs a fixed-width UTC ISO updated_at")
    if record.get("deleted") or "deleted_at" in record:
        raise InvalidInput("deleted: use mark_deleted to delete a record")
    return record["kind"], record["id"], record["updated_at"]


def upsert(store: DocumentStore, record: dict) -> bool:
    """Write ``record`` unless the stored one is as new or newer; ``True`` if written."""
    kind, record_id, version = _check_record(record)

    def attempt(tx: Transaction) -> bool:
        stored = tx.get(kind, record_id)
        if stored is not None and version <= _version(stored):
            return False
        kept = {k: stored[k] for k in KEPT if stored is not None and k in stored}
        tx.put(kind, record_id, {**record, **kept})
        return True

    return store.transaction(attempt)


def is_newer(store: DocumentStore, record: dict) -> bool:
    """Whether :func:`upsert` would write ``record`` now: a plain read, no transaction, so only
    a hint (the fetcher uses it to fetch an item's children before writing the item)."""
    kind, record_id, version = _check_record(record)
    stored = store.get(kind, record_id)
    return stored is None or version > _version(stored)


def upsert_many(store: DocumentStore, records: Iterable[dict | None]) -> int:
    """Upsert each record (``None`` items — skipped payloads — are ignored); count written."""
    return sum(upsert(store, record) for record in records if record is not None)


def _tombstone(stored: Document | None, kind: str, record_id: str, deleted_at: str) -> Document:
    if stored is None:  # deleted before we ever saw it: remember, so a late create is refused
        tenant, provider, _, _ = parse_record_id(record_id)
        stored = {"id": record_id, "kind": kind, "tenant": tenant, "provider": provider,
                  "updated_at": deleted_at}
    return {**stored, "deleted": True, "deleted_at": deleted_at}


def mark_deleted(store: DocumentStore, kind: str, record_id: str, deleted_at: str) -> bool:
    """Tombstone a record as of ``deleted_at``; ``False`` if the stored version is as new."""
    _check_target(kind, record_id)
    if not is_timestamp(deleted_at):
        raise InvalidInput("deleted_at: expected a fixed-width UTC ISO timestamp")

    def attempt(tx: Transaction) -> bool:
        stored = tx.get(kind, record_id)
        if stored is not None and deleted_at <= _version(stored):
            return False
        tx.put(kind, record_id, _tombstone(stored, kind, record_id, deleted_at))
        return True

    return store.transaction(attempt)
