"""Delivery dedupe: one durable write per acknowledgement, nothing lost, nothing applied twice.

A delivery is the document ``webhook_deliveries/<provider>:<id>`` — scoped further by the
connection for per-connection hooks (``<provider>:<connection>:<id>``), because GitHub shares
one ``X-GitHub-Delivery`` between every hook subscribed to the same event. Its life:

1. :func:`claim` — one ``DocumentStore.create`` of the claim (``state: claimed``, a fresh
   ``owner`` token, ``claimed_at``). Created → this request owns the delivery. Already there →
   one read: a claim younger than :data:`PENDING_LEASE` (or one marked ``published`` by an
   earlier version) is a duplicate; an older one is taken over in a transaction (exactly one
   of concurrent redeliveries wins) and published again.
2. the caller parses and publishes, then answers. Nothing is written after the publish: the
   claim itself is the record. If parsing or publishing fails, :func:`release` deletes the
   claim (only if still its own, best effort), so the provider's retry is published.

What each case costs, and why it is safe: ``ingest`` is idempotent (records keep the newest
``observed_at``), so a second publish of one delivery is harmless while a lost one is not.

* first delivery: one create (the only write) and one publish;
* duplicate within the lease: a create that writes nothing and one read; answered
  ``duplicate``, not published;
* redelivery after the lease: that, plus a transaction (read, write) and a second publish,
  which ingest applies as a no-op — the provider redelivering an old event, or the recovery
  of a claim whose instance crashed between the create and the publish;
* failed publish: the create, then a transaction deleting the claim; the retry is a first
  delivery again (if the delete fails too, the retry after the lease recovers it);
* crash between create and publish, redelivered within the lease: answered ``duplicate`` and
  not yet published — recovered by the next redelivery after the lease (as before: a live
  claim cannot be told from a crashed one without a second write).

Deliveries are kept :data:`RETAIN` after the claim (``expires_at``); the native timestamp
``purge_at`` lets a Firestore TTL policy delete them (:mod:`shared.retention`).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from shared import retention
from shared.clock import isoformat
from shared.ports import Clock, DocumentStore, Transaction

COLLECTION = "webhook_deliveries"
PENDING_LEASE = timedelta(seconds=60)
RETAIN = timedelta(days=30)
_SAFE_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def normalize_id(raw: str | None, body: bytes) -> str:
    """A store-safe delivery id: the header as given when it is a plain token, else a hash of
    it; with no header at all, a hash of the body (a redelivery has the same bytes)."""
    if raw and _SAFE_ID.fullmatch(raw):
        return raw
    if raw:
        return "h-" + hashlib.sha256(raw.encode("utf-8", "replace")).hexdigest()[:48]
    return "body-" + hashlib.sha256(body).hexdigest()


def doc_id(provider: str, delivery: str, connection: str | None = None) -> str:
    return f"{provider}:{connection}:{delivery}" if connection else f"{provider}:{delivery}"


@dataclass(frozen=True)
class Claim:
    """This request owns the delivery: ``owner`` releases it, ``received_at`` is when keyway
    first received it (kept by a takeover, so a second publish carries the same arrival time
    and ingest, which versions by it, applies it as the no-op it is)."""

    owner: str
    received_at: str
    reclaimed: bool = False


def claim(store: DocumentStore, clock: Clock, key: str, fields: dict[str, Any]) -> Claim | None:
    """Claim delivery ``key``, or ``None`` if it is a duplicate."""
    now = isoformat(clock.now())
    owner = uuid.uuid4().hex
    expiry = clock.now() + RETAIN
    record = {**fields, "state": "claimed", "owner": owner, "claimed_at": now,
              "received_at": now, "expires_at": isoformat(expiry), **retention.purge_at(expiry)}
    if store.create(COLLECTION, key, record):
        return Claim(owner, now)
    stored = store.get(COLLECTION, key)
    if stored is not None and stored.get("owner") == owner:
        return Claim(owner, now)  # our own create, committed though its answer was lost
    lease_start = isoformat(clock.now() - PENDING_LEASE)
    if stored is not None and not _stale(stored, lease_start):
        return None
    return _take_over(store, key, record, lease_start)


def _take_over(store: DocumentStore, key: str, record: dict[str, Any],
               lease_start: str) -> Claim | None:
    """Replace a claim older than the lease (or one released meanwhile) — one winner."""
    def attempt(tx: Transaction) -> Claim | None:
        stored = tx.get(COLLECTION, key)
        if stored is not None and not _stale(stored, lease_start):
            return None
        first = str((stored or {}).get("received_at") or record["received_at"])
        tx.put(COLLECTION, key, {**record, "received_at": first, "reclaimed": True})
        return Claim(str(record["owner"]), first, reclaimed=stored is not None)

    return store.transaction(attempt)


def _stale(stored: dict[str, Any], lease_start: str) -> bool:
    """Older than the lease and not known published (``published``: an earlier version's
    second write; such a delivery stays a duplicate)."""
    return stored.get("state") != "published" and str(stored.get("claimed_at", "")) < lease_start


def release(store: DocumentStore, key: str, owner: str) -> None:
    """Forget a claim this request made and did not publish (nothing else is touched)."""
    def attempt(tx: Transaction) -> None:
        stored = tx.get(COLLECTION, key)
        if stored is not None and stored.get("owner") == owner \
                and stored.get("state") != "published":
            tx.delete(COLLECTION, key)

    store.transaction(attempt)
