"""Data migrations an operator runs once after an upgrade (``keyway migrate …``).

``actions`` — action documents were once stored as ``actions/<action_id>``; they are now keyed
per tenant, ``actions/<doc_id(tenant, action_id)>`` (:func:`shared.actions.model.doc_id`), and
every reader looks only there, so a document under its old id is no longer found. This step
moves each one to its new id:

* an old id is one without ``:`` (every new id has one between its two escaped parts, and an
  old id was an action id, ``A-Za-z0-9_-`` only);
* each move is one transaction: read the old document and the new id, write the new one,
  delete the old — so an interrupted run leaves every document in exactly one place, and a
  second run has nothing left to do (idempotent);
* a document with no tenant (``actions.no_tenant``), an old id that is not an action id
  (``actions.not_an_action_id``) or a new id already holding a different document
  (``actions.id_taken``: an action of the same id created in that tenant since the upgrade) is
  reported and left exactly as it is — never guessed.

The collection is read once, whole (one query, no paging): a one-off operator step.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.actions import model
from shared.ports import DocumentStore, Transaction

MOVED = "actions.moved"
GONE = "actions.already_moved"
NO_TENANT = "actions.no_tenant"
NOT_AN_ACTION_ID = "actions.not_an_action_id"
ID_TAKEN = "actions.id_taken"
LEFT = (NO_TENANT, NOT_AN_ACTION_ID, ID_TAKEN)  # outcomes an operator has to look at


@dataclass(frozen=True)
class Outcome:
    old_id: str
    result: str  # one of the stable keys above
    new_id: str | None = None


def legacy_ids(store: DocumentStore) -> list[str]:
    """Ids of action documents still under their old, tenant-less id."""
    return [snap.id for snap in store.query(model.COLLECTION) if ":" not in snap.id]


def move(store: DocumentStore, old_id: str) -> Outcome:
    """Move one old document to its per-tenant id, in one transaction (see module doc)."""
    def run(tx: Transaction) -> Outcome:
        doc = tx.get(model.COLLECTION, old_id)
        if doc is None:
            return Outcome(old_id, GONE)
        tenant = doc.get("tenant")
        if not isinstance(tenant, str) or not tenant:
            return Outcome(old_id, NO_TENANT)
        if not model.is_action_id(old_id):
            return Outcome(old_id, NOT_AN_ACTION_ID)
        new_id = model.doc_id(tenant, old_id)
        current = tx.get(model.COLLECTION, new_id)
        if current is not None and current != doc:
            return Outcome(old_id, ID_TAKEN, new_id)
        if current is None:
            tx.put(model.COLLECTION, new_id, doc)
        tx.delete(model.COLLECTION, old_id)
        return Outcome(old_id, MOVED, new_id)

    return store.transaction(run)


def migrate_actions(store: DocumentStore) -> list[Outcome]:
    """Move every old action document; one :class:`Outcome` per old id found."""
    return [move(store, old_id) for old_id in legacy_ids(store)]
