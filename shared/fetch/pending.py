"""Children a sync could not read, kept until a later sync reads them
(``sync_pending/<connection>:<repository>:<child>#<bucket>``).

When the provider refuses a child list permanently (:func:`shared.fetch.errors.
unavailable_reason`), the parents are still written and the parents whose children are missing
are remembered here, per repository and child: each parent's kind, number, path parameters,
GraphQL node id and reason; when its document first saw a parent missing, and in which sync
round it last recorded a failure. The parents' list will not offer them again (it answers
``304`` until they change), so the next sync of the repository reads the children of exactly
these parents first — one GraphQL query per 100 parents, or one REST list per parent —
before walking its lists; what it reads is taken off, and a document is deleted once empty.
A retry is not repeated within the round that recorded the failure (a continuation does not
pay for it twice), and a document refused again backs off: the sync after the first failure
retries it, then at most every :data:`BACKOFF` doubled per further failed round, up to
:data:`MAX_BACKOFF` — a part that stays forbidden does not spend a request per parent on
every sync.

Bounded: parent number ``n`` lives in bucket ``n // BUCKET``, so a document never holds more
than :data:`BUCKET` parents however many are missing, and nothing is ever dropped. A run reads
the connection's documents once (one query); :func:`summary` is what ``sync_status.missing``
shows (:mod:`shared.fetch.status`), together with a connection whose provider refused its
GraphQL documents and that reads those children over REST instead (:mod:`shared.fetch.groups`:
``graphql.unavailable: <why>``, no parent missing), and the repositories whose list totals the
provider refuses (:mod:`shared.fetch.reconcile_totals`: ``totals.unavailable: <why>``, no
parent missing: deletions there are found only by the full sweep).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from shared.clock import parse_iso
from shared.fetch.cursor import cursor_id
from shared.fetch.plan import Parent
from shared.fetch.reconcile_state import COLLECTION as RECONCILE_STATE
from shared.fetch.reconcile_state import TOTALS_REFUSED
from shared.ports import DocumentStore, Filter

COLLECTION = "sync_pending"
GRAPHQL_FALLBACK = "graphql_unavailable"  # on the connection document (shared.fetch.groups)
BUCKET = 500  # parents per document at most (numbers n // BUCKET share one)
BACKOFF, MAX_BACKOFF = timedelta(hours=1), timedelta(hours=24)

Failed = tuple[str | None, Parent, str]  # (GraphQL node id or None, parent, reason)


def parents_of(doc: dict[str, Any]) -> list[tuple[str | None, Parent]]:
    """The remembered parents of one document, as ``(node id, Parent)``, by number."""
    entries = sorted((doc.get("parents") or {}).values(), key=lambda e: int(e["number"]))
    return [(e.get("node_id"), Parent(e["kind"], int(e["number"]), dict(e["path_params"])))
            for e in entries]


def _query(store: DocumentStore, connection: str) -> list:
    return store.query(COLLECTION, [Filter("connection", "==", connection)])


class PendingBook:
    """The pending documents of one connection, as one sync run reads and settles them."""

    def __init__(self, store: DocumentStore, connection: str, round_: str | None,
                 now: str) -> None:
        self._store, self._connection, self._round, self._now = store, connection, round_, now
        self._docs = {snap.id: snap.data for snap in _query(store, connection)}

    def due(self, repository: str, child: str) -> list[tuple[str | None, Parent]]:
        """The parents to read again now: those of documents that failed neither in this
        round nor too recently (see the module docstring)."""
        return [found for doc_id in sorted(self._docs)
                if self._docs[doc_id]["repository"] == repository
                and self._docs[doc_id]["child"] == child and self._due(self._docs[doc_id])
                for found in parents_of(self._docs[doc_id])]

    def remembered(self, repository: str) -> set[tuple[str, int]]:
        """``(kind, number)`` of every parent of ``repository`` whose children are missing."""
        return {(parent.kind, parent.number) for doc in self._docs.values()
                if doc["repository"] == repository for _, parent in parents_of(doc)}

    def _due(self, doc: dict[str, Any]) -> bool:
        failures = int(doc.get("failures") or 1)
        if doc.get("round") == self._round:
            return False
        if failures <= 1 or not doc.get("last_seen"):
            return True
        wait = min(BACKOFF * 2 ** (failures - 2), MAX_BACKOFF)
        return parse_iso(self._now) >= parse_iso(doc["last_seen"]) + wait

    def settle(self, repository: str, child: str, read: Iterable[Parent],
               failed: list[Failed]) -> None:
        """``read``: parents whose children were just read (taken off); ``failed``: parents
        whose children the provider refused (added, or their reason updated)."""
        touched: dict[str, dict[str, Any]] = {}

        def doc_of(number: int, create: bool) -> dict[str, Any] | None:
            doc_id = cursor_id(self._connection, repository, f"{child}#{number // BUCKET}")
            if doc_id not in touched:
                doc = self._docs.get(doc_id)
                if doc is None and not create:
                    return None
                touched[doc_id] = {**(doc or {
                    "connection": self._connection, "repository": repository, "child": child,
                    "first_seen": self._now}), "parents": dict((doc or {}).get("parents", {}))}
            return touched[doc_id]

        for parent in read:
            doc = doc_of(parent.number, False)
            if doc is not None:
                doc["parents"].pop(str(parent.number), None)
        for node_id, parent, reason in failed:
            doc = doc_of(parent.number, True)
            assert doc is not None
            doc["parents"][str(parent.number)] = {
                "kind": parent.kind, "number": parent.number, "node_id": node_id,
                "path_params": dict(parent.path_params), "reason": reason}
            if doc.get("round") != self._round:  # one more round that failed
                doc["failures"] = int(doc.get("failures") or 0) + 1
            doc.update(last_seen=self._now, round=self._round)
        for doc_id, doc in touched.items():
            before = self._docs.get(doc_id) or {}
            if doc["parents"] == before.get("parents") and doc.get("round") == before.get(
                    "round"):
                continue  # nothing read from it, no new failure in another round
            self._save(doc_id, doc)

    def keep_only(self, repositories: set[str]) -> None:
        """Forget what is missing in repositories that are gone (deleted or no longer
        reachable with this connection)."""
        for doc_id, doc in list(self._docs.items()):
            if doc["repository"] not in repositories:
                self._store.delete(COLLECTION, doc_id)
                del self._docs[doc_id]

    def _save(self, doc_id: str, doc: dict[str, Any]) -> None:
        if doc["parents"]:
            self._store.put(COLLECTION, doc_id, doc)
            self._docs[doc_id] = doc
        else:
            self._store.delete(COLLECTION, doc_id)
            self._docs.pop(doc_id, None)


def summary(store: DocumentStore, connection: str) -> list[dict[str, Any]]:
    """What is missing, per child and reason: ``reason`` (``<child>.unavailable: <why>``),
    ``child``, ``parents`` (how many parents lack it), ``repositories``, ``first_seen``."""
    found: dict[str, dict[str, Any]] = {}
    where: dict[str, set[str]] = {}
    for snap in _query(store, connection):
        doc, child = snap.data, str(snap.data.get("child"))
        for entry in (doc.get("parents") or {}).values():
            reason = f"{child}.unavailable: {entry.get('reason')}"
            shown = found.setdefault(reason, {"child": child, "reason": reason, "parents": 0,
                                              "repositories": 0, "first_seen": None})
            shown["parents"] += 1
            where.setdefault(reason, set()).add(str(doc.get("repository")))
            seen = [t for t in (shown["first_seen"], doc.get("first_seen")) if t]
            shown["first_seen"] = min(seen) if seen else None
    for reason, where_ in where.items():
        found[reason]["repositories"] = len(where_)
    for snap in store.query(RECONCILE_STATE, [Filter("connection", "==", connection),
                                              Filter(TOTALS_REFUSED, "==", True)]):
        repository = store.get("repositories", snap.id)
        if repository is None or repository.get("deleted"):
            continue  # gone or out of reach: nothing left there to count
        reason = f"totals.unavailable: {snap.data.get(f'{TOTALS_REFUSED}_reason')}"
        shown = found.setdefault(reason, {"child": "totals", "reason": reason, "parents": 0,
                                          "repositories": 0, "first_seen": None})
        shown["repositories"] += 1
        seen = [t for t in (shown["first_seen"], snap.data.get(f"{TOTALS_REFUSED}_since")) if t]
        shown["first_seen"] = min(seen) if seen else None
    fallback = (store.get("connections", connection) or {}).get(GRAPHQL_FALLBACK)
    if isinstance(fallback, dict):  # complete over REST, but one request per parent
        reason = f"graphql.unavailable: {fallback.get('reason')}"
        found[reason] = {"child": "graphql", "reason": reason, "parents": 0,
                         "repositories": 0, "first_seen": fallback.get("since")}
    return [found[k] for k in sorted(found)]
