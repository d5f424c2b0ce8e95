"""List totals asked of the provider (:mod:`shared.fetch.reconcile_signals`): where no list
keyway reads carries its total, a count request gives it —

* Jira: ``POST /rest/api/3/search/approximate-count`` (``{"jql": "project = <id>"}`` →
  ``{"count"}``), one request per project, for its issues (:class:`RestCount`);
* GitHub: the GraphQL document ``repository_totals`` (:mod:`shared.fetch.github.graphql`):
  ``totalCount`` of ``issues``, ``pullRequests`` and ``labels`` for up to 100 repositories a
  query by their ``node_id`` (:class:`GitHubTotals`): the first repository found due asks for
  every due repository of the connection at once, and the others use that answer.

A total below the live records stored of its list gets one sweep of that list; a total equal
or above costs nothing more.

Counting spends requests (and GitHub points), so it runs at most once per ``period`` per
repository (``KEYWAY_RECONCILE_TOTALS_HOURS``; ``0``: every sync), remembered in the
repository's ``reconcile_state`` document (``totals_due_at``). A repository's first due time is
a jittered fraction of the period away, as the full sweep's is (its first sync has just read
everything); GitHub's jitter is the connection's, so its repositories fall due together and
share queries. A count the provider refuses (4xx, GraphQL ``errors``), cannot give (5xx) or
answers malformed is logged (``fetch.reconcile_total_failed``, with the error's key), changes
no record, and is asked again at the next sync. A refusal (403, 404, another 4xx or GraphQL
error) is also remembered on the repository's ``reconcile_state`` (``totals_refused: true``,
``totals_refused_reason``, ``totals_refused_since``) until a count is answered, and the count
is asked again a period later, not at the next sync; the sync status lists it as missing
(``totals.unavailable: <why>``, :func:`shared.fetch.pending.summary`), so the connection reads
degraded while deletions of that list go unseen. A GitHub node (or a total in it) answered
``null`` with a ``NOT_FOUND``/``FORBIDDEN`` error at its path is such a refusal (``not_found``,
``permission``); ``null`` without one is malformed."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from shared.clock import isoformat, parse_iso
from shared.fetch.client import ProviderClient
from shared.fetch.errors import (
    MalformedResponse,
    NotFoundAtProvider,
    ProviderRefused,
    ProviderUnavailable,
    unavailable_reason,
)
from shared.fetch.reconcile_state import COLLECTION, jitter
from shared.fetch.reconcile_state import TOTALS_REFUSED as REFUSED
from shared.log import get_logger
from shared.ports import DocumentStore, Filter
from shared.records.model import Context

log = get_logger("keyway.fetch")
FAILURES = (MalformedResponse, NotFoundAtProvider, ProviderRefused, ProviderUnavailable)


@dataclass(frozen=True)
class TotalQuery:
    """One count request: the plan's list it counts (``list_name``), the allowlisted
    ``template`` POSTed, its JSON ``body`` from the repository's parameters, and how the
    count is read from the answer (None: malformed)."""

    list_name: str
    template: str
    body: Callable[[Mapping[str, str]], dict]
    read: Callable[[Any], int | None]


def _count(body: Any) -> int | None:
    value = body.get("count") if isinstance(body, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 \
        else None


QUERIES: dict[str, TotalQuery] = {
    "jira": TotalQuery("issues", "POST /rest/api/3/search/approximate-count",
                       lambda p: {"jql": f"project = {int(p['project'])}"}, _count),
}


def due(store: DocumentStore, repository: str, connection: str, now: str, period: timedelta,
        spread: str) -> bool:
    """Whether the repository's count is due (always with a zero period); ``spread``: what
    its first due time's jitter is drawn from."""
    if not period:
        return True
    state = store.get(COLLECTION, repository)
    if state is None or not state.get("totals_due_at"):
        first = parse_iso(now) + period * jitter(f"totals:{spread}")
        store.put(COLLECTION, repository, {
            **(state or {}), "connection": connection, "totals_due_at": isoformat(first)})
        return False
    return str(state["totals_due_at"]) <= now


def counted(store: DocumentStore, ctx: Context, now: str, period: timedelta) -> None:
    """Note that the repository was counted: next due one ``period`` from ``now``."""
    if not period:
        return
    state = store.get(COLLECTION, ctx.repository or "") or {"connection": ctx.connection}
    store.put(COLLECTION, ctx.repository or "", {
        **state, "totals_due_at": isoformat(parse_iso(now) + period)})


def _failed(ctx: Context, lists: str, error: Exception) -> None:
    log.warning("fetch.reconcile_total_failed", extra={"fields": {
        "connection": ctx.connection, "repository": ctx.repository, "list": lists,
        "reason": getattr(error, "key", "provider.malformed")}})


def settle(store: DocumentStore, repository: str, connection: str, now: str,
           error: Exception | None, period: timedelta = timedelta(0)) -> None:
    """Remember (``error`` a refusal) or forget (``error`` None: answered) that the provider
    refuses the repository's count; writes only on a change. A refusal also moves the next
    count a ``period`` away (a refused count asked at every sync would cost a request each
    time, and the status already says it is missing). A transient failure (5xx, malformed)
    changes nothing: it is asked again at the next sync."""
    why = unavailable_reason(error) if isinstance(error, ProviderRefused | NotFoundAtProvider) \
        else None
    if error is not None and why is None:
        return
    state = store.get(COLLECTION, repository)
    if why is None:
        if state is not None and state.get(REFUSED):
            store.put(COLLECTION, repository, {**state, REFUSED: False,
                                               f"{REFUSED}_reason": None,
                                               f"{REFUSED}_since": None})
        return
    state = state or {"connection": connection}
    changes = {"connection": connection, REFUSED: True, f"{REFUSED}_reason": why,
               f"{REFUSED}_since": state.get(f"{REFUSED}_since") or now}
    if period:
        changes["totals_due_at"] = isoformat(parse_iso(now) + period)
    if any(state.get(k) != v for k, v in changes.items()):
        store.put(COLLECTION, repository, {**state, **changes})


@dataclass
class RestCount:
    """One count request per repository (:data:`QUERIES`)."""

    client: ProviderClient
    store: DocumentStore
    period: timedelta
    query: TotalQuery
    requests: int = 0

    def said(self, ctx: Context, params: Mapping[str, str], now: str) -> dict[str, int] | None:
        """``{list name: total}`` when due and answered, else None (a failure is logged)."""
        if not due(self.store, ctx.repository or "", ctx.connection, now, self.period,
                   ctx.repository or ""):
            return None
        self.requests += 1
        repository = ctx.repository or ""
        try:
            answer = self.client.post(self.query.template, {}, self.query.body(params))
            count = self.query.read(answer.body)
            if count is None:
                raise MalformedResponse(f"{self.query.template}: no count in the answer")
        except FAILURES as e:
            _failed(ctx, self.query.list_name, e)
            settle(self.store, repository, ctx.connection, now, e, self.period)
            return None
        settle(self.store, repository, ctx.connection, now, None)
        return {self.query.list_name: count}


#: GitHub's ``repository_totals`` connections → the plan's list each counts.
GITHUB_LISTS = {"issues": "issues", "pullRequests": "pulls", "labels": "labels"}
GITHUB_BATCH = 100  # node ids a query (GitHub's nodes(ids:) limit)


@dataclass
class GitHubTotals:
    """Totals of several repositories a GraphQL query; :attr:`answers` holds this run's."""

    client: ProviderClient
    store: DocumentStore
    period: timedelta
    requests: int = 0
    points: int = 0
    answers: dict[str, dict[str, int] | None] = field(default_factory=dict)
    repositories: dict[str, str] = field(default_factory=dict)  # node id → repository record

    def said(self, ctx: Context, params: Mapping[str, str], now: str) -> dict[str, int] | None:
        repo = self.store.get("repositories", ctx.repository or "") or {}
        node = repo.get("node_id")
        if not isinstance(node, str) or not node:
            return None
        if node not in self.answers:
            if not due(self.store, ctx.repository or "", ctx.connection, now, self.period,
                       ctx.connection):
                return None
            self.repositories[node] = ctx.repository or ""
            self._ask(ctx, [node, *self._others_due(ctx, node, now)], now)
        return self.answers.get(node)

    def _others_due(self, ctx: Context, node: str, now: str) -> list[str]:
        """The connection's other repositories due now or within a 24th of the period (their
        first due times were set moments apart): asked in the same query."""
        found, now = [], isoformat(parse_iso(now) + self.period / 24)
        for snap in self.store.query("repositories", [
                Filter("connection", "==", ctx.connection), Filter("deleted", "==", False)]):
            other = snap.data.get("node_id")
            if isinstance(other, str) and other and other != node \
                    and other not in self.answers and len(found) < GITHUB_BATCH - 1 \
                    and due(self.store, snap.id, ctx.connection, now, self.period,
                            ctx.connection):
                found.append(other)
                self.repositories[other] = snap.id
        return found

    def _ask(self, ctx: Context, ids: list[str], now: str) -> None:
        for node in ids:
            self.answers[node] = None  # asked: not asked again this run, whatever came back
        self.requests += 1
        try:
            answer = self.client.graphql("repository_totals", {"ids": ids})
            nodes = answer.data.get("nodes")
            if not isinstance(nodes, list) or len(nodes) != len(ids):
                raise MalformedResponse("repository_totals: nodes do not match the ids")
        except FAILURES as e:
            _failed(ctx, "issues,pulls,labels", e)
            for node in ids:
                settle(self.store, self.repositories[node], ctx.connection, now, e,
                       self.period)
            return
        self.points += answer.cost if answer.cost is not None else 1
        refusals = {**_at_nodes(answer.missing, NotFoundAtProvider(
            "repository_totals: the node is not shown")), **_at_nodes(answer.forbidden,
            ProviderRefused("repository_totals: a total is forbidden", provider_status=403,
                            types=("FORBIDDEN",)))}
        for index, (node, item) in enumerate(zip(ids, nodes, strict=True)):
            self.answers[node] = _github_totals(item) if isinstance(item, dict) else None
            refused = refusals.get(index)
            if self.answers[node] is None and refused is not None:  # refused at that node
                _failed(ctx, "issues,pulls,labels", refused)
                settle(self.store, self.repositories[node], ctx.connection, now, refused,
                       self.period)
            elif self.answers[node] is None:
                _failed(ctx, "issues,pulls,labels", MalformedResponse("no totalCount"))
            else:
                settle(self.store, self.repositories[node], ctx.connection, now, None)


def _at_nodes(paths: Any, error: Exception) -> dict[int, Exception]:
    """``{index: error}`` for the error paths that point into ``nodes[index]``."""
    return {path[1]: error for path in paths
            if len(path) > 1 and path[0] == "nodes" and isinstance(path[1], int)}


def _github_totals(item: Mapping[str, Any]) -> dict[str, int] | None:
    found = {}
    for connection, name in GITHUB_LISTS.items():
        value = item.get(connection)
        count = _count({"count": value.get("totalCount")} if isinstance(value, dict) else None)
        if count is None:
            return None
        found[name] = count
    return found


def source(plan_provider: str, client: ProviderClient, store: DocumentStore,
           period: timedelta) -> RestCount | GitHubTotals | None:
    """What counts ``plan_provider``'s list totals (None: nothing to ask)."""
    if plan_provider == "github":
        return GitHubTotals(client, store, period)
    query = QUERIES.get(plan_provider)
    return None if query is None else RestCount(client, store, period, query)
