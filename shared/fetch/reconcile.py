"""Deletion reconciliation inside incremental syncs: id sweeps that turn what the provider no
longer lists into tombstones (:mod:`shared.records.store`), at near-zero request cost.

An incremental sync reads what changed; a deletion changes nothing it reads. Three things close
that gap, cheapest first:

1. **Delete events** (:mod:`shared.ingest`): most deletions arrive as webhooks and cost nothing.
2. **Count signals** (:class:`Signals`): the list items a sync already reads carry their
   children's count (GitHub issue ``comments``, GitLab ``user_notes_count``, Bitbucket pull
   request ``comment_count``; :data:`COUNTS`). Once a repository's lists are all written, an
   item read whose count disagrees with the live children stored under it gets one **targeted
   sweep**: that parent's children list, read whole. Nothing is spent where the counts agree,
   and an unchanged list (``304``, or Bitbucket's empty page) offers no item to compare.
3. **Periodic full sweep** (:func:`cycle`): each repository's top-level lists read whole at
   most once per ``KEYWAY_RECONCILE_DAYS`` (default 7), at a time spread by a per-repository
   jitter (its first due time is a stable fraction of the period away), and only when the
   token's rate budget has spare capacity (:func:`affordable`: more than twice the sweep's
   estimated requests left above the fetch reserve); a repository that cannot be afforded
   stays due for the next cycle. The cycle runs after a sync that finished
   (:mod:`shared.fetch.handler`) and can be called on its own.

A sweep (:func:`sweep`) reads every page of a list, upserts what it reads with the sweep's
start as the sighting time (which also clears a tombstone the provider contradicts), then
tombstones, as of that start and with reason ``deleted``, every live stored record of the
list's kind and scope (connection, repository, the parent for a child list, and
:data:`SCOPES` where two lists write one kind) that the list did not contain. A record written
after the sweep began (a webhook) is newer than the tombstone and survives it.

Repositories that leave the connection's reach are found by the repositories list, which every
sync walks whole (:mod:`shared.fetch.walk`): they and their records become ``access_lost``.
State: ``reconcile_state/<repository record id>`` holds ``due_at`` and the last sweep's figures.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from shared.clock import isoformat, parse_iso
from shared.errors import PermanentError
from shared.fetch.client import ProviderClient
from shared.fetch.plan import ListSpec, Parent, ProviderPlan
from shared.fetch.walk import page_items
from shared.log import get_logger
from shared.ports import DocumentStore, Filter, Ports
from shared.records import github
from shared.records import store as records
from shared.records.model import Context, parent_id

log = get_logger("keyway.fetch")

COLLECTION = "reconcile_state"
MAX_PAGES = 1000  # a list longer than this many pages is left unswept (logged), never guessed
FEW_PARENTS = 20  # up to this many parents to compare: one store query each
PAGE_ESTIMATE = 100  # records per page assumed when estimating a sweep's cost
PARENT_FIELD = {"reviews": "pull_request", "comments": "parent"}
#: Lists that share a record kind within a repository, told apart by a field.
SCOPES: dict[tuple[str, str], tuple[Filter, ...]] = {
    ("github", "issue_comments"): (Filter("review_comment", "==", False),),
    ("github", "review_comments"): (Filter("review_comment", "==", True),),
}
GITHUB_ISSUE_COMMENTS = ListSpec(
    "issue_comments", "GET /repos/{owner}/{repo}/issues/{issue_number}/comments", {},
    "comments", lambda raw, ctx, p: github.comment(raw, ctx, p.kind, p.number))


@dataclass(frozen=True)
class Count:
    """A list item's count of its children (``field``, a dotted path) and the children list
    (``child``: a name in the plan's ``children``, or a :class:`ListSpec`) swept on a
    mismatch; ``extra``: filters telling those children apart from others of the kind."""

    field: str
    child: str | ListSpec
    parent_kind: str  # "issue" | "pull_request", or "auto" (GitHub: an issue or a PR)
    number: str  # the item field holding the parent's number
    param: str  # the child list's path parameter for that number
    extra: tuple[Filter, ...] = ()


COUNTS: dict[tuple[str, str], Count] = {
    ("github", "issues"): Count("comments", GITHUB_ISSUE_COMMENTS, "auto", "number",
                                "issue_number", SCOPES[("github", "issue_comments")]),
    ("gitlab", "merge_requests"): Count("user_notes_count", "mr_notes", "pull_request", "iid",
                                        "merge_request_iid"),
    ("gitlab", "issues"): Count("user_notes_count", "issue_notes", "issue", "iid",
                                "issue_iid"),
    ("bitbucket", "pullrequests"): Count("comment_count", "pr_comments", "pull_request", "id",
                                         "pull_request_id"),
}


@dataclass
class Tally:
    """What reconciliation spent and found."""

    requests: int = 0
    tombstoned: int = 0
    swept_lists: int = 0
    targeted: int = 0  # targeted sweeps (count mismatches)
    repositories: int = 0  # repositories fully swept
    deferred: int = 0  # due repositories left for a later cycle (no spare budget)
    skipped: list[str] = field(default_factory=list)  # lists too long to sweep


def _request(spec: ListSpec, path_params: Mapping[str, str]) -> tuple[Mapping[str, str], dict]:
    params = dict(spec.params)
    if spec.query is not None:  # a full walk: the query with no lower bound
        params.update(spec.query(path_params, None))
        path_params = {k: v for k, v in path_params.items() if f"{{{k}}}" in spec.template}
    return path_params, params


def sweep(store: DocumentStore, client: ProviderClient, now: str, spec: ListSpec, ctx: Context,
          path_params: Mapping[str, str], tally: Tally, parent: Parent | None = None,
          extra: tuple[Filter, ...] = ()) -> int:
    """Read ``spec`` whole and tombstone the in-scope records it no longer lists (see the
    module docstring); ``now`` is the sweep's start. Returns the tombstones written."""
    path, params = _request(spec, path_params)
    response = client.get(spec.template, path, params)
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        tally.requests += 1
        items = [response.body] if spec.single else page_items(response.body, spec.items_key)
        for raw in items:
            produced = spec.normalize(raw, ctx, parent) if isinstance(raw, dict) else None
            for record in produced if isinstance(produced, list) else [produced]:
                if record is None:
                    continue
                records.upsert(store, record, seen_at=now)
                if record["kind"] == spec.kind:
                    seen.add(record["id"])
        if not response.next_url:
            break
        response = client.get_next(response.next_url, spec.template)
    else:
        tally.skipped.append(spec.name)
        log.warning("fetch.reconcile_list_too_long", extra={"fields": {
            "connection": ctx.connection, "repository": ctx.repository, "list": spec.name}})
        return 0
    where = [Filter("connection", "==", ctx.connection), Filter("deleted", "==", False),
             Filter("repository", "==", ctx.repository), *extra]
    if parent is not None:
        where.append(Filter(PARENT_FIELD[spec.kind], "==",
                            parent_id(ctx, parent.kind, parent.number)))
    gone = [s.id for s in store.query(spec.kind, where) if s.id not in seen]
    done = sum(records.mark_deleted(store, spec.kind, rid, now) for rid in gone)
    tally.swept_lists += 1
    tally.tombstoned += done
    return done


def _extra_key(count: Count) -> tuple:
    return tuple((f.field, f.value) for f in count.extra)


def _dig(raw: Mapping[str, Any], path: str) -> Any:
    value: Any = raw
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


class Signals:
    """Count signals of one sync run (see the module docstring). :meth:`page` is handed every
    written page of a top-level list and notes the counts its items carry; :meth:`settle`,
    once all of a repository's lists are written (a count is compared only with the children
    every list has delivered), sweeps the children of each item whose count disagrees."""

    def __init__(self, ports: Ports, client: ProviderClient, plan: ProviderPlan,
                 tally: Tally | None = None) -> None:
        self._ports, self._client, self._plan = ports, client, plan
        self.tally = tally or Tally()
        self._noted: dict[tuple[str, int], tuple[Parent, Count, int]] = {}

    def page(self, spec: ListSpec, ctx: Context, raws: list[dict],
             params: Mapping[str, str]) -> None:
        count = COUNTS.get((self._plan.provider, spec.name))
        if count is None or ctx.repository is None:
            return
        for raw in raws:
            said = _dig(raw, count.field)
            number = raw.get(count.number)
            if not isinstance(said, int) or isinstance(said, bool) or not isinstance(number, int):
                continue
            kind = count.parent_kind if count.parent_kind != "auto" else (
                "pull_request" if raw.get("pull_request") is not None else "issue")
            parent = Parent(kind, number, {**params, count.param: str(number)})
            self._noted.setdefault((kind, number), (parent, count, said))

    def discard(self) -> None:
        """Forget what was noted (the repository's lists did not all finish)."""
        self._noted.clear()

    def settle(self, ctx: Context, missing: set[tuple[str, int]] = frozenset()) -> None:
        """Compare every noted count with the live children stored; sweep the disagreeing.
        ``missing``: ``(kind, number)`` of parents whose children the provider refused
        (:mod:`shared.fetch.pending` reads them again; their counts say nothing). A few
        parents are counted one query each; many (a first sync) with one query of the
        repository's live comments."""
        noted = [n for key, n in self._noted.items() if key not in missing]
        self._noted = {}
        stored = self._repository_counts(ctx) if len(noted) > FEW_PARENTS else None
        for parent, count, said in noted:
            pid = parent_id(ctx, parent.kind, parent.number)
            found = self._stored(ctx, pid, count) if stored is None else \
                stored.get((pid, _extra_key(count)), 0)
            if said != found:
                self._sweep(ctx, parent, count)

    def _live(self, ctx: Context, *where: Filter) -> list:
        return self._ports.business.query("comments", [
            Filter("connection", "==", ctx.connection), Filter("deleted", "==", False),
            Filter("repository", "==", ctx.repository), *where])

    def _stored(self, ctx: Context, pid: str, count: Count) -> int:
        return len(self._live(ctx, Filter("parent", "==", pid), *count.extra))

    def _repository_counts(self, ctx: Context) -> Counter:
        scopes = {_extra_key(c): c.extra for c in COUNTS.values()}
        found: Counter = Counter()
        for snap in self._live(ctx):
            for key, extra in scopes.items():
                if all(snap.data.get(f.field) == f.value for f in extra):
                    found[(snap.data.get("parent"), key)] += 1
        return found

    def _sweep(self, ctx: Context, parent: Parent, count: Count) -> None:
        spec = count.child if isinstance(count.child, ListSpec) else \
            self._plan.children.get(count.child)
        if not isinstance(spec, ListSpec):
            return
        self.tally.targeted += 1
        now = isoformat(self._ports.clock.now())
        try:
            sweep(self._ports.business, self._client, now, spec, ctx, parent.path_params,
                  self.tally, parent, count.extra)
        except PermanentError as e:  # refused or gone: nothing is tombstoned on a guess
            self.tally.requests += 1
            log.warning("fetch.reconcile_refused", extra={"fields": {
                "connection": ctx.connection, "repository": ctx.repository,
                "list": spec.name, "reason": e.key}})


# ---- the periodic full sweep ---------------------------------------------------------------
def jitter(repository: str) -> float:
    """A stable fraction in [0, 1) of the period, per repository: spreads first sweeps."""
    digest = hashlib.sha256(repository.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_due(store: DocumentStore, repository: str, now: str, period: timedelta) -> bool:
    """Whether ``repository``'s full sweep is due; the first time a repository is seen its
    due time is set ``jitter × period`` ahead (its first sync has just read everything)."""
    state = store.get(COLLECTION, repository)
    if state is None:
        first = parse_iso(now) + period * jitter(repository)
        store.put(COLLECTION, repository, {"due_at": isoformat(first)})
        return False
    return str(state.get("due_at") or "") <= now


def mark_due(store: DocumentStore, repository: str, now: str) -> None:
    """Make ``repository``'s full sweep due at once (a repository back within reach)."""
    store.put(COLLECTION, repository, {**(store.get(COLLECTION, repository) or {}),
                                       "due_at": now})


def spare(budget: Any) -> int | None:
    """Requests left above the fetch reserve and those in flight; ``None`` when the budget was
    never observed (a provider that has not answered yet)."""
    snap = budget.snapshot()
    if snap.get("remaining") is None:
        return None
    return int(snap["remaining"]) - int(snap.get("in_flight") or 0) - int(snap["reserve"])


def estimate(store: DocumentStore, ctx: Context, lists: list[ListSpec]) -> int:
    """Requests a repository's sweep will take: per list, its stored records' pages + 1."""
    total = 0
    for spec in lists:
        stored = store.query(spec.kind, [Filter("connection", "==", ctx.connection),
                                         Filter("deleted", "==", False),
                                         Filter("repository", "==", ctx.repository)])
        total += math.ceil(len(stored) / PAGE_ESTIMATE) + 1
    return total


def affordable(budget: Any, cost: int) -> bool:
    """Spend only spare capacity: at least twice ``cost`` above the reserve (or unknown)."""
    left = None if budget is None else spare(budget)
    return left is None or left >= 2 * cost


def cycle(ports: Ports, client: ProviderClient, plan: ProviderPlan, tenant: str,
          connection: str, budget: Any, period_days: int, *, force: bool = False) -> Tally:
    """One reconciliation cycle of a connection: fully sweep the repositories that are due
    (all of them with ``force``) and that the budget affords; returns what it spent."""
    store, tally = ports.business, Tally()
    now = isoformat(ports.clock.now())
    period = timedelta(days=period_days)
    doc = store.get("connections", connection) or {}
    settings = plan.connection_params(doc) if plan.connection_params else {}
    base = Context(tenant, plan.provider, connection, observed_at=now,
                   site=plan.site_of(doc) if plan.site_of else None)
    repos = store.query("repositories", [Filter("connection", "==", connection),
                                         Filter("deleted", "==", False)])
    for repo in repos:
        if repo.data.get("tenant") != tenant or not (
                force or is_due(store, repo.id, now, period)):
            continue
        ctx = dataclasses.replace(base, repository=repo.id)
        lists = [s for s in plan.resources
                 if not s.full and (s.applies is None or s.applies(repo.data))]
        cost = estimate(store, ctx, lists)
        if not affordable(budget, cost):
            tally.deferred += 1
            continue
        params = {**settings, **plan.repo_params(repo.data)}
        before = tally.tombstoned
        for spec in lists:
            sweep(store, client, now, spec, ctx, params, tally,
                  extra=SCOPES.get((plan.provider, spec.name), ()))
        tally.repositories += 1
        store.put(COLLECTION, repo.id, {"due_at": isoformat(parse_iso(now) + period),
                                        "swept_at": now,
                                        "tombstoned": tally.tombstoned - before})
    log.info("fetch.reconciled", extra={"fields": {
        "connection": connection, "repositories": tally.repositories,
        "deferred": tally.deferred, "requests": tally.requests,
        "tombstoned": tally.tombstoned}})
    return tally
