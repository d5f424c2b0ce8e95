"""Writing normalized records: idempotent, ordered by ``updated_at``, deletions as tombstones.

A record lives in the business store's collection named by its kind, under its record id.
Each write is one transaction that reads the stored version, compares, then writes (reads
before writes, so it is valid on Firestore too). The rules:

* ``upsert`` writes only when the record's ``updated_at`` is strictly newer than the stored
  version. The same record twice, a redelivered webhook or an overlapping sync page: the second
  call returns ``False`` and writes nothing. An older event arriving late changes nothing.
* ``mark_deleted`` keeps the document as a tombstone (``deleted: True``, ``deleted_at``, and
  ``deleted_reason``, one of :data:`REASONS`) and the tombstone's version is ``deleted_at``: an
  upsert older than (or as old as) the deletion does not resurrect it; a strictly newer one is
  written, which restores the record and clears the tombstone's fields (the provider says it
  exists again after the deletion, and the provider is the truth). A deletion older than (or
  as old as) the stored version changes nothing, so a late delete event never removes a record
  the provider re-created or edited after it.
* ``mark_thread_deleted`` tombstones a pull request or an issue with the comments and reviews
  under it; ``mark_repository_gone`` a repository and every record under it, with one reason
  (the repository was deleted, transferred away, or left the connection's reach).
* Fields keyway keeps about a record rather than the provider's (:data:`KEPT`: a repository's
  ``fresh_as_of``, :mod:`shared.freshness`) survive a newer version of the record.
* Versions are fixed-width UTC ISO strings (:func:`shared.clock.isoformat`), so comparing the
  strings compares the times.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shared.errors import InvalidInput
from shared.ports import Document, DocumentStore, Filter, Transaction
from shared.records.model import KINDS, REPO_SCOPED, is_timestamp, parse_record_id

KEPT = ("fresh_as_of",)
#: Why a record is a tombstone: the provider deleted it; it moved to an owner outside the
#: connection (a transferred issue or repository); the connection can no longer read it (a
#: repository removed from a GitHub App installation, access revoked).
REASONS = ("deleted", "transferred", "access_lost")
REPO_SCOPED_KINDS = tuple(kind for kind in KINDS if kind in REPO_SCOPED)


def _version(stored: Document) -> str:
    """The version a stored document is compared with: ``deleted_at`` for a tombstone, else
    the later of ``updated_at`` and ``restored_at`` (when a sighting cleared a tombstone)."""
    if stored.get("deleted"):
        value = stored.get("deleted_at")
        return value if isinstance(value, str) else ""
    found = [v for v in (stored.get("updated_at"), stored.get("restored_at"))
             if isinstance(v, str)]
    return max(found, default="")


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


def upsert(store: DocumentStore, record: dict, seen_at: str | None = None) -> bool:
    """Write ``record`` unless the stored one is as new or newer; ``True`` if written.

    ``seen_at``: when the provider was asked (the request's send time) for the answer that
    held ``record``. A tombstone older than that is cleared even when the record's own
    ``updated_at`` is older than the deletion (a repository back within reach, a record the
    provider restored unchanged): the provider said it exists after the deletion. The restored
    record keeps ``restored_at = seen_at`` as its version, so a delete event from before the
    sighting cannot remove it again."""
    kind, record_id, version = _check_record(record)
    if seen_at is not None and not is_timestamp(seen_at):
        raise InvalidInput("seen_at: expected a fixed-width UTC ISO timestamp")

    def attempt(tx: Transaction) -> bool:
        stored = tx.get(kind, record_id)
        extra: dict[str, Any] = {}
        if stored is not None and version <= _version(stored):
            if not (stored.get("deleted") and seen_at is not None
                    and seen_at > _version(stored)):
                return False
            extra = {"restored_at": seen_at}
        kept = {k: stored[k] for k in KEPT if stored is not None and k in stored}
        tx.put(kind, record_id, {**record, **kept, **extra})
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


def _tombstone(stored: Document | None, kind: str, record_id: str, deleted_at: str,
               reason: str, connection: str | None) -> Document:
    if stored is None:  # deleted before we ever saw it: remember, so a late create is refused
        tenant, provider, _, _ = parse_record_id(record_id)
        stored = {"id": record_id, "kind": kind, "tenant": tenant, "provider": provider,
                  "updated_at": deleted_at}
        if connection is not None:  # whose retention purge removes it (shared.scheduler.purge)
            stored["connection"] = connection
    return {**stored, "deleted": True, "deleted_at": deleted_at, "deleted_reason": reason}


def mark_deleted(store: DocumentStore, kind: str, record_id: str, deleted_at: str,
                 reason: str = "deleted", connection: str | None = None) -> bool:
    """Tombstone a record as of ``deleted_at`` for ``reason`` (:data:`REASONS`); ``False`` if
    the stored version is as new. A record never stored becomes a placeholder tombstone
    carrying ``connection``, the one that heard of the deletion."""
    _check_target(kind, record_id)
    if not is_timestamp(deleted_at):
        raise InvalidInput("deleted_at: expected a fixed-width UTC ISO timestamp")
    if reason not in REASONS:
        raise InvalidInput(f"deleted_reason: must be one of {list(REASONS)}")

    def attempt(tx: Transaction) -> bool:
        stored = tx.get(kind, record_id)
        if stored is not None and deleted_at <= _version(stored):
            return False
        tx.put(kind, record_id, _tombstone(stored, kind, record_id, deleted_at, reason,
                                           connection))
        return True

    return store.transaction(attempt)


#: The records that live under a pull request or an issue, and the field naming it.
CHILDREN = {"pull_requests": (("comments", "parent"), ("reviews", "pull_request")),
            "issues": (("comments", "parent"),)}


def mark_thread_deleted(store: DocumentStore, kind: str, record_id: str, deleted_at: str,
                        reason: str = "deleted", connection: str | None = None) -> int:
    """Tombstone a record and, for a pull request or an issue, the comments and reviews
    under it (the provider deletes them with it), each by :func:`mark_deleted`'s rule. Nothing
    is done when the stored record is newer than the deletion; the children go first, so a
    crash half-way is finished by the next attempt. Returns how many tombstones were written."""
    stored = store.get(kind, record_id)
    if stored is not None and not stored.get("deleted") and deleted_at <= _version(stored):
        return 0
    count = 0
    for child, field in CHILDREN.get(kind, ()):
        for snap in store.query(child, [Filter(field, "==", record_id),
                                        Filter("deleted", "==", False)]):
            count += mark_deleted(store, child, snap.id, deleted_at, reason)
    return count + mark_deleted(store, kind, record_id, deleted_at, reason, connection)


def mark_repository_gone(store: DocumentStore, repository: str, deleted_at: str,
                         reason: str, connection: str | None = None) -> int:
    """Tombstone repository record ``repository`` and every live record under it (pull
    requests, issues, comments, reviews, labels) as of ``deleted_at`` for ``reason``; each
    write follows :func:`mark_deleted`'s rule. Returns how many records became tombstones."""
    count = 0
    for kind in REPO_SCOPED_KINDS:
        for snap in store.query(kind, [Filter("repository", "==", repository),
                                       Filter("deleted", "==", False)]):
            count += mark_deleted(store, kind, snap.id, deleted_at, reason)
    return count + mark_deleted(store, "repositories", repository, deleted_at, reason,
                                connection)
