"""Walk one provider list, newest first, writing records and checkpointing after each page.

1. No walk in progress: request the first page with the stored ETag. ``304`` → nothing
   changed, done (no quota spent). Otherwise start a walk that stops at the first item older
   than the cursor's ``since`` minus :data:`OVERLAP` (a full list never stops early; the
   item's time is read from the list's ``updated_key``). A list with a ``query`` sends that
   bound to the provider as well (Jira: JQL ``updated >=``, to the minute: the overlap covers
   the lost seconds and the upserts dedupe what it re-reads; Bitbucket: BBQL
   ``updated_on >``, so an unchanged list answers one empty page).
2. Each page: normalize every item; hand the items whose record is newer than the stored one
   to ``on_changed`` (their children are fetched and written, in batches where the plan
   says so); then upsert every item (idempotent; older data never overwrites newer; the
   page's stored versions are read in one call and its records written in one conditional
   batch, :mod:`shared.fetch.write`); then
   checkpoint the next page URL and the newest ``updated_at`` seen — at most once per
   :data:`CHECKPOINT_SECONDS` per list (Firestore sustains about one write per second per
   document), and always before returning for lack of time or raising (a rate limit, a
   failure); a process that dies mid-walk re-reads the pages since its last checkpoint, which
   the upserts dedupe. Children go first so a
   crash or a rate limit before the items are written loses nothing: the resumed page finds
   the same items still changed and fetches their children again.
3. The last page: the cursor's ``since`` becomes the newest ``updated_at`` seen, the first
   page's ETag is stored, and a full list marks records it no longer contains as deleted
   (within the parent, for a child list); a repository the repositories list no longer
   contains left the connection's reach: it and every record under it become tombstones with
   reason ``access_lost``. A full list's items are written with the walk's start as their
   sighting time, so one the list shows again after its tombstone is restored.

A list walked over several scopes (``more``: Bitbucket's repositories, one list per workspace)
is one walk: the first pages of the other scopes wait in the checkpoint (``pending``) and the
deletions are reconciled once, after the last. It never uses an ETag.

Returns ``False`` when the time budget ran out between pages (the checkpoint resumes it).
After a walk that returned ``True``, :attr:`Walker.fresh` is when the list was last known
complete: the time its finished walk began (kept in the cursor as ``fresh_as_of``, so a walk
resumed in a continuation keeps its first run's start), the time of a ``304`` (nothing
changed), or for a list its round had already finished, the time stored then. An
``observer`` (:class:`shared.fetch.progress.Progress`) hears of every page and finished walk of
a list (child lists' requests count with their parent's page).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from shared.clock import isoformat, parse_iso
from shared.fetch import cursor as cursors
from shared.fetch import write as writes
from shared.fetch.client import ApiResponse, ProviderClient
from shared.fetch.errors import MalformedResponse
from shared.fetch.plan import ListSpec, Parent, ScopeList
from shared.ports import Clock, DocumentStore, Filter
from shared.records import store as records
from shared.records.model import Context, parent_id

OVERLAP = timedelta(minutes=5)
PARENT_FIELD = {"reviews": "pull_request", "comments": "parent"}  # child kind → its parent id
MAX_SCOPE_PAGES = 100
CHECKPOINT_SECONDS = 1.25  # at most one checkpoint write per list per this (no hot document)


def page_items(body: Any, key: str | None) -> list:
    """The items of one page: the body itself, or the list under ``key`` of an envelope."""
    items = body.get(key) if key is not None and isinstance(body, dict) else body
    if not isinstance(items, list):
        raise MalformedResponse("expected a list" + (f" under {key!r}" if key else ""))
    return items


@dataclass
class Stats:
    requests: int = 0  # every request sent, GraphQL queries included
    not_modified: int = 0
    written: int = 0
    deleted: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    graphql: int = 0  # GraphQL queries (also counted in ``requests``)
    graphql_points: int = 0  # the points they cost, as the provider reported them
    missing: int = 0  # parents whose children the provider refused (see shared.fetch.pending)
    retried: int = 0  # parents whose children an earlier sync missed, read again
    lists: dict[str, dict] = field(default_factory=dict)  # per list (shared.fetch.progress)

    def wrote(self, kind: str) -> None:
        self.written += 1
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1


class Walker:
    def __init__(self, store: DocumentStore, client: ProviderClient, clock: Clock,
                 deadline: float, stats: Stats, round_: str | None = None) -> None:
        self._store, self._client, self._clock = store, client, clock
        self._deadline, self.stats, self.round = deadline, stats, round_
        self.observer: Any = None  # shared.fetch.progress.Progress, when the run reports it
        # (spec, ctx, every item of the page, the answer) of each written page of a top-level
        # list: count signals (shared.fetch.reconcile_signals), when the run compares them
        self.signals: Callable[[ListSpec, Context, list[dict], ApiResponse], None] | None = None
        self.fresh: str | None = None  # see the module docstring

    def out_of_time(self) -> bool:
        """Past the deadline — once this run has made progress (one page that was not a 304),
        so every run moves forward however small its budget."""
        progressed = self.stats.requests > self.stats.not_modified
        return progressed and self._clock.monotonic() >= self._deadline

    def walk(self, spec: ListSpec, ctx: Context, path_params: Mapping[str, str],
             cursor: cursors.Cursor, parent: Parent | None = None,
             on_changed: Callable[[list[dict]], None] | None = None,
             budgeted: bool = True, more: Sequence[Mapping[str, str]] = ()) -> bool:
        """Walk ``spec``; ``False`` if the budget ran out between pages (never when
        ``budgeted`` is false: a child list is short and is finished with its parent).
        ``more``: path parameters of further scopes walked as part of this (full) walk."""
        walk, self.fresh = cursor.walk, None
        if (walk is None and parent is None and self.round is not None
                and cursor.round == self.round):
            return self._done(spec, ctx, parent, cursor.fresh_as_of)  # finished this round
        if walk is None:
            stop = None if spec.full or cursor.since is None else isoformat(
                parse_iso(cursor.since) - OVERLAP)
            started = isoformat(self._clock.now())
            response = self._get(spec, path_params, None if more else cursor.etag, stop)
            if response.not_modified:
                return self._done(spec, ctx, parent, started)
            pending = [self._client.url(spec.template, *self._request(spec, p, stop))
                       for p in more]
            walk = cursors.Walk("", stop, None, None if more else response.etag,
                                pending=pending, started_at=started)
        else:
            response = self._next(spec, walk.next_url)
        saved, unsaved = self._clock.monotonic(), False
        try:
            while True:
                reached = self._consume(spec, ctx, response, walk, parent, on_changed)
                next_url = None if reached else response.next_url
                if self.observer is not None and parent is None:
                    exact = not walk.pending and (walk.stop_before is None
                                                  or spec.query is not None)
                    self.observer.page(spec, response, exact, ctx.repository is not None)
                if not next_url and walk.pending:
                    next_url = walk.pending.pop(0)
                if not next_url:
                    unsaved = False
                    self._finish(spec, ctx, cursor, walk, parent)
                    return self._done(spec, ctx, parent, walk.started_at)
                walk.next_url, cursor.walk, unsaved = next_url, walk, True
                stop = budgeted and self.out_of_time()
                if stop or self._clock.monotonic() - saved >= CHECKPOINT_SECONDS:
                    cursors.save(self._store, cursor, ctx.connection)
                    saved, unsaved = self._clock.monotonic(), False
                if stop:
                    return False
                response = self._next(spec, walk.next_url)
        except BaseException:
            if unsaved:  # a rate limit or a failure: keep the pages done (best effort)
                with suppress(Exception):
                    cursors.save(self._store, cursor, ctx.connection)
            raise

    def take(self, spec: ListSpec, ctx: Context, parent: Parent, body: Any,
             cursor: cursors.Cursor) -> None:
        """Write a child list's whole answer ``body`` that its parent's list item carried
        (:attr:`ListSpec.embedded`): as a one-page walk of that list, without a request."""
        walk = cursors.Walk("", None, None, None, started_at=isoformat(self._clock.now()))
        answer = ApiResponse(200, body, None, None, False, {})
        self._consume(spec, ctx, answer, walk, parent, None)
        self._finish(spec, ctx, cursor, walk, parent)

    def _done(self, spec: ListSpec, ctx: Context, parent: Parent | None,
              fresh: str | None) -> bool:
        self.fresh = fresh
        if self.observer is not None and parent is None:
            self.observer.finished(spec, ctx.repository is not None)
        return True

    def collect(self, scopes: ScopeList) -> list[dict]:
        """Every item of a scope list (Bitbucket's workspaces), all pages; nothing is written."""
        response = self._client.get(scopes.template, {}, scopes.params)
        found: list[dict] = []
        for _ in range(MAX_SCOPE_PAGES):
            self._count(response)
            found += [i for i in page_items(response.body, scopes.items_key)
                      if isinstance(i, dict)]
            if not response.next_url:
                return found
            response = self._client.get_next(response.next_url, scopes.template)
        raise MalformedResponse(f"more than {MAX_SCOPE_PAGES} pages of {scopes.template}")

    @staticmethod
    def _request(spec: ListSpec, path_params: Mapping[str, str],
                 stop: str | None) -> tuple[Mapping[str, str], dict[str, Any]]:
        """The path and query parameters of a first page: a list with a ``query`` sends the
        walk's lower bound to the provider and takes the walk parameters it needs."""
        params = dict(spec.params)
        if spec.query is not None:
            params.update(spec.query(path_params, stop))
            path_params = {k: v for k, v in path_params.items() if f"{{{k}}}" in spec.template}
        return path_params, params

    def _get(self, spec: ListSpec, path_params: Mapping[str, str], etag: str | None,
             stop: str | None):
        path_params, params = self._request(spec, path_params, stop)
        response = self._client.get(spec.template, path_params, params, etag=etag)
        self._count(response)
        return response

    def _next(self, spec: ListSpec, url: str) -> ApiResponse:
        response = self._client.get_next(url, spec.template)
        self._count(response)
        return response

    def _count(self, response: ApiResponse) -> None:
        self.stats.requests += 1
        self.stats.not_modified += response.not_modified

    def _consume(self, spec: ListSpec, ctx: Context, response: ApiResponse, walk: cursors.Walk,
                 parent: Parent | None,
                 on_changed: Callable[[list[dict]], None] | None) -> bool:
        """Write one page (children first, see the module docstring); True once an item
        older than the walk's stop point was reached."""
        items = [response.body] if spec.single else page_items(response.body, spec.items_key)
        page: list[tuple[dict, list[dict]]] = []
        reached = False
        for raw in items:
            if not isinstance(raw, dict):
                raise MalformedResponse("expected objects in the list")
            updated = raw.get(spec.updated_key)
            if walk.stop_before and updated and isoformat(parse_iso(updated)) < walk.stop_before:
                reached = True
                break
            produced = spec.normalize(raw, ctx, parent)
            page.append((raw, produced if isinstance(produced, list)
                         else [produced] if produced else []))
        known = writes.read(self._store, [r for _, batch in page for r in batch])
        if on_changed:
            changed = [raw for raw, batch in page
                       if any(writes.is_newer(record, known) for record in batch)]
            if changed:
                on_changed(changed)
        self._write(spec, [record for _, batch in page for record in batch], walk, known)
        if self.signals is not None and parent is None:  # past the stop point too: read anyway
            self.signals(spec, ctx, items, response)
        return reached

    def _write(self, spec: ListSpec, batch: list[dict], walk: cursors.Walk,
               known: writes.Read) -> None:
        # a full list's sighting clears a tombstone older than the walk
        seen_at = walk.started_at if spec.full else None
        for record in writes.upsert_page(self._store, batch, known=known, seen_at=seen_at):
            self.stats.wrote(record["kind"])
        for record in batch:
            if spec.full:
                walk.seen.append(record["id"])
            if record.get("updated_at") and (walk.max_seen or "") < record["updated_at"]:
                walk.max_seen = record["updated_at"]

    def _finish(self, spec: ListSpec, ctx: Context, cursor: cursors.Cursor,
                walk: cursors.Walk, parent: Parent | None = None) -> None:
        if spec.full:
            self._reconcile(spec, ctx, set(walk.seen), parent)
        if walk.max_seen and (cursor.since or "") < walk.max_seen:
            cursor.since = walk.max_seen
        cursor.etag, cursor.walk, cursor.round = walk.first_etag, None, self.round
        cursor.fresh_as_of = walk.started_at
        cursors.save(self._store, cursor, ctx.connection)

    def _reconcile(self, spec: ListSpec, ctx: Context, seen: set[str],
                   parent: Parent | None = None) -> None:
        where = [Filter("connection", "==", ctx.connection), Filter("deleted", "==", False)]
        if ctx.repository and spec.kind != "repositories":
            where.append(Filter("repository", "==", ctx.repository))
        if parent is not None:  # a full child list is complete for its parent only
            where.append(Filter(PARENT_FIELD[spec.kind], "==",
                                parent_id(ctx, parent.kind, parent.number)))
        now = isoformat(self._clock.now())
        for snap in self._store.query(spec.kind, where):
            if snap.id in seen:
                continue
            if spec.kind == "repositories":  # out of the connection's reach: it and its records
                self.stats.deleted += records.mark_repository_gone(self._store, snap.id, now,
                                                                   "access_lost")
            elif records.mark_deleted(self._store, spec.kind, snap.id, now):
                self.stats.deleted += 1
