"""Storing a vault record (a connect, an identity link, an installation) at its next generation.

The record's fields are made for generation *g* before the transaction (encryption may reserve
data-key uses in a transaction of its own); the transaction writes them only if the record is
still as it was read, else the store starts over (at most ``STORE_ATTEMPTS`` times). *g* is
past both the record's own generation and its anchor's, so a record deleted and stored again
never goes back. The anchor is raised after the write (:mod:`shared.vault.anchors`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from shared.clock import isoformat
from shared.errors import Conflict, UnavailableError
from shared.ports import Ports
from shared.vault.anchors import GenerationAnchors
from shared.vault.records import RecordCodec

STORE_ATTEMPTS = 5  # a store retries while the record changes under it (a refresh, a rewrite)


def store_record(ports: Ports, codec: RecordCodec, anchors: GenerationAnchors,
                 collection: str, record_id: str, tenant: str,
                 make: Callable[[int], dict[str, Any]]) -> int:
    """Write ``make(generation)`` as the record, active, at its next generation; returns it."""
    floor = anchors.floor(collection, record_id)
    for _ in range(STORE_ATTEMPTS):
        seen = ports.vault.get(collection, record_id) or {}
        generation = codec.next_generation(seen, floor)
        doc = dict(make(generation), generation=generation, status="active",
                   status_reason=None, refresh_lease=None,
                   updated_at=isoformat(ports.clock.now()))
        if ports.vault.transaction(functools.partial(
                _write_unless_changed, collection=collection, record_id=record_id,
                tenant=tenant, seen_generation=seen.get("generation"), doc=doc)):
            break
    else:
        raise UnavailableError("the vault record kept changing while it was stored")
    anchors.advance(collection, record_id, tenant, generation)
    return generation


def _write_unless_changed(tx: Any, collection: str, record_id: str, tenant: str,
                          seen_generation: Any, doc: dict[str, Any]) -> bool:
    """Put ``doc`` unless the record was written since it was read (``False``: start over)."""
    current = tx.get(collection, record_id) or {}
    if current and current.get("tenant") != tenant:
        raise Conflict("record id already belongs to another tenant")
    if current.get("generation") != seen_generation:
        return False
    tx.put(collection, record_id, doc)
    return True
