"""Deletion reconciliation inside incremental syncs: id sweeps that turn what the provider no
longer lists into tombstones (:mod:`shared.records.store`), at near-zero request cost.

An incremental sync reads what changed; a deletion changes nothing it reads. Three things close
that gap, cheapest first:

1. **Delete events** (:mod:`shared.ingest`): most deletions arrive as webhooks and cost nothing.
2. **Count signals** (:mod:`shared.fetch.reconcile_signals`): the list pages a sync reads carry
   their items' children counts (GitHub issue ``comments``, GitLab ``user_notes_count``,
   Bitbucket pull request ``comment_count``) — every item of a page read, those past the
   walk's stop point included — and their list's total (GitLab ``X-Total``). Once a
   repository's lists are all written, an item whose count is below the live children stored
   under it gets one **targeted sweep** (that parent's children list, read whole), and a list
   whose total is below its live records stored gets one sweep of that list. Nothing is spent
   where they agree, and an unchanged list (``304``, or Bitbucket's empty page) offers nothing
   to compare.
3. **Periodic full sweep** (:func:`cycle`): each repository's top-level lists read whole at
   most once per ``KEYWAY_RECONCILE_DAYS`` (default 7), and their children through the counts
   those full reads carry (Jira's issue list asks for the ``comment`` field, whose ``total``
   is compared): a targeted sweep per parent whose count is off. A
   repository's first due time is a stable per-repository fraction of the period away
   (jitter, :mod:`shared.fetch.reconcile_state`), and a sweep runs only when the token's rate
   budget has spare capacity (:func:`affordable`: at least twice the sweep's estimated
   requests left above the fetch reserve); a repository that cannot be afforded stays due for
   the next cycle. The cycle runs after a sync that finished (:mod:`shared.fetch.handler`)
   and can be called on its own.

A sweep (:mod:`shared.fetch.reconcile_sweep`) reads every page of a list, upserts what it reads
with the sweep's start as the sighting time (which also clears a tombstone the provider
contradicts), then tombstones, as of that start and with reason ``deleted``, every live stored
record of the list's kind and scope (connection, repository, the parent for a child list, and
a field where two lists write one kind) that the list did not contain. A record written after
the sweep began (a webhook) is newer than the tombstone and survives it.

Repositories that leave the connection's reach are found by the repositories list, which every
sync walks whole (:mod:`shared.fetch.walk`): they and their records become ``access_lost``.
"""

import dataclasses
import functools
import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from shared.clock import isoformat, parse_iso
from shared.fetch.client import ProviderClient
from shared.fetch.plan import ListSpec, ProviderPlan
from shared.fetch.reconcile_signals import Signals
from shared.fetch.reconcile_state import COLLECTION, is_due
from shared.fetch.reconcile_sweep import SCOPES, Tally, sweep
from shared.log import get_logger
from shared.ports import DocumentStore, Filter, Ports
from shared.records.model import Context

log = get_logger("keyway.fetch")
PAGE_ESTIMATE = 100  # records per page assumed when estimating a sweep's cost


# ---- the periodic full sweep ---------------------------------------------------------------
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
          connection: str, budget: Any, period_days: int, *, force: bool = False,
          out_of_time: Callable[[], bool] = lambda: False) -> Tally:
    """One reconciliation cycle of a connection: fully sweep the repositories that are due
    (all of them with ``force``) and that the budget affords; returns what it spent. Once
    ``out_of_time()`` says so (checked before each repository and each list), it stops: the
    repository it was in, and those after, stay due for the next cycle."""
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
                force or is_due(store, repo.id, now, period, connection)):
            continue
        if out_of_time():
            tally.deferred += 1
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
        signals = Signals(ports, client, plan, tally)  # children: counts, then targeted sweeps
        cut = False
        for spec in lists:
            if out_of_time():
                cut = True
                break
            sweep(store, client, now, spec, ctx, params, tally,
                  extra=SCOPES.get((plan.provider, spec.name), ()),
                  on_page=functools.partial(signals.page, spec, ctx, params=params))
        if cut:  # stays due: the next cycle sweeps it whole
            tally.deferred += 1
            continue
        signals.settle(ctx)
        tally.repositories += 1
        store.put(COLLECTION, repo.id, {**(store.get(COLLECTION, repo.id) or {}),
                                        "connection": connection,
                                        "due_at": isoformat(parse_iso(now) + period),
                                        "swept_at": now,
                                        "tombstoned": tally.tombstoned - before})
    log.info("fetch.reconciled", extra={"fields": {
        "connection": connection, "repositories": tally.repositories,
        "deferred": tally.deferred, "requests": tally.requests,
        "tombstoned": tally.tombstoned}})
    return tally
