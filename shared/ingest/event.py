"""The vocabulary of ``ingest``: a verified webhook :class:`Event`, the :class:`Target` it is
applied to, and the :class:`Upsert` / :class:`Tombstone` / :class:`RepositoryGone` changes
normalizers return."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from shared import messages
from shared.errors import InvalidInput
from shared.ports import Ports
from shared.records import model as m
from shared.records import store
from shared.records.model import Context

BAD = "ingest.bad_message"


@dataclass(frozen=True)
class Event:
    """One ``webhook.event`` message as ``webhook-P`` published it."""

    provider: str
    name: str
    delivery: str
    connection: str | None
    received_at: str
    payload: dict[str, Any]
    headers: dict[str, Any] = field(default_factory=dict)
    omitted: bool = False
    subject: dict[str, Any] = field(default_factory=dict)
    verified_by: str | None = None  # how webhook-P verified it (its message's verified_by)

    @property
    def action(self) -> str | None:
        value = self.payload.get("action")
        return value if isinstance(value, str) else None

    @classmethod
    def parse(cls, inbound: messages.Inbound) -> Event:
        """The event in ``inbound``; a malformed one → ``InvalidInput`` (acknowledged)."""
        body = inbound.body
        provider = inbound.topic.removeprefix("events-")
        if body.get("provider") != provider or not m.is_timestamp(body.get("received_at")):
            raise InvalidInput("webhook event lacks its provider or received_at", key=BAD)
        payload = body.get("payload") if not body.get("payload_omitted") else {}
        connection, delivery = body.get("connection"), body.get("delivery")
        if not isinstance(payload, dict) or not isinstance(delivery, str) \
                or not isinstance(connection, str | None):
            raise InvalidInput("webhook event lacks a payload or delivery id", key=BAD)
        return cls(provider, str(body.get("event") or ""), delivery, connection,
                   body["received_at"], payload, dict(body.get("headers") or {}),
                   bool(body.get("payload_omitted")), dict(body.get("subject") or {}),
                   body["verified_by"] if isinstance(body.get("verified_by"), str) else None)


@dataclass(frozen=True)
class Target:
    """A connection an event applies to; ``repository`` is its repository record's id."""

    tenant: str
    connection: str
    repository: str | None = None
    site: str | None = None  # Context.site, where ids are unique per site (Jira)

    def context(self, event: Event) -> Context:
        """Normalization context; ``observed_at`` is when the webhook arrived."""
        return Context(self.tenant, event.provider, self.connection, self.repository,
                       observed_at=event.received_at, site=self.site)


@dataclass(frozen=True)
class Upsert:
    record: dict[str, Any]


@dataclass(frozen=True)
class Tombstone:
    kind: str
    record_id: str
    deleted_at: str
    reason: str = "deleted"  # one of shared.records.store.REASONS


@dataclass(frozen=True)
class RepositoryGone:
    """A repository and every record under it become tombstones (deleted, transferred away,
    or out of the connection's reach)."""

    record_id: str
    deleted_at: str
    reason: str


Change = Upsert | Tombstone | RepositoryGone
Normalizer = Callable[[Event, Context, Ports], list[Change]]
Scope = Literal["repository", "installation"]


def deleted_at(event: Event, raw: dict[str, Any], field: str = "updated_at") -> str:
    """When a deletion happened, as a record version: the webhook's arrival, or just after the
    deleted object's own update time (``field``: Bitbucket's is ``updated_on``) if that is
    later (clocks differ)."""
    if isinstance(raw.get(field), str):
        after = m.convert(raw[field], field, plus_microseconds=1)
        return max(event.received_at, after)
    return event.received_at


def apply(ports: Ports, changes: Iterable[Change], connection: str | None = None
          ) -> tuple[int, int]:
    """Write ``changes`` through :mod:`shared.records.store`: (written, unchanged);
    ``connection``: the target's, kept on a deletion's placeholder tombstone."""
    written = unchanged = 0
    for change in changes:
        if isinstance(change, Upsert):
            done = store.upsert(ports.business, change.record)
        elif isinstance(change, RepositoryGone):
            done = store.mark_repository_gone(ports.business, change.record_id,
                                              change.deleted_at, change.reason,
                                              connection) > 0
        else:  # a pull request or an issue takes its comments and reviews along
            done = store.mark_thread_deleted(ports.business, change.kind, change.record_id,
                                             change.deleted_at, change.reason,
                                             connection) > 0
        written, unchanged = written + done, unchanged + (not done)
    return written, unchanged
