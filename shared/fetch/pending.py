"""Children a sync could not read, kept until a later sync reads them
(``sync_pending/<connection>:<repository>:<child>``).

When the provider refuses a child list permanently (:func:`shared.fetch.errors.
unavailable_reason`), the parents are still written and the parents whose children are missing
are remembered here, per repository and child: each parent's kind, number, path parameters,
GraphQL node id and reason; when the child was first seen missing there, and in which sync
round it last failed.
Their list will not offer them again (it answers ``304`` until they change), so the next sync
of the repository reads the children of exactly these parents first — one GraphQL query per
100 parents, or one REST list per parent — before walking its lists; what it reads is taken
off, and the document is deleted once empty. A retry is not repeated within the round that
recorded the failure (a continuation does not pay for it twice).

A document holds at most :data:`MAX_PARENTS` parents; further ones are only counted
(``dropped``): they are read again when they change, and until then the status counts them as
missing (a document with dropped parents stays).
:func:`summary` is what ``sync_status.missing`` shows (:mod:`shared.fetch.status`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shared.fetch.cursor import cursor_id
from shared.fetch.plan import Parent
from shared.ports import DocumentStore, Filter

COLLECTION = "sync_pending"
MAX_PARENTS = 1000

Failed = tuple[str | None, Parent, str]  # (GraphQL node id or None, parent, reason)


def _entry(node_id: str | None, parent: Parent, reason: str) -> dict[str, Any]:
    return {"kind": parent.kind, "number": parent.number,
            "path_params": dict(parent.path_params), "node_id": node_id, "reason": reason}


def parents_of(doc: dict[str, Any]) -> list[tuple[str | None, Parent]]:
    """The remembered parents of one document, as ``(node id, Parent)``."""
    return [(e.get("node_id"), Parent(e["kind"], int(e["number"]), dict(e["path_params"])))
            for e in doc.get("parents") or []]


class PendingBook:
    """The pending documents of one connection, as one sync run reads and settles them."""

    def __init__(self, store: DocumentStore, connection: str, round_: str | None,
                 now: str) -> None:
        self._store, self._connection, self._round, self._now = store, connection, round_, now
        self._docs: dict[str, dict[str, Any] | None] = {}

    def get(self, repository: str, child: str) -> dict[str, Any] | None:
        doc_id = cursor_id(self._connection, repository, child)
        if doc_id not in self._docs:
            self._docs[doc_id] = self._store.get(COLLECTION, doc_id)
        return self._docs[doc_id]

    def due(self, repository: str, child: str) -> dict[str, Any] | None:
        """The document to retry now: one that did not fail in this round."""
        doc = self.get(repository, child)
        return doc if doc is not None and doc.get("round") != self._round else None

    def settle(self, repository: str, child: str, read: Iterable[Parent],
               failed: list[Failed]) -> None:
        """``read``: parents whose children were just read (taken off); ``failed``: parents
        whose children the provider refused (added, or their reason updated)."""
        doc = self.get(repository, child)
        numbers = {p.number for p in read}
        if doc is None and not failed:
            return
        doc = dict(doc or {"connection": self._connection, "repository": repository,
                           "child": child, "first_seen": self._now, "parents": [],
                           "dropped": 0, "attempts": 0})
        kept = {e["number"]: e for e in doc["parents"] if e["number"] not in numbers}
        if not failed and len(kept) == len(doc["parents"]):
            return
        for node_id, parent, reason in failed:
            if parent.number in kept or len(kept) < MAX_PARENTS:
                kept[parent.number] = _entry(node_id, parent, reason)
            else:
                doc["dropped"] += 1
        if failed:
            doc.update(reason=failed[-1][2], last_seen=self._now, round=self._round,
                       attempts=int(doc.get("attempts") or 0) + 1)
        doc["parents"] = list(kept.values())
        self._save(cursor_id(self._connection, repository, child), doc)

    def keep_only(self, repositories: set[str]) -> None:
        """Forget what is missing in repositories that are gone (deleted or no longer
        reachable with this connection)."""
        for snap in self._store.query(COLLECTION, [Filter("connection", "==", self._connection)]):
            if snap.data.get("repository") not in repositories:
                self._store.delete(COLLECTION, snap.id)
                self._docs[snap.id] = None

    def _save(self, doc_id: str, doc: dict[str, Any]) -> None:
        if doc["parents"] or doc["dropped"]:
            self._store.put(COLLECTION, doc_id, doc)
            self._docs[doc_id] = doc
        else:
            self._store.delete(COLLECTION, doc_id)
            self._docs[doc_id] = None


def summary(store: DocumentStore, connection: str) -> list[dict[str, Any]]:
    """What is missing, per child and reason: ``reason`` (``<child>.unavailable: <why>``),
    ``child``, ``parents`` (how many parents lack it), ``repositories``, ``first_seen``."""
    found: dict[str, dict[str, Any]] = {}
    for snap in store.query(COLLECTION, [Filter("connection", "==", connection)]):
        doc, child = snap.data, str(snap.data.get("child"))
        whys = [str(e.get("reason") or doc.get("reason")) for e in doc.get("parents") or []]
        whys += [str(doc.get("reason"))] * int(doc.get("dropped") or 0)
        for why in sorted(set(whys)):
            reason = f"{child}.unavailable: {why}"
            entry = found.setdefault(reason, {
                "child": child, "reason": reason, "parents": 0, "repositories": 0,
                "first_seen": doc.get("first_seen")})
            entry["parents"] += whys.count(why)
            entry["repositories"] += 1
            seen = [t for t in (entry["first_seen"], doc.get("first_seen")) if t]
            entry["first_seen"] = min(seen) if seen else None
    return [found[k] for k in sorted(found)]
