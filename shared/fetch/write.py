"""Writing records a page at a time: one read, newer-wins decided in memory, one batch.

:func:`upsert_page` is :func:`shared.records.store.upsert` for many records with the same
rule — a record is written only when its ``updated_at`` is strictly newer than the stored
version (``deleted_at`` for a tombstone), and the fields keyway keeps about a record
(:data:`shared.records.store.KEPT`) survive — but with one
:meth:`~shared.ports.DocumentStore.get_many` per kind and one
:meth:`~shared.ports.DocumentStore.write_batch` per 500 records instead of a transaction per
record. Every write carries the version it was decided on as its precondition, so a record
written meanwhile by anyone else (a webhook's newer version, another sync) fails it; only
those are read again, decided again and retried, at most :data:`MAX_ATTEMPTS` times
(then ``ContentionError``, like a transaction that keeps losing races). Older data never
wins: a decision is applied only to the exact stored version it was made against.

The same record id twice in one page is written in turns (the second only if strictly
newer than the first), as consecutive upserts would.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from shared.errors import ContentionError, InvalidInput
from shared.ports import MAX_BATCH_WRITES, ConditionalWrite, Document, DocumentStore, Versioned
from shared.records.model import is_timestamp
from shared.records.store import KEPT, _check_record, _version

MAX_ATTEMPTS = 5
Key = tuple[str, str]  # (kind, record id)
Read = Mapping[Key, Versioned]


def decide(record: dict, stored: Document | None,
           seen_at: str | None = None) -> Document | None:
    """What :func:`shared.records.store.upsert` (with its ``seen_at``) would write over
    ``stored``, or None: a tombstone older than ``seen_at`` is cleared even by an older record,
    which keeps ``restored_at = seen_at`` as its version."""
    extra: dict[str, str] = {}
    if stored is not None and record["updated_at"] <= _version(stored):
        if not (stored.get("deleted") and seen_at is not None and seen_at > _version(stored)):
            return None
        extra = {"restored_at": seen_at}
    kept = {k: stored[k] for k in KEPT if stored is not None and k in stored}
    return {**record, **kept, **extra}


def read(store: DocumentStore, records: Iterable[dict | None]) -> dict[Key, Versioned]:
    """The stored versions of ``records`` (one ``get_many`` per kind)."""
    ids: dict[str, list[str]] = {}
    for record in records:
        if record is not None:
            kind, record_id, _ = _check_record(record)
            ids.setdefault(kind, []).append(record_id)
    found: dict[Key, Versioned] = {}
    for kind, wanted in ids.items():
        for start in range(0, len(wanted), MAX_BATCH_WRITES):
            answer = store.get_many(kind, wanted[start:start + MAX_BATCH_WRITES])
            found.update({(kind, doc_id): seen for doc_id, seen in answer.items()})
    return found


def is_newer(record: dict, known: Read) -> bool:
    """Whether ``record`` would be written over what ``known`` says is stored (a hint, as
    :func:`shared.records.store.is_newer`)."""
    seen = known.get((record["kind"], record["id"]))
    return decide(record, seen.data if seen else None) is not None


def upsert_page(store: DocumentStore, records: Iterable[dict | None], *,
                known: Read | None = None, seen_at: str | None = None) -> list[dict]:
    """Upsert ``records`` (``None`` items are skipped) by the rule above; the records written.

    ``known``: stored versions already read (:func:`read`); what they do not cover is read.
    ``seen_at``: when the provider was asked for the answer holding them (as
    :func:`shared.records.store.upsert`'s)."""
    if seen_at is not None and not is_timestamp(seen_at):
        raise InvalidInput("seen_at: expected a fixed-width UTC ISO timestamp")
    rounds: list[list[dict]] = []
    counts: dict[Key, int] = {}
    for record in records:
        if record is None:
            continue
        kind, record_id, _ = _check_record(record)
        turn = counts.get((kind, record_id), 0)
        counts[(kind, record_id)] = turn + 1
        if turn == len(rounds):
            rounds.append([])
        rounds[turn].append(record)
    written: list[dict] = []
    for turn, batch in enumerate(rounds):
        for start in range(0, len(batch), MAX_BATCH_WRITES):
            chunk = batch[start:start + MAX_BATCH_WRITES]
            written += _write(store, chunk, known if turn == 0 else None, seen_at)
    return written


def _write(store: DocumentStore, pending: list[dict], known: Read | None,
           seen_at: str | None) -> list[dict]:
    written: list[dict] = []
    for _ in range(MAX_ATTEMPTS):
        missing = [r for r in pending if known is None or (r["kind"], r["id"]) not in known]
        seen: dict[Key, Versioned] = {**(known or {}), **read(store, missing)}
        writes: dict[Key, tuple[dict, ConditionalWrite]] = {}
        for record in pending:
            key = (record["kind"], record["id"])
            data = decide(record, seen[key].data, seen_at)
            if data is not None:
                writes[key] = (record, ConditionalWrite(*key, data, seen[key].version))
        failed = {(w.collection, w.doc_id)
                  for w in store.write_batch([write for _, write in writes.values()])}
        written += [record for key, (record, _) in writes.items() if key not in failed]
        pending, known = [r for r in pending if (r["kind"], r["id"]) in failed], None
        if not pending:
            return written
    raise ContentionError(f"a page of records lost {MAX_ATTEMPTS} races")
