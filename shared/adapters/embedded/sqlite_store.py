"""Embedded :class:`~shared.ports.DocumentStore`: one SQLite file in WAL mode, JSON documents."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from shared.adapters import _documents as rules
from shared.adapters.embedded._locks import holding, synchronous_pragma, writer_lock
from shared.clock import isoformat, parse_iso
from shared.errors import ContentionError, InvalidInput, KeywayError, UnavailableError
from shared.ports import ConditionalWrite, Document, Filter, Order, Snapshot, Versioned

T = TypeVar("T")

_BYTES = "__bytes__"  # tag for bytes values; user keys of the form __x__ are rejected (Firestore)
_TIMESTAMP = "__timestamp__"  # tag for timestamps: {"__timestamp__": isoformat(value)}
_SCHEMA = """CREATE TABLE IF NOT EXISTS documents (
    collection TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (collection, id)) WITHOUT ROWID"""
_TYPE = "IFNULL(json_type(data, ?), '')"
# Firestore's order of value types: null < bool < number < string < bytes < array < map.
_RANK = (
    f"CASE {_TYPE} WHEN 'null' THEN 0 WHEN 'true' THEN 1 WHEN 'false' THEN 1 "
    "WHEN 'integer' THEN 2 WHEN 'real' THEN 2 WHEN 'text' THEN 3 WHEN 'array' THEN 5 "
    f"ELSE CASE {_TYPE} WHEN 'text' THEN 4 ELSE 6 END END"
)


# ---- values (checked by the shared rules; bytes become tagged hex) --------------------------
def _tag(raw: bytes) -> dict[str, str]:
    return {_BYTES: raw.hex()}  # hex keeps byte order when compared as text


def _tag_time(moment: datetime) -> dict[str, str]:
    return {_TIMESTAMP: isoformat(moment)}


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if _BYTES in value:
            return bytes.fromhex(value[_BYTES])
        if _TIMESTAMP in value:
            return parse_iso(value[_TIMESTAMP])
        return {key: _decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode(item) for item in value]
    return value


def _dumps(data: Document) -> str:
    encoded = rules.check_document(data, bytes_as=_tag, datetime_as=_tag_time)
    return json.dumps(encoded, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


# ---- query translation (of queries the shared rules have passed) ---------------------------
def _paths(field: str) -> tuple[str, str]:
    """JSON paths of a dotted field and of its bytes tag."""
    path = f"$.{field}"
    return path, f"{path}.{_BYTES}"


def _operand(field: str, value: Any) -> tuple[str, list[Any]]:
    """SQL ``type-check AND value-expression`` prefix (to be followed by ``op ?``) and params."""
    path, bytes_path = _paths(field)
    if isinstance(value, bool):
        return f"({_TYPE} IN ('true', 'false') AND json_extract(data, ?)", [path, path, value]
    if isinstance(value, int | float):
        return f"({_TYPE} IN ('integer', 'real') AND json_extract(data, ?)", [path, path, value]
    if isinstance(value, str):
        return f"({_TYPE} = 'text' AND json_extract(data, ?)", [path, path, value]
    return f"({_TYPE} = 'text' AND json_extract(data, ?)", [bytes_path, bytes_path, value.hex()]


def _equals(field: str, value: Any) -> tuple[str, list[Any]]:
    if value is None:
        return f"({_TYPE} = 'null')", [_paths(field)[0]]
    sql, params = _operand(field, value)
    return f"{sql} = ?)", params


def _condition(where: Filter) -> tuple[str, list[Any]]:
    """One filter as SQL: same-typed comparisons only; a missing field never matches."""
    field, op, value = where.field, where.op, where.value
    if op == "in":
        parts = [_equals(field, item) for item in value]
        return "(" + " OR ".join(sql for sql, _ in parts) + ")", [p for _, ps in parts for p in ps]
    if op == "==":
        return _equals(field, value)
    if op == "!=":  # like Firestore: the field must exist and not be null
        sql, params = _equals(field, value)
        return f"({_TYPE} NOT IN ('', 'null') AND NOT {sql})", [_paths(field)[0], *params]
    sql, params = _operand(field, value)
    return f"{sql} {op} ?)", params


def _ordering(where: Sequence[Filter], order_by: Sequence[Order]) -> tuple[list[str], list[Any]]:
    """ORDER BY: explicit orders, then (like Firestore) inequality-filter fields, then id."""
    direction = "DESC" if order_by and order_by[-1].descending else "ASC"
    orders = [(o.field, "DESC" if o.descending else "ASC") for o in order_by]
    if order_by:
        explicit = {o.field for o in order_by}
        implicit = sorted({f.field for f in where if f.op in rules.INEQUALITIES} - explicit)
        orders += [(field, direction) for field in implicit]
    terms: list[str] = []
    params: list[Any] = []
    for field, way in orders:
        path, bytes_path = _paths(field)
        terms += [f"{_RANK} {way}", f"json_extract(data, ?) {way}"]
        params += [path, bytes_path, path]
    return [*terms, f"id {direction}"], params


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced (so threads that end do not leak one)."""


# ---- errors -------------------------------------------------------------------------------
def _translate(error: Exception, what: str) -> KeywayError:
    name = getattr(error, "sqlite_errorname", "")
    text = str(error).lower()
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text or "busy" in text:
        return ContentionError(f"{what}: database is busy")
    return UnavailableError(f"{what}: {type(error).__name__}")


@contextmanager
def _boundary(what: str) -> Iterator[None]:
    """Re-raise sqlite3 and file-system errors as keyway errors."""
    try:
        yield
    except (sqlite3.Error, OSError) as e:
        raise _translate(e, what) from e


# ---- the adapter --------------------------------------------------------------------------
class SqliteDocumentStore:
    """Documents as JSON text in one SQLite file (WAL mode, mode 0600), keyed (collection, id).

    Same semantics as Firestore: ``put`` replaces, ``create`` writes only an absent document,
    ``delete`` is idempotent, filters compare
    same-typed values only (numbers with numbers, strings with strings, bytes by byte order) and
    never match a missing field, ``!=`` also skips nulls, ``order_by`` skips documents without
    the field and ties break on inequality-filter fields then id. Without ``order_by`` results
    are ordered by id. Value rules are the port's plus Firestore's limits (64-bit ints, finite
    floats, no list directly in a list, no ``__x__`` keys or ids); ordering by list or map fields
    compares their JSON text. Bytes are stored as ``{"__bytes__": hex}``.

    Safe from many threads (one connection per thread; writers of one file in one process queue
    on a Python lock, :mod:`._locks`) and processes (SQLite locking, ``busy_timeout``).
    ``write_batch`` checks and applies its writes in one SQLite transaction (a version is a
    digest of the stored JSON text). ``transaction`` holds the write lock
    (``BEGIN IMMEDIATE``) while ``fn`` runs, so it never loses a race; store calls made inside
    ``fn`` on the same thread join it. Timestamps are stored as ``{"__timestamp__": iso}``.
    ``synchronous`` is SQLite's durability level (``normal``: survives a process crash;
    ``full``: also fsyncs every commit).
    """

    def __init__(self, path: Path, *, busy_timeout: float = 10.0,
                 synchronous: str = "normal") -> None:
        self._path = Path(path)
        self._busy_timeout = busy_timeout
        self._synchronous = synchronous_pragma(synchronous)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: weakref.WeakSet[_Connection] = weakref.WeakSet()
        with _boundary("sqlite.open"):
            self._path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600))
            connection = self._connection()
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(_SCHEMA)
        self._writer = writer_lock(self._path)

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection (a new one after ``fork``; closed when the thread ends)."""
        owner, connection = getattr(self._local, "entry", (None, None))
        if connection is None or owner != os.getpid():
            connection = sqlite3.connect(
                self._path, timeout=self._busy_timeout, isolation_level=None,
                check_same_thread=False, factory=_Connection,
            )
            connection.execute(self._synchronous)
            self._local.entry = (os.getpid(), connection)
            with self._lock:
                self._connections.add(connection)
        return connection

    def close(self) -> None:
        """Close every open connection of this store (in this process)."""
        with self._lock:
            connections, self._connections = list(self._connections), weakref.WeakSet()
        for connection in connections:
            with suppress(sqlite3.Error):
                connection.close()

    def get(self, collection: str, doc_id: str) -> Document | None:
        return _read(self._connection(), collection, doc_id)

    def _queue(self, what: str):
        """This process's turn to write (bounded by ``busy_timeout``, like SQLite's wait)."""
        return holding(self._writer, self._busy_timeout,
                       lambda: ContentionError(f"{what}: database is busy"))

    def put(self, collection: str, doc_id: str, data: Document) -> None:
        with self._queue("sqlite.put"):
            _write(self._connection(), collection, doc_id, data)

    def create(self, collection: str, doc_id: str, data: Document) -> bool:
        """One ``INSERT … ON CONFLICT DO NOTHING``: atomic, whoever inserts first wins."""
        row = (*_key(collection, doc_id), _dumps(data))
        with self._queue("sqlite.create"), _boundary("sqlite.create"):
            cursor = self._connection().execute(
                "INSERT INTO documents VALUES (?, ?, ?) ON CONFLICT DO NOTHING", row)
            return cursor.rowcount == 1

    def delete(self, collection: str, doc_id: str) -> None:
        with self._queue("sqlite.delete"):
            _remove(self._connection(), collection, doc_id)

    def query(self, collection: str, where: Sequence[Filter] = (), order_by: Sequence[Order] = (),
              limit: int | None = None) -> list[Snapshot]:
        sql, params = ["collection = ?"], [rules.check_query(collection, where, order_by, limit)]
        for clause in where:
            text, values = _condition(clause)
            sql.append(text)
            params += values
        for order in order_by:  # like Firestore, ordering by a field requires the field
            sql.append("json_type(data, ?) IS NOT NULL")
            params.append(_paths(order.field)[0])
        terms, order_params = _ordering(where, order_by)
        statement = (f"SELECT id, data FROM documents WHERE {' AND '.join(sql)} "  # noqa: S608
                     f"ORDER BY {', '.join(terms)} LIMIT ?")
        with _boundary("sqlite.query"):
            rows = self._connection().execute(
                statement, [*params, *order_params, -1 if limit is None else limit]
            ).fetchall()
        return [Snapshot(doc_id, _decode(json.loads(data))) for doc_id, data in rows]

    def get_many(self, collection: str, doc_ids: Sequence[str]) -> dict[str, Versioned]:
        """One ``SELECT … IN`` per 500 ids; a version is a digest of the stored JSON text."""
        rules.check_name(collection, "collection name")
        ids = rules.check_ids(doc_ids)
        with _boundary("sqlite.get_many"):
            found = dict(_texts(self._connection(), collection, ids))
        return {doc_id: Versioned(doc_id, None, None) if doc_id not in found else
                Versioned(doc_id, _decode(json.loads(found[doc_id])), _digest(found[doc_id]))
                for doc_id in ids}

    def write_batch(self, writes: Sequence[ConditionalWrite]) -> list[ConditionalWrite]:
        """One SQLite transaction: each write's precondition is checked against the row as it
        is under the write lock, and the write applied only if it holds."""
        batch = rules.check_batch(writes)
        rows = [(*_key(w.collection, w.doc_id), _dumps(w.data)) for w in batch]
        connection, failed = self._connection(), []
        if connection.in_transaction:
            raise InvalidInput("write_batch cannot run inside a transaction")
        if not batch:
            return []
        wanted: dict[str, list[str]] = {}
        for write in batch:
            wanted.setdefault(write.collection, []).append(write.doc_id)
        with self._queue("sqlite.write_batch"), _boundary("sqlite.write_batch"):
            connection.execute("BEGIN IMMEDIATE")
            try:
                stored = {(collection, doc_id): text for collection, ids in wanted.items()
                          for doc_id, text in _texts(connection, collection, ids)}
                applied = []
                for write, row in zip(batch, rows, strict=True):
                    text = stored.get((write.collection, write.doc_id))
                    if (None if text is None else _digest(text)) != write.expect:
                        failed.append(write)
                    else:
                        applied.append(row)
                connection.executemany("INSERT OR REPLACE INTO documents VALUES (?, ?, ?)",
                                       applied)
                connection.execute("COMMIT")
            except BaseException:
                with suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
                raise
        return failed

    def transaction(self, fn: Callable[[SqliteTransaction], T], *, max_attempts: int = 5) -> T:
        """Run ``fn`` under the write lock; commit if it returns, roll back if it raises."""
        rules.check_attempts(max_attempts)
        connection = self._connection()
        if connection.in_transaction:
            raise InvalidInput("transactions cannot be nested")
        # threads of this process queue here, not in SQLite's sleeping busy handler
        with self._queue("sqlite.transaction"):
            for attempt in range(1, max_attempts + 1):
                try:
                    connection.execute("BEGIN IMMEDIATE")
                    break
                except sqlite3.Error as e:
                    error = _translate(e, "sqlite.transaction")
                    if not isinstance(error, ContentionError) or attempt == max_attempts:
                        raise error from e
            return _run(connection, fn)


def _run(connection: sqlite3.Connection, fn: Callable[[SqliteTransaction], T]) -> T:
    transaction = SqliteTransaction(connection)
    try:
        result = fn(transaction)
        with _boundary("sqlite.commit"):
            connection.execute("COMMIT")
    except BaseException:
        with suppress(sqlite3.Error):
            connection.execute("ROLLBACK")
        raise
    finally:
        transaction.closed = True
    return result


class SqliteTransaction:
    """Reads then writes inside :meth:`SqliteDocumentStore.transaction` (Firestore's rule)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection
        self._wrote = False
        self.closed = False

    def _check_open(self) -> None:
        if self.closed:
            raise InvalidInput("the transaction is over")

    def get(self, collection: str, doc_id: str) -> Document | None:
        self._check_open()
        if self._wrote:
            raise InvalidInput("inside a transaction every read must come before the first write")
        return _read(self._connection, collection, doc_id)

    def put(self, collection: str, doc_id: str, data: Document) -> None:
        self._check_open()
        _write(self._connection, collection, doc_id, data)
        self._wrote = True

    def delete(self, collection: str, doc_id: str) -> None:
        self._check_open()
        _remove(self._connection, collection, doc_id)
        self._wrote = True


def _texts(connection: sqlite3.Connection, collection: str,
           ids: list[str]) -> list[tuple[str, str]]:
    """(id, stored JSON text) of those of ``ids`` that exist, 500 ids per ``SELECT``."""
    found: list[tuple[str, str]] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        marks = ", ".join("?" * len(chunk))
        found += connection.execute(
            f"SELECT id, data FROM documents WHERE collection = ? AND id IN ({marks})",  # noqa: S608
            [collection, *chunk]).fetchall()
    return found


def _digest(text: str) -> str:
    """The version of a stored document: a digest of its JSON text (changes with content)."""
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _key(collection: str, doc_id: str) -> tuple[str, str]:
    return (rules.check_name(collection, "collection name"),
            rules.check_name(doc_id, "document id"))


def _read(connection: sqlite3.Connection, collection: str, doc_id: str) -> Document | None:
    key = _key(collection, doc_id)
    with _boundary("sqlite.get"):
        sql = "SELECT data FROM documents WHERE collection = ? AND id = ?"
        row = connection.execute(sql, key).fetchone()
    return None if row is None else _decode(json.loads(row[0]))


def _write(connection: sqlite3.Connection, collection: str, doc_id: str, data: Document) -> None:
    row = (*_key(collection, doc_id), _dumps(data))
    with _boundary("sqlite.put"):
        connection.execute("INSERT OR REPLACE INTO documents VALUES (?, ?, ?)", row)


def _remove(connection: sqlite3.Connection, collection: str, doc_id: str) -> None:
    key = _key(collection, doc_id)
    with _boundary("sqlite.delete"):
        connection.execute("DELETE FROM documents WHERE collection = ? AND id = ?", key)
