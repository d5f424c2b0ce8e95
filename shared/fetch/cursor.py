"""Sync cursors: per (connection, repository, resource), the committed high-water mark, the
ETag of the stable first page, and the checkpoint of a walk in progress.

A cursor's ``since`` moves only when a walk has finished and every record it saw is durably
written; between pages the walk itself is checkpointed (next page URL, the newest
``updated_at`` seen so far), so a crash or a time budget resumes from the last page written.

A sync that runs out of time continues in further runs; all of them share one ``round`` (the
first run's start, :func:`begin_round`), and a cursor remembers the round its last walk
finished in, so a continuation skips the lists its round already finished instead of asking
for them again (free 304s on GitHub and GitLab, one paid request each on Bitbucket and Jira).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.ports import DocumentStore

COLLECTION = "sync_cursors"


@dataclass
class Walk:
    next_url: str
    stop_before: str | None
    max_seen: str | None
    first_etag: str | None
    seen: list[str] = field(default_factory=list)  # ids, for full-list resources only
    pending: list[str] = field(default_factory=list)  # first pages of further scopes to walk
    started_at: str | None = None  # when its first page was asked for


@dataclass
class Cursor:
    id: str
    since: str | None = None
    etag: str | None = None
    walk: Walk | None = None
    round: str | None = None  # the sync round in which the last walk finished
    fresh_as_of: str | None = None  # when the last walk that finished complete began


def cursor_id(connection: str, repository: str, resource: str) -> str:
    return f"{connection}:{repository}:{resource}".replace("/", "%2F")


def load(store: DocumentStore, connection: str, repository: str, resource: str) -> Cursor:
    doc_id = cursor_id(connection, repository, resource)
    doc = store.get(COLLECTION, doc_id) or {}
    walk = doc.get("walk")
    return Cursor(doc_id, doc.get("since"), doc.get("etag"), Walk(**walk) if walk else None,
                  doc.get("round"), doc.get("fresh_as_of"))


def save(store: DocumentStore, cursor: Cursor, connection: str) -> None:
    doc: dict[str, Any] = {"connection": connection, "since": cursor.since, "etag": cursor.etag,
                           "walk": vars(cursor.walk) if cursor.walk else None,
                           "round": cursor.round, "fresh_as_of": cursor.fresh_as_of}
    store.put(COLLECTION, cursor.id, doc)


def begin_round(store: DocumentStore, connection: str, now: str, continuation: bool) -> str:
    """The sync round of a run: the stored one for a continuation, else a new one (``now``)."""
    doc_id = cursor_id(connection, "-", "~round")
    stored = (store.get(COLLECTION, doc_id) or {}).get("round")
    if continuation and isinstance(stored, str):
        return stored
    store.put(COLLECTION, doc_id, {"connection": connection, "round": now})
    return now
