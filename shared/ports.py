"""Ports: the interfaces between keyway's domain and the outside world.

Every port here has a GCP adapter (official google-cloud clients, under
``shared/adapters/gcp``) and an embedded adapter (standard library + ``cryptography``, under
``shared/adapters/embedded``). One contract suite per port in ``tests/contract`` runs against
every adapter; an adapter that passes it is trusted. :mod:`shared.bootstrap` picks adapters.

Value rules for documents: a document is a ``dict[str, Value]`` where ``Value`` is ``None``,
``bool``, ``int``, ``float``, ``str``, ``bytes``, a ``list`` of values or a ``dict`` with ``str``
keys. Timestamps are stored as ISO-8601 UTC strings (``shared.clock.isoformat``) so they compare
correctly as strings on every adapter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

T = TypeVar("T")
Document = dict[str, Any]
FilterOp = Literal["==", "!=", "<", "<=", ">", ">=", "in"]


# ---------------------------------------------------------------------------------------------
# Clock
# ---------------------------------------------------------------------------------------------
@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, timezone-aware UTC."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards."""

    def sleep(self, seconds: float) -> None: ...


# ---------------------------------------------------------------------------------------------
# Document store
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Filter:
    field: str
    op: FilterOp
    value: Any


@dataclass(frozen=True)
class Order:
    field: str
    descending: bool = False


@dataclass(frozen=True)
class Snapshot:
    """A document read from a store: its id and a copy of its data."""

    id: str
    data: Document


MAX_BATCH_WRITES = 500  # Firestore's documented limit of writes per commit or batch write


@dataclass(frozen=True)
class Versioned:
    """A document read for a conditional write (:meth:`DocumentStore.get_many`): its data, or
    ``None`` when absent, and an opaque ``version`` that changes with every write of the
    document (``None`` when absent). Versions are compared for equality only."""

    id: str
    data: Document | None
    version: str | None


@dataclass(frozen=True)
class ConditionalWrite:
    """Replace ``collection/doc_id`` with ``data`` only if it is still as read: ``expect`` is
    the :attr:`Versioned.version` read, or ``None`` for "the document must be absent"."""

    collection: str
    doc_id: str
    data: Document
    expect: str | None


class Transaction(Protocol):
    """Reads and writes inside :meth:`DocumentStore.transaction`.

    All reads must happen before the first write (Firestore's rule, enforced by every adapter
    so code that works locally works in production).
    """

    def get(self, collection: str, doc_id: str) -> Document | None: ...

    def put(self, collection: str, doc_id: str, data: Document) -> None: ...

    def delete(self, collection: str, doc_id: str) -> None: ...


@runtime_checkable
class DocumentStore(Protocol):
    """Collections of JSON-like documents keyed by string ids, with transactions.

    Values: None, bool, 64-bit int, finite float, str, bytes, lists (not of lists), dicts with
    string keys, and timezone-aware ``datetime`` (returned as a UTC ``datetime``, microsecond
    precision). Timestamps exist for expiry — a Firestore TTL policy acts only on a native
    timestamp field (:mod:`shared.retention`) — and are not valid filter values; code that
    queries or orders by time stores ``shared.clock.isoformat`` strings.

    Errors: backend down, or (Cloud Firestore) a query whose composite index is missing or still
    building (:mod:`shared.indexes`) → ``UnavailableError``; a transaction that keeps losing
    races → ``ContentionError``; a document with an unsupported value → ``InvalidInput``.
    """

    def get(self, collection: str, doc_id: str) -> Document | None: ...

    def put(self, collection: str, doc_id: str, data: Document) -> None:
        """Create or replace the whole document."""

    def create(self, collection: str, doc_id: str, data: Document) -> bool:
        """Create the document if it is absent: ``True`` when this call created it, ``False``
        (nothing written) when it already exists. One atomic write, no transaction: of many
        concurrent creates of one id exactly one returns ``True``."""

    def delete(self, collection: str, doc_id: str) -> None:
        """Delete if present; deleting a missing document is not an error."""

    def query(
        self,
        collection: str,
        where: Sequence[Filter] = (),
        order_by: Sequence[Order] = (),
        limit: int | None = None,
    ) -> list[Snapshot]:
        """Documents matching every filter (AND), ordered, at most ``limit``.

        Without ``order_by`` the order is by document id.
        """

    def get_many(self, collection: str, doc_ids: Sequence[str]) -> dict[str, Versioned]:
        """Many documents of one collection in one call, with their versions: every id asked
        for is a key (absent documents too). Not a snapshot across documents."""

    def write_batch(self, writes: Sequence[ConditionalWrite]) -> list[ConditionalWrite]:
        """Apply each write whose precondition holds; return those whose did not.

        Not all-or-nothing: every write is checked and applied on its own (Firestore's
        ``BatchWrite``), so one conflict never holds back the others; the caller re-reads
        and retries only the returned ones. At most :data:`MAX_BATCH_WRITES` writes and one
        write per document per batch, else ``InvalidInput`` and nothing is written; a write
        with an unsupported value → ``InvalidInput``, nothing written."""

    def transaction(self, fn: Callable[[Transaction], T], *, max_attempts: int = 5) -> T:
        """Run ``fn`` atomically (serializable read-modify-write) and return its result.

        ``fn`` may run more than once when it loses a race, so it must have no side effects
        outside the transaction. After ``max_attempts`` lost races → ``ContentionError``.
        """


# ---------------------------------------------------------------------------------------------
# Message bus
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Message:
    """One delivery of a published message."""

    topic: str
    data: bytes
    attributes: Mapping[str, str]
    message_id: str
    publish_time: datetime
    delivery_attempt: int = 1
    ordering_key: str | None = None


@dataclass(frozen=True)
class SubscriptionSpec:
    """A subscription: where a topic's messages go and what happens when handling fails.

    The dead-letter topic receives a message, payload and attributes intact, after
    ``max_attempts`` failed deliveries. Redelivery waits an exponential backoff between
    ``min_backoff`` and ``max_backoff`` seconds.
    """

    name: str
    topic: str
    dead_letter_topic: str
    max_attempts: int = 5
    min_backoff: float = 10.0
    max_backoff: float = 600.0
    ack_deadline: int = 60
    push_endpoint: str | None = None


Handler = Callable[[Message], None]


@runtime_checkable
class MessageBus(Protocol):
    """At-least-once publish/subscribe.

    Handler contract: returning acknowledges the message. Raising ``PermanentError`` logs its
    stable key and acknowledges (retrying cannot help). Raising anything else — normally a
    ``RetryableError`` — redelivers the message after a backoff; after ``max_attempts``
    deliveries it goes to the subscription's dead-letter topic with payload and attributes
    intact. A message is never silently dropped.
    """

    def ensure_topic(self, topic: str) -> None: ...

    def ensure_subscription(self, spec: SubscriptionSpec) -> None:
        """Create the subscription (and its topic and dead-letter topic) if missing."""

    def publish(
        self,
        topic: str,
        data: bytes,
        attributes: Mapping[str, str] | None = None,
        ordering_key: str | None = None,
    ) -> str:
        """Durably publish; returns the message id once the bus has stored the message."""

    def pull(self, subscription: str, handler: Handler, max_messages: int = 10) -> int:
        """Deliver up to ``max_messages`` due messages to ``handler`` synchronously.

        Applies the handler contract above and returns how many messages were delivered.
        Used by workers, tests and the local runner; in production Pub/Sub pushes instead.
        """

    def peek(self, subscription: str, max_messages: int = 10) -> list[Message]:
        """Up to ``max_messages`` messages available now, without acknowledging them.

        They stay deliverable. Meant for operator views of ``<dead_letter_topic>-hold``
        subscriptions (see :mod:`shared.bus_ops`): on Pub/Sub a peek is a pull followed by a
        nack, which counts as a delivery attempt on subscriptions with a dead-letter policy.
        """


# ---------------------------------------------------------------------------------------------
# Key service (Cloud KMS or the local KMS)
# ---------------------------------------------------------------------------------------------
@runtime_checkable
class KeyService(Protocol):
    """Symmetric key-encryption keys, named ``key_name``, with versions.

    ``encrypt`` uses the primary version; ``decrypt`` finds the version from the ciphertext.
    Associated data is mandatory (no default): decrypting with different associated data fails.
    Errors: any decrypt failure → ``CryptoError``; service down → ``UnavailableError`` (callers
    fail closed: nothing is written in clear).
    """

    def ensure_key(self, key_name: str) -> None:
        """Create the key with one enabled primary version if it does not exist."""

    def encrypt(self, key_name: str, plaintext: bytes, associated_data: bytes) -> bytes: ...

    def decrypt(self, key_name: str, ciphertext: bytes, associated_data: bytes) -> bytes: ...

    def rotate(self, key_name: str) -> str:
        """Add a new primary version and return its id; older versions keep decrypting."""

    def primary_version(self, key_name: str) -> str: ...


# ---------------------------------------------------------------------------------------------
# Secret source (Secret Manager or environment + local file)
# ---------------------------------------------------------------------------------------------
@runtime_checkable
class SecretSource(Protocol):
    """Named secrets with versions. ``version="latest"`` is the newest enabled one.

    Errors: no such secret or version → ``NotFound`` (message names the secret, never a value);
    service down → ``UnavailableError``.
    """

    def access(self, name: str, version: str = "latest") -> bytes: ...

    def add_version(self, name: str, value: bytes) -> str:
        """Store a new version (creating the secret if needed); returns the version id."""

    def delete(self, name: str) -> None:
        """Delete the secret with every version; ``NotFound`` if there is no such secret.
        Afterwards ``access`` answers ``NotFound`` and ``add_version`` starts a new secret
        (version ids start again at ``"1"``)."""


@dataclass
class Ports:
    """Everything a component needs from the outside world, wired by the composition root."""

    business: DocumentStore
    vault: DocumentStore
    bus: MessageBus
    keys: KeyService
    secrets: SecretSource
    clock: Clock

