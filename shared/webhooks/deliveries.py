"""Delivery dedupe: each delivery id is published once, recorded in the business store.

A delivery is the document ``webhook_deliveries/<provider>:<id>`` — scoped further by the
connection for per-connection hooks (``<provider>:<connection>:<id>``), because GitHub shares
one ``X-GitHub-Delivery`` between every hook subscribed to the same event. Its life:

1. :func:`claim` — in one transaction: absent (or a stale claim) → written ``pending`` with a
   fresh owner token; ``published`` or a live ``pending`` claim → a duplicate.
2. the caller parses and publishes, then :func:`mark_published`; if parsing or publishing
   fails, :func:`release` deletes the claim (only if still its own), so a rejected request
   stores nothing and a provider retry after a failed publish is published, not dropped.

A claim left ``pending`` by a crashed instance is taken over after :data:`PENDING_LEASE`.
Deliveries are kept :data:`RETAIN` after the claim (``expires_at``); the native timestamp
``purge_at`` lets a Firestore TTL policy delete them (:mod:`shared.retention`).
"""

from __future__ import annotations

import hashlib
import re
import uuid
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


def claim(store: DocumentStore, clock: Clock, key: str, fields: dict[str, Any]) -> str | None:
    """Claim delivery ``key``: the owner token, or ``None`` if it is a duplicate."""
    now = clock.now()
    owner = uuid.uuid4().hex

    def attempt(tx: Transaction) -> str | None:
        stored = tx.get(COLLECTION, key)
        if stored is not None and not _stale(stored, isoformat(now - PENDING_LEASE)):
            return None
        tx.put(COLLECTION, key, {**fields, "state": "pending", "owner": owner,
                                 "claimed_at": isoformat(now),
                                 "expires_at": isoformat(now + RETAIN),
                                 **retention.purge_at(now + RETAIN)})
        return owner

    return store.transaction(attempt)


def _stale(stored: dict[str, Any], lease_start: str) -> bool:
    return stored.get("state") == "pending" and str(stored.get("claimed_at", "")) < lease_start


def mark_published(store: DocumentStore, clock: Clock, key: str, owner: str,
                   message_id: str) -> None:
    def attempt(tx: Transaction) -> None:
        stored = tx.get(COLLECTION, key)
        if stored is not None and stored.get("owner") == owner:
            tx.put(COLLECTION, key, {**stored, "state": "published", "message_id": message_id,
                                     "published_at": isoformat(clock.now())})

    store.transaction(attempt)


def release(store: DocumentStore, key: str, owner: str) -> None:
    """Forget a claim this request made and did not publish (nothing else is touched)."""
    def attempt(tx: Transaction) -> None:
        stored = tx.get(COLLECTION, key)
        if stored is not None and stored.get("owner") == owner \
                and stored.get("state") == "pending":
            tx.delete(COLLECTION, key)

    store.transaction(attempt)
