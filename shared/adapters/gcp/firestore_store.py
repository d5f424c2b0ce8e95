"""Firestore :class:`~shared.ports.DocumentStore` on the official ``google.cloud.firestore``."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.auth import exceptions as auth_exceptions
from google.cloud import firestore
from google.cloud.firestore_v1 import FieldFilter
from google.cloud.firestore_v1.bulk_batch import BulkWriteBatch
from google.cloud.firestore_v1.field_path import FieldPath

from shared.adapters import _documents as rules
from shared.adapters.gcp._errors import boundary
from shared.errors import ConfigError, ContentionError, InvalidInput
from shared.ports import ConditionalWrite, Document, Filter, Order, Snapshot, Versioned

T = TypeVar("T")
_OK = 0
# a write's status codes that mean "its precondition did not hold" (or it lost a race): the
# caller re-reads and retries it (google.rpc.Code: ABORTED, ALREADY_EXISTS, NOT_FOUND,
# FAILED_PRECONDITION)
_CONFLICT = frozenset({10, 6, 5, 9})


def _plain(value: Any) -> Any:
    """Firestore's returned value as plain Python (timestamps as plain UTC ``datetime``)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, datetime):  # DatetimeWithNanoseconds → datetime (microseconds)
        utc = value.astimezone(UTC)
        return datetime(utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second,
                        utc.microsecond, tzinfo=UTC)
    return value


def _lost_races(error: BaseException) -> bool:
    """True when the client gave up after ``max_attempts`` aborted commits."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, gexc.Aborted):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


class FirestoreDocumentStore:
    """Documents in one Firestore database (``database`` names it: ``"(default)"``, ``"vault"``).

    ``put`` is ``set`` (replace), ``create`` is ``create`` (``AlreadyExists`` → ``False``),
    ``delete`` is idempotent, filters are Firestore's own (same
    types only, a missing field never matches, ``!=`` also skips nulls), ``order_by`` skips
    documents without the field. Without ``order_by`` results are ordered by document id; with
    an inequality filter and no ``order_by`` Firestore would order by that field, so the matches
    are fetched and sorted by id here (``limit`` applies after). Values and queries are checked
    against the rules both stores share first (:mod:`shared.adapters._documents`); values come
    back as plain Python, bytes native. ``transaction`` uses the client's optimistic retries;
    after ``max_attempts`` aborted commits → ``ContentionError``. ``write_batch`` is one
    ``BatchWrite`` with a precondition per document. Vendor errors become keyway
    errors.
    """

    def __init__(self, project: str, database: str = "(default)", *, client: Any = None) -> None:
        self.project = project
        self.database = database
        try:
            with boundary("firestore.connect"):
                self._client = client or firestore.Client(project=project, database=database)
        except auth_exceptions.GoogleAuthError as e:
            raise ConfigError("firestore: no usable Google credentials") from e

    def close(self) -> None:
        self._client.close()

    def _ref(self, collection: str, doc_id: str) -> Any:
        rules.check_name(collection, "collection name")
        rules.check_name(doc_id, "document id")
        return self._client.collection(collection).document(doc_id)

    def get(self, collection: str, doc_id: str) -> Document | None:
        ref = self._ref(collection, doc_id)
        with boundary("firestore.get"):
            snapshot = ref.get()
        return _plain(snapshot.to_dict()) if snapshot.exists else None

    def put(self, collection: str, doc_id: str, data: Document) -> None:
        ref = self._ref(collection, doc_id)
        checked = rules.check_document(data)
        with boundary("firestore.put"):
            ref.set(checked)

    def create(self, collection: str, doc_id: str, data: Document) -> bool:
        """``DocumentReference.create``: one commit with an exists=false precondition."""
        ref = self._ref(collection, doc_id)
        checked = rules.check_document(data)
        with boundary("firestore.create"):
            try:
                ref.create(checked)
            except gexc.AlreadyExists:  # an answer, not an error
                return False
        return True

    def delete(self, collection: str, doc_id: str) -> None:
        ref = self._ref(collection, doc_id)
        with boundary("firestore.delete"):
            ref.delete()

    def query(self, collection: str, where: Sequence[Filter] = (), order_by: Sequence[Order] = (),
              limit: int | None = None) -> list[Snapshot]:
        query: Any = self._client.collection(rules.check_query(collection, where, order_by, limit))
        for clause in where:
            query = query.where(filter=FieldFilter(clause.field, clause.op, clause.value))
        for order in order_by:
            direction = "DESCENDING" if order.descending else "ASCENDING"
            query = query.order_by(order.field, direction=direction)
        sort_here = not order_by and any(clause.op in rules.INEQUALITIES for clause in where)
        if not order_by and not sort_here:
            query = query.order_by(FieldPath.document_id())
        if limit is not None and not sort_here:
            query = query.limit(limit)
        with boundary("firestore.query"):
            found = [Snapshot(s.id, _plain(s.to_dict())) for s in query.stream()]
        if sort_here:
            found = sorted(found, key=lambda snapshot: snapshot.id)[:limit]
        return found

    def get_many(self, collection: str, doc_ids: Sequence[str]) -> dict[str, Versioned]:
        """``Client.get_all`` (one ``BatchGetDocuments``); the version is the update time."""
        rules.check_name(collection, "collection name")
        ids = rules.check_ids(doc_ids)
        refs = [self._client.collection(collection).document(doc_id) for doc_id in ids]
        found = {doc_id: Versioned(doc_id, None, None) for doc_id in ids}
        with boundary("firestore.get_many"):
            for snapshot in self._client.get_all(refs) if refs else ():
                if snapshot.exists:
                    found[snapshot.id] = Versioned(snapshot.id, _plain(snapshot.to_dict()),
                                                   snapshot.update_time.rfc3339())
        return found

    def write_batch(self, writes: Sequence[ConditionalWrite]) -> list[ConditionalWrite]:
        """One ``BatchWrite`` request (not atomic: a status per write): ``expect=None`` is an
        ``exists=false`` precondition, a version an ``update_time`` one."""
        batch = rules.check_batch(writes)
        if not batch:
            return []
        bulk = BulkWriteBatch(self._client)
        for write in batch:
            ref, data = self._ref(write.collection, write.doc_id), rules.check_document(write.data)
            if write.expect is None:
                bulk.create(ref, data)
                continue
            try:
                when = DatetimeWithNanoseconds.from_rfc3339(write.expect)
            except ValueError:
                raise InvalidInput("expect: not a version read by get_many") from None
            bulk.set(ref, data)
            self._client.write_option(last_update_time=when.timestamp_pb()).modify_write(
                bulk._write_pbs[-1])
        with boundary("firestore.write_batch"):
            answer = bulk.commit()
        failed = []
        for write, status in zip(batch, answer.status, strict=True):
            if status.code in _CONFLICT:
                failed.append(write)
            elif status.code != _OK:
                with boundary("firestore.write_batch"):
                    raise gexc.from_grpc_status(status.code, status.message)
        return failed

    def transaction(self, fn: Callable[[FirestoreTransaction], T], *, max_attempts: int = 5) -> T:
        """Run ``fn`` in a Firestore transaction; whatever ``fn`` raises is re-raised as is.

        The client retries an aborted commit at once, which lets two contenders abort each
        other again and again; so each attempt runs alone and a lost race waits a jittered,
        doubling pause (from 20 ms, capped at 1 s) before the next one.
        """
        rules.check_attempts(max_attempts)
        for attempt in range(max_attempts):
            try:
                return self._attempt(fn)
            except ContentionError:
                if attempt + 1 == max_attempts:
                    raise ContentionError(f"transaction lost {max_attempts} races") from None
                time.sleep(random.uniform(0, min(1.0, 0.02 * 2**attempt)))
        raise AssertionError("unreachable")

    def _attempt(self, fn: Callable[[FirestoreTransaction], T]) -> T:
        max_attempts = 1
        raised_by_fn: list[BaseException] = []

        @firestore.transactional
        def body(transaction: Any) -> T:
            try:
                return fn(FirestoreTransaction(self, transaction))
            except BaseException as e:
                raised_by_fn.append(e)
                raise

        try:
            return body(self._client.transaction(max_attempts=max_attempts))
        except BaseException as e:
            if raised_by_fn:  # fn's own error wins, even over a failed rollback
                if e is raised_by_fn[-1]:
                    raise
                raise raised_by_fn[-1]  # noqa: B904 - chained to the rollback error implicitly
            if _lost_races(e):
                raise ContentionError(f"transaction lost {max_attempts} races") from e
            with boundary("firestore.transaction"):
                raise


class FirestoreTransaction:
    """Reads then writes inside :meth:`FirestoreDocumentStore.transaction` (Firestore's rule)."""

    def __init__(self, store: FirestoreDocumentStore, transaction: Any) -> None:
        self._store = store
        self._transaction = transaction
        self._wrote = False

    def get(self, collection: str, doc_id: str) -> Document | None:
        if self._wrote:
            raise InvalidInput("inside a transaction every read must come before the first write")
        ref = self._store._ref(collection, doc_id)
        with boundary("firestore.transaction.get"):
            snapshot = ref.get(transaction=self._transaction)
        return _plain(snapshot.to_dict()) if snapshot.exists else None

    def put(self, collection: str, doc_id: str, data: Document) -> None:
        ref = self._store._ref(collection, doc_id)
        self._transaction.set(ref, rules.check_document(data))
        self._wrote = True

    def delete(self, collection: str, doc_id: str) -> None:
        self._transaction.delete(self._store._ref(collection, doc_id))
        self._wrote = True
