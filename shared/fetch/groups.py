"""Children of several kinds for many items per GraphQL query (:class:`~shared.fetch.plan.
GroupSpec`: GitLab's notes and approvals of up to 100 merge requests), and the connection's
fallback to the REST child lists when the provider's GraphQL refuses the document.

For the changed items of one page, in chunks of ``batch_size``, the plan's ``read`` sends its
vetted document through :meth:`GroupReader.query` and writes what it finds with
:meth:`GroupReader.write` (the same records the REST child lists give). It reports, per REST
child name, the parents it read, those the provider refused for good (pending, as for
any child list) and those to read over REST instead (a parent whose next page of notes was
refused, or with more than 100 approvers).

The fallback: when the first query of a chunk is refused for good — the GraphQL endpoint
answers 404 (a self-managed GitLab without it), or answers the document with errors (a field
or argument the instance's schema lacks, a complexity or depth over its limits, any other
GraphQL error: :mod:`shared.fetch._graphql` reads them as a refusal) — every parent
of the page is read over REST instead, and the connection remembers it
(``graphql_unavailable`` on the connection document: ``{"reason", "since", "checked_at"}``):
it is logged once (``fetch.graphql_unavailable``), shown in ``sync_status.missing`` and the
connection's health (``graphql.unavailable: <why>``, :mod:`shared.fetch.pending`), and the
connection's syncs use REST without asking GraphQL again until :data:`REPROBE` has passed;
the first query that works again forgets it. A rejected token, a missing scope, rate limits
and transient failures raise as everywhere else.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from shared.clock import isoformat, parse_iso
from shared.errors import PermanentError
from shared.fetch import write as writes
from shared.fetch._graphql import GraphQLResponse
from shared.fetch.client import ProviderClient
from shared.fetch.errors import reason_or_raise
from shared.fetch.pending import GRAPHQL_FALLBACK, Failed
from shared.fetch.plan import GroupSpec, Parent
from shared.fetch.walk import Stats
from shared.log import get_logger
from shared.ports import MAX_BATCH_WRITES, Clock, DocumentStore
from shared.records.model import Context

log = get_logger("keyway.fetch")

CONNECTIONS = "connections"
FALLBACK_FIELD = GRAPHQL_FALLBACK
REPROBE = timedelta(days=1)


@dataclass
class GroupOutcome:
    """Per REST child name: parents read, refused for good, and to read over REST."""

    read: dict[str, list[Parent]] = field(default_factory=lambda: defaultdict(list))
    failed: dict[str, list[Failed]] = field(default_factory=lambda: defaultdict(list))
    rest: dict[str, list[Parent]] = field(default_factory=lambda: defaultdict(list))


def fallback_of(connection: dict[str, Any]) -> dict[str, Any] | None:
    """The connection's remembered GraphQL refusal, if any."""
    found = connection.get(FALLBACK_FIELD)
    return found if isinstance(found, dict) else None


class GroupReader:
    """Reads a :class:`GroupSpec` for one sync run of one connection."""

    def __init__(self, store: DocumentStore, client: ProviderClient, clock: Clock,
                 stats: Stats, connection: str) -> None:
        self._store, self._client, self._clock = store, client, clock
        self.stats, self._connection = stats, connection
        self._paths: dict[str, str] = {}
        self._mark: dict[str, Any] | None | bool = False  # False: not read yet this run
        self._buffer: list[dict] = []

    # ---- for the plan's read ------------------------------------------------------------------
    def query(self, document: str, variables: dict[str, Any]) -> GraphQLResponse:
        answer = self._client.graphql(document, variables)
        self.stats.requests += 1
        self.stats.graphql += 1
        self.stats.graphql_points += answer.cost if answer.cost is not None else 1
        return answer

    def write(self, produced: dict | list[dict] | None) -> None:
        """Queue records; they are written (:mod:`shared.fetch.write`) in one conditional
        batch per chunk of parents, or per 500 records; dropped if the chunk fails."""
        self._buffer += produced if isinstance(produced, list) else [produced] if produced else []
        if len(self._buffer) >= MAX_BATCH_WRITES:
            self.flush()

    def flush(self) -> None:
        buffered, self._buffer = self._buffer, []
        for record in writes.upsert_page(self._store, buffered):
            self.stats.wrote(record["kind"])

    def full_path(self, ctx: Context) -> str:
        """The repository's ``group/project`` path (its record's ``full_name``)."""
        repository = ctx.repository or ""
        if repository not in self._paths:
            doc = self._store.get("repositories", repository) or {}
            self._paths[repository] = str(doc.get("full_name") or "")
        return self._paths[repository]

    # ---- for the sync -------------------------------------------------------------------------
    def fetch(self, spec: GroupSpec, ctx: Context, parents: list[Parent]) -> GroupOutcome:
        outcome = GroupOutcome()
        if self._remembered():
            return self._all_rest(spec, parents, outcome)
        for start in range(0, len(parents), spec.batch_size):
            chunk = parents[start:start + spec.batch_size]
            try:
                spec.read(self, ctx, chunk, outcome)
            except PermanentError as e:
                self._buffer = []  # the chunk is read over REST
                reason = reason_or_raise(e)  # a rejected token or a missing scope fails the run
                self._remember(reason, getattr(e, "types", ()))
                return self._all_rest(spec, parents[start:], outcome)
            except BaseException:
                self._buffer = []  # nothing of a chunk the run fails on (a partial answer)
                raise
            self.flush()
            self._forget()
        return outcome

    @staticmethod
    def _all_rest(spec: GroupSpec, parents: list[Parent], outcome: GroupOutcome
                  ) -> GroupOutcome:
        for name in spec.children:
            outcome.rest[name] += parents
        return outcome

    def _remembered_mark(self) -> dict[str, Any] | None:
        """The connection's mark, read once per run (this run keeps it current)."""
        if self._mark is False:
            self._mark = fallback_of(self._store.get(CONNECTIONS, self._connection) or {})
        return self._mark if isinstance(self._mark, dict) else None

    def _remembered(self) -> bool:
        found = self._remembered_mark()
        if found is None:
            return False
        checked = found.get("checked_at") or found.get("since")
        return bool(checked) and self._clock.now() < parse_iso(checked) + REPROBE

    def _remember(self, reason: str, types: tuple[str, ...]) -> None:
        now = isoformat(self._clock.now())

        def write(tx) -> bool:
            doc = tx.get(CONNECTIONS, self._connection)
            if doc is None:
                return False
            before = fallback_of(doc)
            doc[FALLBACK_FIELD] = {"reason": reason, "checked_at": now,
                                   "since": before["since"] if before else now}
            tx.put(CONNECTIONS, self._connection, doc)
            self._mark = doc[FALLBACK_FIELD]
            return before is None

        if self._store.transaction(write):
            log.warning("fetch.graphql_unavailable", extra={"fields": {
                "connection": self._connection, "reason": reason, "types": list(types),
                "fallback": "rest"}})

    def _forget(self) -> None:
        if self._remembered_mark() is None:
            return
        self._mark = None

        def write(tx) -> None:
            doc = tx.get(CONNECTIONS, self._connection)
            if doc is not None and doc.pop(FALLBACK_FIELD, None) is not None:
                tx.put(CONNECTIONS, self._connection, doc)

        self._store.transaction(write)
        log.info("fetch.graphql_available", extra={"fields": {"connection": self._connection}})
