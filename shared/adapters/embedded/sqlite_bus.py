"""SQLite message bus: the embedded :class:`~shared.ports.MessageBus` (durable, at-least-once).

One SQLite file (WAL, mode 0600) holds three tables: ``topics``, ``subscriptions`` (the whole
:class:`~shared.ports.SubscriptionSpec`) and ``deliveries``, one row per message per
subscription, unique on ``(subscription, message_id)``. A redelivery is the same row becoming
visible again, never a copy.

Publishing inserts a delivery row for every subscription of the topic in one transaction (a
topic without subscriptions keeps nothing, as on Pub/Sub) and returns the message id once it
is committed; then it rings the file's in-process doorbell, so a puller sleeping in
:meth:`SqliteMessageBus.wait_for_publish` wakes at once (a publish from another process, or a
retry whose backoff ends, is found by the puller's poll).

Pulling claims due rows atomically (``BEGIN IMMEDIATE``): ``attempts += 1`` (that is
``Message.delivery_attempt``, counting from 1), a fresh lease token, and ``next_visible_at =
now + ack_deadline``. Then, per message, the handler runs outside any transaction:

* return or ``PermanentError`` → the row is deleted (ack);
* any other exception → visible again after ``min_backoff * 2**(attempts-1)`` seconds, capped
  at ``max_backoff``; on the ``max_attempts``-th failure the row moves, in one transaction, to
  the dead-letter topic (same data and attributes, plus ``keyway_dead_letter_source_subscription``
  and ``keyway_delivery_attempts``; a new message id);
* a crash → nothing happens; the lease runs out and the row is claimed again. A row whose lease
  ran out at ``max_attempts`` is dead-lettered instead, so a message that kills its puller
  cannot loop forever. A puller that knows it is the only one (the local runner, starting)
  may end every lease at once with :meth:`SqliteMessageBus.expire_leases`.

Settling names the lease token: once another puller re-claimed a row, a late ack or nack
changes nothing (the message is simply delivered again: at-least-once).

Ordering: only the oldest remaining row of an ordering key on a subscription is claimable, so
messages sharing a key are handled one at a time in publish order; a retried message holds
back the later ones until it is acked or dead-lettered.

All time comes from the injected :class:`~shared.ports.Clock` so tests can skip backoff.
Each thread keeps its own connection (a new one after ``fork``; ``busy_timeout``), so the bus
is thread- and process-safe; keeping it open matters: closing the last connection of a WAL
database checkpoints it, which made every publish cost milliseconds. Writers of one process
queue on an in-process lock (:mod:`._locks`). ``sqlite3`` errors become ``UnavailableError``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import uuid
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from shared.adapters.embedded._locks import doorbell, holding, synchronous_pragma, writer_lock
from shared.bus_ops import (
    DEAD_LETTER_ATTEMPTS,
    DEAD_LETTER_SOURCE,
    dispatch,
    hold_subscription,
    validate_message,
    validate_name,
    validate_spec,
)
from shared.clock import SystemClock, isoformat, parse_iso
from shared.errors import NotFound, UnavailableError
from shared.log import get_logger
from shared.ports import Clock, Handler, Message, SubscriptionSpec

log = get_logger(__name__)

_BUSY_TIMEOUT_S = 30.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS subscriptions (
    name TEXT PRIMARY KEY, topic TEXT NOT NULL, dead_letter_topic TEXT, max_attempts INTEGER,
    min_backoff REAL NOT NULL, max_backoff REAL NOT NULL, ack_deadline INTEGER NOT NULL,
    push_endpoint TEXT);
CREATE INDEX IF NOT EXISTS subscriptions_by_topic ON subscriptions (topic);
CREATE TABLE IF NOT EXISTS deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, subscription TEXT NOT NULL, message_id TEXT NOT NULL,
    topic TEXT NOT NULL, data BLOB NOT NULL, attributes TEXT NOT NULL, ordering_key TEXT,
    publish_time TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_visible_at REAL NOT NULL, lease TEXT, UNIQUE (subscription, message_id));
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (subscription, next_visible_at);
CREATE INDEX IF NOT EXISTS deliveries_by_key ON deliveries (subscription, ordering_key, seq);
"""
# Due rows of a subscription that are the oldest of their ordering key, oldest first.
_DUE = """
SELECT * FROM deliveries AS d WHERE d.subscription = ? AND d.next_visible_at <= ?
  AND (d.ordering_key IS NULL OR NOT EXISTS (
      SELECT 1 FROM deliveries AS e WHERE e.subscription = d.subscription
        AND e.ordering_key = d.ordering_key AND e.seq < d.seq))
ORDER BY d.seq LIMIT ?
"""
# A holding subscription never dead-letters: it keeps retrying with these settings.
_HOLD_SETTINGS = (None, None, 10.0, 600.0, 60)


@dataclass(frozen=True)
class _Claim:
    seq: int
    lease: str
    message: Message


class SqliteMessageBus:
    """The embedded bus. ``path`` is created (with its parent directory) if missing."""

    def __init__(self, path: Path, clock: Clock | None = None, *,
                 synchronous: str = "normal") -> None:
        self._path = Path(path)
        self._clock = clock or SystemClock()
        self._synchronous = synchronous_pragma(synchronous)
        self._writer = writer_lock(self._path)
        self._doorbell = doorbell(self._path)
        self._local = threading.local()
        self._opened: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._opened_lock = threading.Lock()
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self._path, os.O_CREAT | os.O_RDWR, 0o600))
            os.chmod(self._path, 0o600)
            conn = self._connect()
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise UnavailableError(f"sqlite bus: cannot open store ({type(e).__name__})") from e

    # -- topology -------------------------------------------------------------------------------
    def ensure_topic(self, topic: str) -> None:
        validate_name("topic", topic)
        with self._tx("ensure_topic") as conn:
            conn.execute("INSERT OR IGNORE INTO topics (name) VALUES (?)", (topic,))

    def ensure_subscription(self, spec: SubscriptionSpec) -> None:
        """Create topic, dead-letter topic, ``<dlt>-hold`` and the subscription if missing.

        An existing subscription is left as it is (as on Pub/Sub, where create is not update).
        """
        validate_spec(spec)
        insert = "INSERT OR IGNORE INTO subscriptions VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        with self._tx("ensure_subscription") as conn:
            for topic in (spec.topic, spec.dead_letter_topic):
                conn.execute("INSERT OR IGNORE INTO topics (name) VALUES (?)", (topic,))
            hold = hold_subscription(spec.dead_letter_topic)
            conn.execute(insert, (hold, spec.dead_letter_topic, *_HOLD_SETTINGS, None))
            conn.execute(insert, (
                spec.name, spec.topic, spec.dead_letter_topic, spec.max_attempts,
                spec.min_backoff, spec.max_backoff, spec.ack_deadline, spec.push_endpoint))

    # -- publish --------------------------------------------------------------------------------
    def publish(
        self,
        topic: str,
        data: bytes,
        attributes: Mapping[str, str] | None = None,
        ordering_key: str | None = None,
    ) -> str:
        attrs = validate_message(data, attributes)
        message_id = uuid.uuid4().hex
        with self._tx("publish") as conn:
            if conn.execute("SELECT 1 FROM topics WHERE name = ?", (topic,)).fetchone() is None:
                raise NotFound(f"topic {topic!r} does not exist")
            self._fan_out(conn, topic, message_id, bytes(data), attrs, ordering_key or None)
        self._doorbell.ring()  # committed: wake a puller of this file in this process
        return message_id

    def published(self) -> int:
        """A counter of the publishes this process committed to this bus file (any instance):
        read it before pulling, then :meth:`wait_for_publish` sleeps only if nothing came."""
        return self._doorbell.rings()

    def wait_for_publish(self, seen: int, timeout: float) -> bool:
        """Sleep until this process publishes to this bus file after :meth:`published` read
        ``seen`` (True), or ``timeout`` seconds (False: other processes and redeliveries that
        became due are found by polling)."""
        return self._doorbell.wait(seen, timeout)

    def _fan_out(self, conn: sqlite3.Connection, topic: str, message_id: str, data: bytes,
                 attributes: dict[str, str], ordering_key: str | None) -> int:
        """One delivery row per subscription of ``topic``; returns how many were written."""
        now = self._now()
        cursor = conn.execute(
            "INSERT INTO deliveries (subscription, message_id, topic, data, attributes,"
            " ordering_key, publish_time, next_visible_at)"
            " SELECT name, ?, ?, ?, ?, ?, ?, ? FROM subscriptions WHERE topic = ?",
            (message_id, topic, data, json.dumps(attributes, sort_keys=True), ordering_key,
             isoformat(self._clock.now()), now, topic))
        return cursor.rowcount

    # -- pull -----------------------------------------------------------------------------------
    def pull(self, subscription: str, handler: Handler, max_messages: int = 10) -> int:
        claims = self._claim(subscription, max_messages)
        started = 0
        try:
            for claim in claims:
                started += 1
                ack = dispatch(handler, claim.message, subscription)
                self._settle(subscription, claim, ack)
        finally:
            self._release(claims[started:])  # claimed but never handed over (after a crash)
        return started

    def peek(self, subscription: str, max_messages: int = 10) -> list[Message]:
        """Available (not leased, not backing off) messages, oldest first, left untouched."""
        with self._tx("peek") as conn:
            self._subscription(conn, subscription)
            rows = conn.execute(
                "SELECT * FROM deliveries WHERE subscription = ? AND next_visible_at <= ?"
                " ORDER BY seq LIMIT ?", (subscription, self._now(), max_messages)).fetchall()
        return [_message(row, row["attempts"] + 1) for row in rows]

    def _claim(self, subscription: str, limit: int) -> list[_Claim]:
        now = self._now()
        claims: list[_Claim] = []
        with self._tx("pull") as conn:
            sub = self._subscription(conn, subscription)
            for row in conn.execute(_DUE, (subscription, now, limit)).fetchall():
                if sub["max_attempts"] and row["attempts"] >= sub["max_attempts"]:
                    self._dead_letter(conn, sub, row)  # its last lease ran out: a crash
                    continue
                lease = uuid.uuid4().hex
                conn.execute(
                    "UPDATE deliveries SET attempts = attempts + 1, lease = ?,"
                    " next_visible_at = ? WHERE seq = ?",
                    (lease, now + sub["ack_deadline"], row["seq"]))
                claims.append(_Claim(row["seq"], lease, _message(row, row["attempts"] + 1)))
        return claims

    def _settle(self, subscription: str, claim: _Claim, ack: bool) -> None:
        """Ack (delete), back off, or dead-letter one claimed row, if we still hold its lease."""
        with self._tx("settle") as conn:
            row = conn.execute("SELECT * FROM deliveries WHERE seq = ? AND lease = ?",
                               (claim.seq, claim.lease)).fetchone()
            if row is None:
                log.info("bus.lease_lost", extra={"fields": {
                    "subscription": subscription, "message_id": claim.message.message_id}})
                return
            sub = self._subscription(conn, subscription)
            if ack:
                conn.execute("DELETE FROM deliveries WHERE seq = ?", (claim.seq,))
            elif sub["max_attempts"] and row["attempts"] >= sub["max_attempts"]:
                self._dead_letter(conn, sub, row)
            else:
                delay = min(sub["max_backoff"], sub["min_backoff"] * 2 ** (row["attempts"] - 1))
                conn.execute(
                    "UPDATE deliveries SET lease = NULL, next_visible_at = ? WHERE seq = ?",
                    (self._now() + delay, claim.seq))

    def _release(self, claims: list[_Claim]) -> None:
        """Undo claims whose message never reached the handler: visible now, attempt uncounted."""
        if not claims:
            return
        with self._tx("release") as conn:
            conn.executemany(
                "UPDATE deliveries SET lease = NULL, attempts = attempts - 1,"
                " next_visible_at = ? WHERE seq = ? AND lease = ?",
                [(self._now(), c.seq, c.lease) for c in claims])

    def expire_leases(self) -> int:
        """Make every claimed message visible now, its attempt still counted; how many.

        For a puller starting as the only one of this bus (the local runner after a crash or
        kill): what the dead process had claimed was being handled by nothing, so it is
        redelivered at once — as Pub/Sub redelivers a push whose endpoint went away — instead
        of after the ack deadline, which would also hold back every later message of its
        ordering key. Never call it while another process pulls from the same file."""
        with self._tx("expire_leases") as conn:
            return conn.execute("UPDATE deliveries SET lease = NULL, next_visible_at = ?"
                                " WHERE lease IS NOT NULL", (self._now(),)).rowcount

    def _dead_letter(self, conn: sqlite3.Connection, sub: sqlite3.Row, row: sqlite3.Row) -> None:
        """Move ``row`` to the dead-letter topic in the caller's transaction."""
        attrs = {**json.loads(row["attributes"]), DEAD_LETTER_SOURCE: sub["name"],
                 DEAD_LETTER_ATTEMPTS: str(row["attempts"])}
        fields = {"subscription": sub["name"], "topic": row["topic"],
                  "message_id": row["message_id"], "dead_letter_topic": sub["dead_letter_topic"]}
        written = self._fan_out(conn, sub["dead_letter_topic"], uuid.uuid4().hex,
                                bytes(row["data"]), attrs, row["ordering_key"])
        if written == 0:  # nobody would keep it: keep it here rather than drop it
            log.error("bus.dead_letter_unroutable", extra={"fields": fields})
            conn.execute("UPDATE deliveries SET lease = NULL, next_visible_at = ? WHERE seq = ?",
                         (self._now() + sub["max_backoff"], row["seq"]))
            return
        conn.execute("DELETE FROM deliveries WHERE seq = ?", (row["seq"],))
        log.warning("bus.dead_lettered", extra={"fields": fields})

    # -- plumbing -------------------------------------------------------------------------------
    def _now(self) -> float:
        return self._clock.now().timestamp()

    @staticmethod
    def _subscription(conn: sqlite3.Connection, name: str) -> sqlite3.Row:
        row = conn.execute("SELECT * FROM subscriptions WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"subscription {name!r} does not exist")
        return row

    def _connect(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use, and again after ``fork``)."""
        owner, conn = getattr(self._local, "entry", (None, None))
        if conn is None or owner != os.getpid():
            conn = sqlite3.connect(self._path, timeout=_BUSY_TIMEOUT_S, isolation_level=None,
                                   check_same_thread=False, factory=_Connection)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
            conn.execute(self._synchronous)
            self._local.entry = (os.getpid(), conn)
            with self._opened_lock:
                self._opened.add(conn)
        return conn

    def close(self) -> None:
        """Close every connection this bus opened (in this process)."""
        with self._opened_lock:
            opened, self._opened = list(self._opened), weakref.WeakSet()
        for conn in opened:
            with suppress(sqlite3.Error):
                conn.close()

    @contextmanager
    def _tx(self, what: str) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``) on this thread's connection, committed on
        exit and rolled back on any error."""
        conn: sqlite3.Connection | None = None
        # threads of this process queue here, not in SQLite's sleeping busy handler
        with holding(self._writer, _BUSY_TIMEOUT_S,
                     lambda: UnavailableError(f"sqlite bus {what}: database is busy")):
            try:
                conn = self._connect()
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except sqlite3.Error as e:
                raise UnavailableError(f"sqlite bus {what}: {type(e).__name__}") from e
            finally:
                if conn is not None and conn.in_transaction:
                    with suppress(sqlite3.Error):
                        conn.rollback()


class _Connection(sqlite3.Connection):
    """A connection that can sit in a weak set (the plain class cannot be weakly referenced)."""


def _message(row: sqlite3.Row, attempt: int) -> Message:
    return Message(
        topic=row["topic"],
        data=bytes(row["data"]),
        attributes=json.loads(row["attributes"]),
        message_id=row["message_id"],
        publish_time=parse_iso(row["publish_time"]),
        delivery_attempt=attempt,
        ordering_key=row["ordering_key"],
    )
