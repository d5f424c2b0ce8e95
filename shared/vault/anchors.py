"""Generation anchors: each vault record's generation, kept outside the vault database.

Every write of a vault record's token fields gives it a new generation, bound into each field's
associated data (:mod:`shared.crypto.fields`), so an older ciphertext of a field put back into
a newer record fails to decrypt. What that cannot catch is a whole record restored from an
older copy — every field and the generation together. So ``vault-P`` also writes the record's
generation (no secret) to the business store::

    vault_generations/<collection>:<record id>
        tenant, provider, collection, record_id, generation, updated_at

and refuses a record whose generation is below it (:meth:`RecordCodec.decode
<shared.vault.records.RecordCodec.decode>`'s ``floor``). Someone who can write the vault
database but not the business database cannot roll the anchor back, and the reverse.

Order: the vault record is written first, the anchor after, and a record is accepted at any
generation >= the anchor, so a crash (or a business-store outage) between the two writes never
bricks a record: the anchor lags until the next successful read of the record raises it
(:meth:`GenerationAnchors.advance` only ever raises it). Deleting a record (disconnect) raises
the anchor one past the record's last generation, so a restored copy of a deleted record is
refused too.
"""

from __future__ import annotations

from typing import Any

from shared.clock import isoformat
from shared.errors import KeywayError
from shared.log import get_logger
from shared.ports import Clock, DocumentStore

COLLECTION = "vault_generations"
log = get_logger("keyway.vault")


def anchor_id(collection: str, record_id: str) -> str:
    """The anchor's id: the vault record's collection and id (the collection has no ``:``)."""
    return f"{collection}:{record_id}"


class GenerationAnchors:
    """Reads and raises the anchors of one provider's vault records."""

    def __init__(self, provider: str, store: DocumentStore, clock: Clock) -> None:
        self._provider, self._store, self._clock = provider, store, clock

    def floor(self, collection: str, record_id: str) -> int:
        """The lowest generation the record may have (0: no anchor yet). A store outage
        raises (retryable): without the anchor nothing is released."""
        doc = self._store.get(COLLECTION, anchor_id(collection, record_id))
        return int(doc.get("generation") or 0) if doc else 0

    def advance(self, collection: str, record_id: str, tenant: str, generation: int) -> None:
        """Raise the anchor to ``generation`` (never lower it). A failure is logged
        (``vault.anchor_lagging``) and not raised: the record is already written and usable,
        and its next read raises the anchor."""
        try:
            self._store.transaction(
                lambda tx: self._raise(tx, collection, record_id, tenant, generation))
        except KeywayError as e:
            log.warning("vault.anchor_lagging", extra={"fields": {
                "collection": collection, "record_id": record_id, "reason": e.key}})

    def _raise(self, tx: Any, collection: str, record_id: str, tenant: str,
               generation: int) -> None:
        key = anchor_id(collection, record_id)
        current = tx.get(COLLECTION, key)
        if current is not None and int(current.get("generation") or 0) >= generation:
            return
        tx.put(COLLECTION, key, {
            "tenant": tenant, "provider": self._provider, "collection": collection,
            "record_id": record_id, "generation": generation,
            "updated_at": isoformat(self._clock.now())})
