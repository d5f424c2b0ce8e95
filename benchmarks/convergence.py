"""Convergence: after lost webhooks, deletions and a repository transfer, does ONE
reconciliation cycle bring keyway's records to the provider's truth, and what does the cycle
cost beyond the plain incremental re-sync?

The path is the real one, on the integration tests' embedded stack served over HTTP
(``tests/integration``: the OAuth connect flow, ``fetch-github`` with its count signals and
the due-only reconciliation cycle every finished sync ends with, ``webhook-github`` receiving
the simulator's signed deliveries at the hooks the first sync registered, the scheduler's
delivery-recovery round run by ``vault-github``). GitHub simulator at the ``sync`` part's scale
(:data:`benchmarks.sync_efficiency.SCALE`); the connection's OAuth App token has no ``repo``
scope, so the private repositories are out of its reach and out of the truth.

1. **Unchanged org**, after the first sync, interleaved twice: a plain incremental re-sync, then
   a cycle (a recovery round, then the incremental re-sync). Extra = cycle − plain.
2. **Changed org** (the integration test's scenario, :mod:`tests.integration.test_convergence`):
   20 % of webhook deliveries lost (seeded), 1 % of comments, issues and labels deleted through
   the simulator (their delete webhooks subject to the same losses) before a sync and again
   while it runs, one repository transferred out of reach during that sync, comments created
   and issues, pull requests and comments edited before and after it. Then one cycle. Its
   extra over a plain re-sync is what only the cycle sends: the recovery round (delivery list
   per registered hook, one read per missed delivery) and the targeted sweeps inside the sync
   (``/issues/{issue_number}/comments``); the remainder is what the plain re-sync reads.
3. **Without recovery**: step 2 again on a fresh stack, the cycle being the incremental sync
   alone — what the count signals catch by themselves, and which ghosts remain.

Ghosts = live records keyway shows that the simulator no longer has; lost = simulator records
keyway lacks; full re-syncs = repositories whose lists were swept whole (reconcile state
``swept_at``). Requests from the simulator's log; REST points = REST answers that were not 304;
GraphQL points from the simulator's GraphQL meter. Counts are deterministic: 1 run each.
"""

from __future__ import annotations

import logging
import random
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from benchmarks.sync_efficiency import SCALE, graphql_points, is_graphql
from keyway.simulators import GitHubSimulator
from shared.fetch.client import ProviderClient
from shared.fetch.reconcile_state import COLLECTION as SWEEPS
from tests.integration.conftest import served_stack
from tests.integration.test_convergence import (
    DROP,
    SEED,
    create_and_edit,
    delete_share,
    resync,
    stored,
    truth,
    visible,
)
from tests.integration.test_delivery_recovery import one_round, pump
from tests.integration.test_webhook_registration import _callback, connect
from tests.leakguard import LeakGuard

SWEEP_TEMPLATE = "/repos/{owner}/{repo}/issues/{issue_number}/comments"
DELIVERIES = "/hooks/{hook_id}/deliveries"


class Meter:
    """What a step sent to the simulator."""

    def __init__(self, sim: GitHubSimulator) -> None:
        self.sim = sim

    def __call__(self, step: Any) -> dict:
        before, points = len(self.sim.requests_log), graphql_points(self.sim)
        step()
        log = self.sim.requests_log[before:]
        rest = [r for r in log if not is_graphql(r)]
        return {"requests": len(log), "points": sum(1 for r in rest if r.status < 300),
                "graphql_points": graphql_points(self.sim) - points,
                "recovery_requests": sum(1 for r in rest if DELIVERIES in (r.template or "")),
                "recovery_list_requests": sum(1 for r in rest if (r.template or "").endswith(
                    DELIVERIES)),
                "targeted_sweep_requests": sum(1 for r in rest if r.template == SWEEP_TEMPLATE),
                "not_modified": sum(1 for r in rest if r.status == 304)}


def _pct(extra: int, base: int) -> float | None:
    return round(100 * extra / base, 1) if base else None


class Scenario:
    def __init__(self, stack: Any, sim: GitHubSimulator) -> None:
        self.stack, self.sim, self.meter = stack, sim, Meter(sim)
        self.published: Counter = Counter()
        self.rounds = 0
        self.connection = ""

    def first_sync(self) -> dict:
        def go() -> None:
            self.connection, _ = connect(self.stack, "github")
            pump(self.stack, "github", self.published)
        return self.meter(go)

    def plain(self) -> dict:
        return self.meter(lambda: resync(self.stack, self.connection, self.published))

    def cycle(self) -> dict:
        def go() -> None:
            one_round(self.stack, "github", self.published, later=self.rounds)
            self.rounds += 1
            resync(self.stack, self.connection, self.published)
        return self.meter(go)

    def change(self, monkeypatch: pytest.MonkeyPatch) -> dict:
        rng, sim = random.Random(SEED), self.sim
        sim.drop_deliveries(fraction=DROP, seed=SEED)
        delete_share(sim, rng)
        create_and_edit(sim, rng)
        pump(self.stack, "github", self.published)
        moved = visible(sim)[-1]["full_name"]
        real_get, calls = ProviderClient.get, []

        def get(client: ProviderClient, *args: Any, **kw: Any):
            calls.append(args[0])
            if len(calls) == 5:  # while the sync runs
                delete_share(sim, rng)
                sim.transfer(moved, "elsewhere")
            return real_get(client, *args, **kw)

        monkeypatch.setattr(ProviderClient, "get", get)
        during = self.plain()
        monkeypatch.setattr(ProviderClient, "get", real_get)
        create_and_edit(sim, rng)
        pump(self.stack, "github", self.published)
        records = sim.delivery_log.records()
        return {"sync_during_changes": during, "moved": moved,
                "deliveries": len(records), "deliveries_lost": sum(1 for d in records
                                                                   if not d.ok),
                "deleted_at_simulator": len(sim.deleted)}

    def outcome(self, moved: str) -> dict:
        ports, sim = self.stack.ports, self.sim
        live, tombs = stored(ports, deleted=False), stored(ports, deleted=True)
        want = truth(sim)
        repo = next((t for t in tombs.values() if t["kind"] == "repositories"
                     and t["full_name"] == moved), {})
        gone = {(k, str(d.id)) for d in sim.deleted
                for k in [{"review_comment": "comments", "comment": "comments",
                           "issue": "issues", "pull": "pull_requests", "label": "labels",
                           "review": "reviews"}[d.kind]] if d.container != moved}
        records = sim.delivery_log.records()
        return {"ghosts": len(set(live) - want), "lost": len(want - set(live)),
                "ghosts_by_kind": dict(Counter(k for k, _ in set(live) - want)),
                "ghost_issues_deleted_with_their_comments": sum(
                    1 for k, i in set(live) - want if k == "comments"
                    and live[(k, i)].get("parent") in {live[g]["id"] for g in set(live) - want
                                                       if g[0] == "issues"}),
                "tombstones": len(tombs),
                "deleted_wrong_reason": sum(1 for k in gone
                                            if tombs.get(k, {}).get("deleted_reason")
                                            != "deleted"),
                "transferred_repository_reason": repo.get("deleted_reason"),
                "events_applied_twice": sum(1 for d in {d.guid for d in records}
                                            if self.published[d] > 1),
                "full_resyncs": sum(1 for s in ports.business.query(SWEEPS)
                                    if s.data.get("swept_at"))}


def run() -> dict:
    quiet = [logging.getLogger(n) for n in ("shared.auth.local_issuer", "keyway")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.WARNING)
    try:
        return _run()
    finally:
        for q, level in zip(quiet, levels, strict=True):
            q.setLevel(level)


def _run() -> dict:
    started = time.perf_counter()
    measured = _scenario(recover=True)
    without = _scenario(recover=False)  # the same, the recovery round left out of the cycle
    measured["without_recovery"] = {k: without[k] for k in (
        "ghosts", "ghosts_by_kind", "ghost_issues_deleted_with_their_comments", "lost",
        "deleted_wrong_reason", "transferred_repository_reason",
        "full_resyncs", "changed_cycle")}
    measured["wall_seconds"] = round(time.perf_counter() - started, 1)
    return measured


def _scenario(recover: bool) -> dict:
    monkeypatch, guard = pytest.MonkeyPatch(), LeakGuard()
    with tempfile.TemporaryDirectory(prefix="keyway-bench-convergence-") as tmp, \
            served_stack(Path(tmp), monkeypatch, guard) as stack:
        sim = GitHubSimulator(expiring_tokens=False, on_issue=guard.track,
                              rate_limit=10_000_000, graphql_rate_limit=10_000_000).start()
        try:
            sim.register_client("gh-client", "gh-client-secret-1", [_callback(stack, "github")])
            stack.provider_config(monkeypatch, "github", "gh-client", "gh-client-secret-1",
                                  sim.oauth_url, sim.api_url)
            sim.seed_activity("acme", **SCALE, seed=SEED)
            s = Scenario(stack, sim)
            first = s.first_sync()
            reached = len(truth(sim))
            unchanged = [(s.plain(), s.cycle()) for _ in range(2)]  # interleaved
            changes = s.change(monkeypatch)
            changed = s.cycle() if recover else s.plain()
            result = s.outcome(changes.pop("moved"))
        finally:
            sim.stop()
            monkeypatch.undo()
    plain, cyc = unchanged[-1]
    extra_unchanged = cyc["requests"] - plain["requests"]
    only_cycle = changed["recovery_requests"] + changed["targeted_sweep_requests"]
    return {
        "method": "GitHub simulator at the sync part's scale through the embedded stack "
                  "served over HTTP (connect, fetch-github, webhook-github, the scheduler's "
                  "recovery round in vault-github); unchanged org: plain re-sync and cycle "
                  "interleaved twice; changed org: the integration test's scenario (seed "
                  f"{SEED}) then one cycle; the changed scenario again on a fresh stack with the "
                  "recovery round left out of the cycle (without_recovery); counts from the "
                  "simulator's request log and GraphQL meter; 1 run (deterministic counts)",
        "scale": SCALE, "records_reached": reached, "first_sync": first,
        "unchanged": [{"plain": p, "cycle": c} for p, c in unchanged],
        "unchanged_extra_requests": extra_unchanged,
        "unchanged_extra_points": cyc["points"] - plain["points"],
        "unchanged_extra_pct": _pct(extra_unchanged, plain["requests"]),
        "changes": changes, "changed_cycle": changed,
        "changed_extra_requests": only_cycle,
        "changed_extra_pct": _pct(only_cycle, changed["requests"] - only_cycle),
        **result,
        "goal_met": result["ghosts"] == 0 and result["lost"] == 0
        and result["full_resyncs"] == 0 and (_pct(extra_unchanged, plain["requests"])
                                             or 0) < 5}


def rows(p: dict) -> list[tuple]:
    """The part's rows of ``benchmarks/results.md``."""
    plain, cyc = p["unchanged"][-1]["plain"], p["unchanged"][-1]["cycle"]
    ch = p["changed_cycle"]
    ok = "yes" if (p["ghosts"], p["lost"], p["full_resyncs"]) == (0, 0, 0) else "**no**"
    cheap = "yes" if (p["unchanged_extra_pct"] or 0) < 5 else "**no**"
    return [
        (f"convergence (GitHub, {p['records_reached']} records reached): after one cycle — "
         "ghosts / lost / full re-syncs / events applied twice",
         f"{p['ghosts']} / {p['lost']} / {p['full_resyncs']} / {p['events_applied_twice']}",
         "1", "0 / 0 / 0 / 0", ok),
        ("convergence: tombstone reasons — deletions not `deleted` / the transferred "
         "repository's", f"{p['deleted_wrong_reason']} / {p['transferred_repository_reason']}",
         "1", "0 / transferred", "yes" if p["deleted_wrong_reason"] == 0
         and p["transferred_repository_reason"] == "transferred" else "**no**"),
        ("convergence, unchanged org: plain incremental re-sync vs one cycle — requests "
         "(REST points, GraphQL points)",
         f"{plain['requests']} ({plain['points']}, {plain['graphql_points']}) vs "
         f"{cyc['requests']} ({cyc['points']}, {cyc['graphql_points']}): "
         f"+{p['unchanged_extra_requests']} requests = +{p['unchanged_extra_pct']} %, "
         f"+{p['unchanged_extra_points']} points", "1 (2 interleaved pairs)", "< 5 % extra",
         cheap),
        (f"convergence, changed org ({p['changes']['deliveries_lost']} of "
         f"{p['changes']['deliveries']} deliveries lost, {p['changes']['deleted_at_simulator']} "
         "items deleted, 1 repository transferred): one cycle — requests (REST points, "
         "GraphQL points); of which only the cycle sends (recovery + targeted sweeps)",
         f"{ch['requests']} ({ch['points']}, {ch['graphql_points']}); "
         f"{ch['recovery_requests']} + {ch['targeted_sweep_requests']} = "
         f"+{p['changed_extra_pct']} % over the plain re-sync's part", "1", "reported", "n/a"),
        ("convergence without the recovery round (the same scenario, a fresh stack: the "
         "incremental sync's count signals alone) — ghosts / lost / the transferred "
         "repository's reason",
         f"{p['without_recovery']['ghosts']} / {p['without_recovery']['lost']} / "
         f"{p['without_recovery']['transferred_repository_reason']}; ghosts by kind "
         f"{p['without_recovery']['ghosts_by_kind']} "
         f"({p['without_recovery']['ghost_issues_deleted_with_their_comments']} comments under "
         "the ghost issues): an issue deletion leaves no count on what the incremental sync "
         "reads (the missing signal: a repository's issue total), and a comment deletion "
         "does not move its issue's `updated_at` (as the simulator models it), so that "
         "issue's `comments` count is not on the pages read", "1", "shows what recovery "
         "adds", "n/a"),
        ("convergence: measured cause of the unchanged org's extra cost",
         f"the recovery round lists each registered repository hook's deliveries: "
         f"{cyc['recovery_list_requests']} hooks → {cyc['recovery_list_requests']} requests, "
         "each a 200 that spends a point, whether or not anything was lost (keyway sends no "
         "conditional request for the list; a GitHub App's one webhook log would be 1 "
         "request a round); on the changed org the round read "
         f"{ch['recovery_list_requests']} lists + "
         f"{ch['recovery_requests'] - ch['recovery_list_requests']} missed deliveries, one "
         "request each (the list carries no payload)", "", "", ""),
    ]


if __name__ == "__main__":
    import json
    print(json.dumps(run(), indent=2))
