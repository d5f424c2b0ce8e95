"""Firestore :class:`~shared.ports.DocumentStore` on the official ``google.cloud.firestore``."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exceptions
from google.cloud import firestore
from google.cloud.firestore_v1 import FieldFilter
from google.cloud.firestore_v1.field_path import FieldPath

from shared.adapters.gcp._errors import boundary
from shared.clock import isoformat
from shared.errors import ConfigError, ContentionError, InvalidInput
from shared.ports import Document, Filter, Order, Snapshot

T = TypeVar("T")

_RESERVED = re.compile(r"^__.*__$", re.DOTALL)
_SEGMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INT64 = (-(2**63), 2**63 - 1)
_INEQUALITIES = frozenset({"!=", "<", "<=", ">", ">="})
_MAX_IN = 30


# ---- value rules: the same as the embedded store's, checked before Firestore sees a value ----
def _check_name(name: object, what: str) -> str:
    if (not isinstance(name, str) or not name or "/" in name or name in (".", "..")
            or _RESERVED.match(name) or len(_utf8(name)) > 1500):
        raise InvalidInput(f"invalid {what}")
    return name


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:  # lone surrogates
        raise InvalidInput("strings must be valid UTF-8") from e


def _check_value(value: Any, *, in_list: bool = False) -> None:
    """Raise ``InvalidInput`` unless ``value`` follows the port's value rules."""
    if isinstance(value, str):
        _utf8(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        if not _INT64[0] <= value <= _INT64[1]:
            raise InvalidInput("integers must fit in 64 bits")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput("floats must be finite")
    elif isinstance(value, list):
        if in_list:
            raise InvalidInput("a list cannot directly contain a list")
        for item in value:
            _check_value(item, in_list=True)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not key or _RESERVED.match(key) or not _utf8(key):
                raise InvalidInput("document keys must be non-empty strings not of the form __x__")
            _check_value(item)
    elif value is not None and not isinstance(value, bool | bytes):
        raise InvalidInput(f"unsupported value type: {type(value).__name__}")


def _check_document(data: Document) -> Document:
    if not isinstance(data, dict):
        raise InvalidInput("a document must be a dict")
    _check_value(data)
    return data


def _check_filter(where: Filter) -> FieldFilter:
    """The embedded store's filter rules, so a query that works locally works here."""
    _check_field(where.field)
    value, op = where.value, where.op
    scalars = (bool, int, float, str, bytes)
    if op == "in":
        if (not isinstance(value, list) or not 0 < len(value) <= _MAX_IN
                or not all(isinstance(item, scalars) for item in value)):
            raise InvalidInput(f"'in' takes a list of 1 to {_MAX_IN} non-null values")
    elif op not in _INEQUALITIES and op != "==":
        raise InvalidInput("unsupported filter operator")
    elif not isinstance(value, scalars) and not (value is None and op in ("==", "!=")):
        raise InvalidInput("filter values must be None (== and != only), bool, number, str, bytes")
    _check_value(value)
    return FieldFilter(where.field, op, value)


def _check_field(field: object) -> str:
    parts = field.split(".") if isinstance(field, str) else [""]
    if not all(_SEGMENT.match(part) and not _RESERVED.match(part) for part in parts):
        raise InvalidInput("query fields must be dotted identifiers")
    return str(field)


def _plain(value: Any) -> Any:
    """Firestore's returned value as plain Python (timestamps, never written by us, as ISO)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, datetime):
        return isoformat(value)
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

    ``put`` is ``set`` (replace), ``delete`` is idempotent, filters are Firestore's own (same
    types only, a missing field never matches, ``!=`` also skips nulls), ``order_by`` skips
    documents without the field. Without ``order_by`` results are ordered by document id; with
    an inequality filter and no ``order_by`` Firestore would order by that field, so the matches
    are fetched and sorted by id here (``limit`` applies after). Values are checked against the
    port's rules first (the embedded store's rules) and come back as plain Python; bytes are
    native. ``transaction`` uses the client's optimistic retries; after ``max_attempts``
    aborted commits → ``ContentionError``. Vendor errors become keyway errors.
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
        _check_name(collection, "collection name")
        return self._client.collection(collection).document(_check_name(doc_id, "document id"))

    def get(self, collection: str, doc_id: str) -> Document | None:
        ref = self._ref(collection, doc_id)
        with boundary("firestore.get"):
            snapshot = ref.get()
        return _plain(snapshot.to_dict()) if snapshot.exists else None

    def put(self, collection: str, doc_id: str, data: Document) -> None:
        ref = self._ref(collection, doc_id)
        _check_document(data)
        with boundary("firestore.put"):
            ref.set(data)

    def delete(self, collection: str, doc_id: str) -> None:
        ref = self._ref(collection, doc_id)
        with boundary("firestore.delete"):
            ref.delete()

    def query(
        self,
        collection: str,
        where: Sequence[Filter] = (),
        order_by: Sequence[Order] = (),
        limit: int | None = None,
    ) -> list[Snapshot]:
        if limit is not None and (type(limit) is not int or limit < 0):
            raise InvalidInput("limit must be a non-negative integer")
        if sum(clause.op == "!=" for clause in where) > 1:
            raise InvalidInput("at most one != filter per query (Firestore's rule)")
        query: Any = self._client.collection(_check_name(collection, "collection name"))
        for clause in where:
            query = query.where(filter=_check_filter(clause))
        for order in order_by:
            direction = "DESCENDING" if order.descending else "ASCENDING"
            query = query.order_by(_check_field(order.field), direction=direction)
        sort_here = not order_by and any(clause.op in _INEQUALITIES for clause in where)
        if not order_by and not sort_here:
            query = query.order_by(FieldPath.document_id())
        if limit is not None and not sort_here:
            query = query.limit(limit)
        with boundary("firestore.query"):
            found = [Snapshot(s.id, _plain(s.to_dict())) for s in query.stream()]
        if sort_here:
            found = sorted(found, key=lambda snapshot: snapshot.id)[:limit]
        return found

    def transaction(self, fn: Callable[[FirestoreTransaction], T], *, max_attempts: int = 5) -> T:
        """Run ``fn`` in a Firestore transaction; whatever ``fn`` raises is re-raised as is."""
        if max_attempts < 1:
            raise InvalidInput("max_attempts must be at least 1")
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
        self._transaction.set(self._store._ref(collection, doc_id), _check_document(data))
        self._wrote = True

    def delete(self, collection: str, doc_id: str) -> None:
        self._transaction.delete(self._store._ref(collection, doc_id))
        self._wrote = True
