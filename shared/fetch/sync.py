"""One sync run of one connection: repositories, then each repository's lists, then the
children of every item that changed — within a time budget, resumable from checkpoints.

Quota: every first page is conditional (ETag), so an unchanged connection costs only 304s;
children (reviews, notes, approvals) are fetched only for items whose record changed — per
item over REST (:class:`~shared.fetch.plan.ListSpec`), or up to 100 items per GraphQL query
(:class:`~shared.fetch.plan.BatchSpec`, :mod:`shared.fetch.batch`), or several kinds of
children of up to 100 items per GraphQL query with a REST fallback
(:class:`~shared.fetch.plan.GroupSpec`, :mod:`shared.fetch.groups`). A provider without ETags
(Bitbucket) pays one request per list instead, narrowed to what changed (``ListSpec.query``);
its repositories are listed per workspace (``repository_scopes``), one request for the
workspaces plus one page per workspace.
A child list the provider refuses permanently (403/404, GraphQL ``FORBIDDEN``) does not fail
the run: its parents are written, the parents missing their children are remembered
(:mod:`shared.fetch.pending`) and the next sync of that repository reads those children first,
before its lists (which answer 304 for unchanged parents); the status shows what is missing.
Every written page of a top-level list is handed to :mod:`shared.fetch.reconcile_signals`;
once the repository's lists are done they sweep one parent's children where the count an item
carries says fewer than are stored, or one list where its total does (deletions the incremental
read cannot see).
Between the repository list and the repositories' own lists, ``on_repositories`` (the webhook
registrar, when the connection registers hooks) sees the connection's live repositories and
when the run's time budget is spent.
Each repository's lists that finished complete move its records' freshness forward, and every
run ends by rewriting the connection's freshness summary (:mod:`shared.freshness`); a
``progress`` (:mod:`shared.fetch.progress`) is told of every page while the run goes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from shared import freshness
from shared.clock import isoformat
from shared.errors import PermanentError
from shared.fetch import cursor as cursors
from shared.fetch import pending
from shared.fetch.batch import BatchFetcher
from shared.fetch.client import ProviderClient
from shared.fetch.errors import reason_or_raise
from shared.fetch.groups import GroupReader
from shared.fetch.plan import BatchSpec, GroupSpec, ListSpec, Parent, ProviderPlan
from shared.fetch.progress import Progress
from shared.fetch.reconcile_signals import Signals
from shared.fetch.walk import Stats, Walker
from shared.log import get_logger
from shared.ports import Filter, Ports, Snapshot
from shared.records.model import Context

log = get_logger("keyway.fetch")

CONNECTION_SCOPE = "-"


@dataclass
class SyncResult:
    finished: bool
    stats: Stats


class SyncRun:
    """One run; ``continuation``: it continues a sync whose earlier run ran out of time, so
    the lists that sync already finished are not walked again (see :mod:`.cursor`)."""

    def __init__(self, ports: Ports, client: ProviderClient, plan: ProviderPlan, tenant: str,
                 connection: str, budget_seconds: float, continuation: bool = False,
                 on_repositories: Callable[[list[Snapshot], Callable[[], bool]], object]
                 | None = None, progress: Progress | None = None,
                 totals_period: timedelta | None = None) -> None:
        self._ports, self._plan, self._on_repositories = ports, plan, on_repositories
        doc = (ports.business.get("connections", connection) or {}) if (
            plan.site_of or plan.connection_params or plan.repositories_for) else {}
        self._repositories_spec = plan.repositories_of(doc)
        self._settings = plan.connection_params(doc) if plan.connection_params else {}
        # observed_at: the updated_at of records whose provider gives none (labels)
        now = isoformat(ports.clock.now())
        self._base = Context(tenant, plan.provider, connection, observed_at=now,
                             site=plan.site_of(doc) if plan.site_of else None)
        self._deadline = ports.clock.monotonic() + budget_seconds
        self.stats = Stats()
        round_ = cursors.begin_round(ports.business, connection, now, continuation)
        self._walker = Walker(ports.business, client, ports.clock, self._deadline, self.stats,
                              round_)
        self._batches = BatchFetcher(ports.business, client, self.stats)
        self._groups = GroupReader(ports.business, client, ports.clock, self.stats, connection)
        self._pending = pending.PendingBook(ports.business, connection, round_, now)
        self.signals = Signals(ports, client, plan,  # count signals → targeted sweeps
                               totals_period=totals_period)
        self._progress, self._listed = progress, None
        if progress is not None:
            progress.attach(self.stats, client.pagination)
            self._walker.observer = progress

    def run(self) -> SyncResult:
        """Walk everything within the budget; the connection's freshness summary is rewritten
        however the run ends."""
        try:
            return self._run()
        finally:
            freshness.record_connection(self._ports, self._base.connection, self._kinds_of,
                                        self._listed)

    def _kinds_of(self, repo: dict) -> set[str]:
        return {kind for spec in self._lists_of(repo) for _, kind in self._kinds(spec)}

    def _kinds(self, spec: ListSpec) -> list[tuple[str, str]]:
        """(list name, kind) of what a list's walk completes: its own kind and its children's
        (read with the items that changed)."""
        return [(spec.name, spec.kind)] + [(spec.name, kind) for c in spec.children
                                           for kind in self._child_kinds(c)]

    def _child_kinds(self, name: str) -> list[str]:
        """The record kinds child ``name`` writes: a GraphQL group writes those of the REST
        child lists it stands for."""
        child = self._plan.children[name]
        if isinstance(child, GroupSpec):
            return [self._plan.children[c].kind for c in child.children]
        return [child.kind]

    def _lists_of(self, repo: dict) -> list[ListSpec]:
        return [s for s in self._plan.resources if s.applies is None or s.applies(repo)]

    def _run(self) -> SyncResult:
        store, connection = self._ports.business, self._base.connection
        spec = self._repositories_spec
        cursor = cursors.load(store, connection, CONNECTION_SCOPE, spec.name)
        if not self._repositories(spec, cursor):
            return SyncResult(False, self.stats)
        self._listed = self._walker.fresh
        repos = store.query("repositories", [Filter("connection", "==", connection),
                                             Filter("deleted", "==", False)])
        if self._progress is not None:
            self._progress.repositories({s.name: sum(
                1 for r in repos if s.applies is None or s.applies(r.data))
                for s in self._plan.resources})
        self._pending.keep_only({repo.id for repo in repos})
        if self._on_repositories is not None:  # webhook registration (shared.webhooks.register)
            self._on_repositories(repos, self._past_deadline)
        for repo in repos:
            if not self._repository(repo.id, repo.data):
                return SyncResult(False, self.stats)
        return SyncResult(True, self.stats)

    def _repositories(self, spec: ListSpec, cursor: cursors.Cursor) -> bool:
        """The repositories list: one list, or one per container (Bitbucket workspaces), all
        walked as one so that deletions are reconciled across every container."""
        scopes = self._plan.repository_scopes
        if scopes is None or cursor.walk is not None or cursor.round == self._walker.round:
            return self._walker.walk(spec, self._base, {}, cursor)  # scopes: not needed
        params = [scopes.path_params(item) for item in self._walker.collect(scopes)]
        if not params:  # no container: nothing to list (and nothing is reconciled away)
            return True
        return self._walker.walk(spec, self._base, params[0], cursor, more=params[1:])

    def _past_deadline(self) -> bool:
        return self._ports.clock.monotonic() >= self._deadline

    def _repository(self, repo_id: str, repo: dict) -> bool:
        """The repository's lists; the kinds whose lists all finished get fresher, however
        the walk ends (:mod:`shared.freshness`)."""
        if self._walker.out_of_time():
            return False
        lists, finished = self._lists_of(repo), {}
        try:
            return self._walk_lists(repo_id, repo, lists, finished)
        finally:
            freshness.record_repository(self._ports.business, repo_id, freshness.complete_kinds(
                [pair for s in lists for pair in self._kinds(s)], finished))

    def _walk_lists(self, repo_id: str, repo: dict, lists: list[ListSpec],
                    finished: dict[str, str | None]) -> bool:
        ctx = dataclasses.replace(self._base, repository=repo_id)
        params = {**self._settings, **self._plan.repo_params(repo)}
        self._walker.signals = lambda spec, c, raws, answer: self.signals.page(
            spec, c, raws, params, answer.headers)
        self.signals.discard()
        self._retry_pending(ctx)
        for spec in lists:
            if self._walker.out_of_time():
                return False
            cursor = cursors.load(self._ports.business, ctx.connection, repo_id, spec.name)
            on_changed = (lambda raws, s=spec: self._children(s.children, ctx, raws, params)
                          ) if spec.children else None
            if not self._walker.walk(spec, ctx, params, cursor, on_changed=on_changed):
                return False
            finished[spec.name] = self._walker.fresh
        self._settle_signals(ctx, params)
        return True

    def _settle_signals(self, ctx: Context, params: Mapping[str, str]) -> None:
        """The repository's lists all finished: sweep the parents whose child count disagrees
        with the store (their requests and tombstones count in the run's figures)."""
        tally = self.signals.tally
        before = tally.requests, tally.tombstoned, tally.points
        self.signals.settle(ctx, self._pending.remembered(ctx.repository or ""), params)
        self.stats.requests += tally.requests - before[0]
        self.stats.deleted += tally.tombstoned - before[1]
        self.stats.graphql_points += tally.points - before[2]

    def _retry_pending(self, ctx: Context) -> None:
        """The children the provider refused in an earlier round, read first: their parents
        are unchanged, so the lists will not offer them again."""
        for name, spec in self._plan.children.items():
            parents = self._pending.due(ctx.repository or "", name)
            if parents:
                self.stats.retried += len(parents)
                self._read(spec, ctx, parents)

    def _children(self, names: tuple[str, ...], ctx: Context, raws: list[dict],
                  params: Mapping[str, str]) -> None:
        """The children of one page's changed items ``raws``: batched or per item."""
        parent_of = self._plan.parent_of
        assert parent_of is not None
        for name in names:
            spec = self._plan.children[name]
            node_id = spec.node_id if isinstance(spec, BatchSpec) else None
            unread = self._embedded(spec, ctx, raws, lambda raw, n=name: parent_of(n, raw, params))
            self._read(spec, ctx, [(node_id(raw) if node_id else None,
                                    parent_of(name, raw, params)) for raw in unread])

    def _embedded(self, spec: ListSpec | BatchSpec | GroupSpec, ctx: Context, raws: list[dict],
                  parent_of: Callable[[dict], Parent]) -> list[dict]:
        """Write the children the parents' list items carried whole (``ListSpec.embedded``);
        returns the parents whose children must still be read."""
        if not isinstance(spec, ListSpec) or spec.embedded is None:
            return raws
        unread, taken = [], []
        for raw in raws:
            body = spec.embedded(raw)
            if body is None:
                unread.append(raw)
                continue
            parent = parent_of(raw)
            scope = f"{spec.name}#{parent.number}"
            cursor = cursors.load(self._ports.business, ctx.connection, ctx.repository or "",
                                  scope)
            self._walker.take(spec, ctx, parent, body, cursor)
            taken.append(parent)
        if taken:
            self._settle(spec.name, ctx, taken, [])
        return unread

    def _read(self, spec: ListSpec | BatchSpec | GroupSpec, ctx: Context,
              parents: list[tuple[str | None, Parent]]) -> None:
        """Read and write the children of ``parents`` ((GraphQL node id, parent)); remember
        those the provider refuses and forget those read (:mod:`.pending`)."""
        if isinstance(spec, GroupSpec):
            outcome = self._groups.fetch(spec, ctx, [p for _, p in parents])
            for name in spec.children:
                self._settle(name, ctx, outcome.read[name], outcome.failed[name])
                if outcome.rest[name]:
                    self._read(self._plan.children[name], ctx,
                               [(None, p) for p in outcome.rest[name]])
            return
        if isinstance(spec, BatchSpec):
            failed = self._batches.fetch(spec, ctx, [(str(i), p) for i, p in parents])
        else:
            failed = []
            for node_id, parent in parents:
                try:
                    self._walk_child(spec, ctx, parent)
                except PermanentError as e:
                    failed.append((node_id, parent, reason_or_raise(e)))
        refused = {parent.number for _, parent, _ in failed}
        self._settle(spec.name, ctx, [p for _, p in parents if p.number not in refused], failed)

    def _settle(self, name: str, ctx: Context, read: list[Parent], failed: list) -> None:
        self._pending.settle(ctx.repository or "", name, read, failed)
        if failed:
            self.stats.missing += len(failed)
            log.warning("fetch.part_unavailable", extra={"fields": {
                "connection": ctx.connection, "repository": ctx.repository,
                "child": name, "reasons": sorted({r for _, _, r in failed}),
                "parents": len(failed)}})

    def _walk_child(self, spec: ListSpec, ctx: Context, parent: Parent) -> None:
        scope = f"{spec.name}#{parent.number}"
        cursor = cursors.load(self._ports.business, ctx.connection, ctx.repository or "", scope)
        self._walker.walk(spec, ctx, parent.path_params, cursor, parent=parent, budgeted=False)
