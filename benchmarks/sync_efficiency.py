"""Sync efficiency: requests and rate-limit points a keyway sync spends against the
simulators, compared with the physical minimum of ``ceil(items / 100)`` requests per list.

Scenario (each provider, fresh simulator and state): an org of 5 repositories with 2,000
pull/merge requests, 3,000 issues, 20,000 comments and 100 labels (20 per repository).

1. full sync (empty state);
2. an immediate re-sync with nothing changed (goal: 0 points — only 304s);
3. a re-sync after 1 % of every kind changed (20 PRs, 30 issues, 200 comments touched);
4. the reconciliation cycle (deleted records → tombstones): with nothing due, as after every
   sync but a repository's periodic one, and forced, the full id sweep of every repository
   (``reconcile``; the extra cost of an unchanged re-sync is ``unchanged_extra_pct``).

Requests are counted from the simulator's request log (per route template), REST points as
the REST answers that were not 304s, GraphQL points from the simulator's separate GraphQL meter
(GitHub's two budgets). Children are reported apart from the lists:

* GitHub reviews come through GraphQL, up to 100 pull requests a query: their minimum is
  ceil(pull requests / 100) queries, plus one per further 100 reviews of a pull request with
  more than 100 (the issue's scale seeds no reviews, so every connection is empty: the count
  of queries does not depend on it). keyway batches per page of each repository's pull
  request list, so its bound is one query per such page (``children_per_page_bound``): each
  repository's last page is a partial batch;
* GitLab notes (per merge request / issue) and approvals (per merge request) have no list-wide
  REST endpoint; they come through GraphQL, one query per 100 merge requests or issues of one
  project (the documents read one project by ``fullPath``), plus one per further 100 notes of
  a parent (system notes included: GraphQL lists them too). The minimum is therefore
  ``sum over projects of ceil(MRs/100) + ceil(issues/100)`` queries plus those follow-ups, and
  keyway's bound is one query per page of a project's merge request and issue lists — the
  same number, since both lists page by 100. ``total_minimum`` adds the list pages.

Bitbucket and Jira (no ETags: an unchanged re-sync costs one narrowed page per list) and
their minimums: :mod:`benchmarks.sync_atlassian`.

``python -m benchmarks sync:gitlab`` measures GitLab alone (merged into the ``sync`` part);
likewise ``sync:github``, ``sync:bitbucket``, ``sync:jira``.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import requests

from benchmarks import sync_atlassian
from keyway.simulators import GitHubSimulator, GitLabSimulator
from shared.bootstrap import build
from shared.config import Config
from shared.fetch import reconcile
from shared.fetch.budget import TokenBudget, budget_key
from shared.fetch.client import ProviderClient
from shared.fetch.github.plan import PLAN as GITHUB_PLAN
from shared.fetch.gitlab.plan import PLAN as GITLAB_PLAN
from shared.fetch.sync import SyncRun
from shared.providers import registry

SCALE = {"repos": 5, "prs": 2000, "issues": 3000, "comments": 20000, "labels": 20}
GRAPHQL = "POST /graphql"  # how GraphQL queries are counted per template
CHANGED = {"pull": 20, "issue": 30, "comment": 200}  # 1 % of each kind
PAGE = 100


def pages(n: int) -> int:
    """Requests needed to list ``n`` items at 100 a page (an empty list still costs one)."""
    return max(1, math.ceil(n / PAGE))


def github_minimum(sim: GitHubSimulator) -> dict:
    acts = list(sim.activity.repos.values())
    lists = {
        "/user/repos": pages(len(acts)),
        "/repos/{owner}/{repo}/pulls": sum(pages(len(a.pulls.items)) for a in acts),
        # GitHub's issue list includes pull requests
        "/repos/{owner}/{repo}/issues": sum(pages(len(a.threads.items)) for a in acts),
        "/repos/{owner}/{repo}/issues/comments": sum(pages(len(a.comments.items)) for a in acts),
        "/repos/{owner}/{repo}/pulls/comments":
            sum(pages(len(a.review_comments.items)) for a in acts),
        "/repos/{owner}/{repo}/labels": sum(pages(len(a.labels)) for a in acts),
    }
    prs = sum(len(a.pulls.items) for a in acts)
    follow_ups = sum(pages(len(r)) - 1 for a in acts for r in a.reviews.values())
    children = {GRAPHQL: pages(prs) + follow_ups}  # reviews: 100 pull requests a query
    # keyway batches the changed pull requests of one page of one repository's list (so a
    # page is written only with its reviews): each repository's last page is a partial batch
    per_page = {GRAPHQL: sum(pages(len(a.pulls.items)) for a in acts) + follow_ups}
    return {"lists": lists, "children": children, "children_per_page": per_page}


def gitlab_minimum(sim: GitLabSimulator) -> dict:
    acts = list(sim.activity.projects.values())
    lists = {
        "/projects": pages(len(acts)),
        "/projects/{id}/merge_requests": sum(pages(len(a.merge_requests.items)) for a in acts),
        "/projects/{id}/issues": sum(pages(len(a.issues.items)) for a in acts),
        "/projects/{id}/labels": sum(pages(len(a.labels)) for a in acts),
    }
    follow_ups = sum(pages(len(notes)) - 1 for a in acts for notes in a.threads.values())
    per_project = sum(math.ceil(len(a.merge_requests.items) / PAGE)
                      + math.ceil(len(a.issues.items) / PAGE) for a in acts)
    children = {GRAPHQL: per_project + follow_ups}  # notes and approvals, by iids
    return {"lists": lists, "children": children, "children_per_page": dict(children),
            "derivation": {"projects": len(acts), "list_pages": sum(lists.values()),
                           "children_queries": per_project, "notes_follow_ups": follow_ups}}


def is_graphql(request) -> bool:
    return request.method == "POST" and request.path.endswith("/graphql")


def _strip(request, prefix: str) -> str:
    if is_graphql(request):
        return GRAPHQL
    template = request.template or "?"
    return template[len(prefix):] if template.startswith(prefix) else template


def graphql_points(sim) -> int:
    return sim.graphql_points_used(sim.account.id) if hasattr(sim, "graphql_points_used") else 0


def _measure(sim, ports, plan, token: str, prefix: str,
             totals_period: timedelta | None = None) -> dict:
    spec = registry.get(plan.provider)
    # Bitbucket's own 1,000-an-hour budget would pause the sync for hours: the bench counts
    # requests, so that provider's client runs without the local budget
    budget = None if spec.api.rate_limit.local_budget is not None else TokenBudget(
        ports.business, ports.clock, budget_key(plan.provider, "conn-1"))
    client = ProviderClient(spec, sync_atlassian.api_base(sim), token, requests.Session(),
                            ports.clock, budget,
                            timeout=30.0, purpose="fetch")
    before_log = len(sim.requests_log)
    before_points, before_graphql = sim.quota_used(sim.account.id), graphql_points(sim)
    start = time.perf_counter()
    result = SyncRun(ports, client, plan, "t-1", "conn-1", 3600.0,
                     totals_period=totals_period).run()
    seconds = time.perf_counter() - start
    log = sim.requests_log[before_log:]
    rest = [r for r in log if not is_graphql(r)]
    shared_limit = bool(spec.api.graphql) and spec.api.graphql.resource == "core"
    by_template = Counter(_strip(r, prefix) for r in log)
    points_by_template = Counter(_strip(r, prefix) for r in log if r.status < 300)
    return {"finished": result.finished, "seconds": round(seconds, 3),
            "requests": len(log), "rest_requests": len(rest),
            "graphql_queries": len(log) - len(rest),
            "not_modified": sum(1 for r in rest if r.status == 304),
            # every REST answer but a 304 (or a refusal) spends one point; read from the log
            # because GitLab's one-minute window can roll over during a long sync
            "points": sum(1 for r in rest if r.status < 300),
            "meter_delta": sim.quota_used(sim.account.id) - before_points,
            "graphql_points": graphql_points(sim) - before_graphql,
            # what the provider's one API limit is charged (GitLab: GraphQL requests too)
            "limit_units": sum(1 for r in rest if r.status < 300) + (
                len(log) - len(rest) if shared_limit else 0),
            "written": result.stats.written, "written_by_kind": dict(result.stats.by_kind),
            "requests_by_template": dict(sorted(by_template.items())),
            "points_by_template": dict(sorted(points_by_template.items()))}


def _compare(full: dict, minimum: dict) -> dict:
    rows = {}
    for group in ("lists", "children"):
        for template, least in minimum[group].items():
            rows[template] = {"kind": group, "minimum": least,
                              "requests": full["requests_by_template"].get(template, 0),
                              "points": full["points_by_template"].get(template, 0)}
    list_min = sum(minimum["lists"].values())
    child_min = sum(minimum["children"].values())
    list_used = sum(r["points"] for r in rows.values() if r["kind"] == "lists")
    # children are compared by requests: REST requests per parent, or GraphQL queries
    child_used = sum(r["requests"] for r in rows.values() if r["kind"] == "children")
    per_page = minimum.get("children_per_page")
    return {"per_endpoint": rows, "lists_minimum": list_min, "lists_points": list_used,
            "children_minimum": child_min, "children_requests": child_used,
            "children_per_page_bound": sum(per_page.values()) if per_page else None,
            "children_via": "graphql" if GRAPHQL in minimum["children"] else "rest",
            "total_minimum": list_min + child_min, "derivation": minimum.get("derivation"),
            "lists_ratio": round(list_used / list_min, 3) if list_min else None}


def _setup(provider: str) -> tuple:
    """(simulator, plan, token scopes, owner, connection document maker, minimum function)."""
    if provider == "github":
        return GitHubSimulator(rate_limit=10_000_000, graphql_rate_limit=10_000_000), \
            GITHUB_PLAN, ("repo",), "acme", None, github_minimum
    if provider == "gitlab":
        return GitLabSimulator(rate_limit=10_000_000), GITLAB_PLAN, ("read_api",), \
            "acme-group", None, gitlab_minimum
    setup = sync_atlassian.bitbucket_setup if provider == "bitbucket" else \
        sync_atlassian.jira_setup
    return setup(SCALE)


def _one(provider: str) -> dict:
    sim, plan, scopes, owner, connection, minimum_of = _setup(provider)
    sim.start()
    try:
        sim.seed_activity(owner, **SCALE)
        prefix = sync_atlassian.template_prefix(sim)
        token = sim.mint_token(scopes=scopes).access_token
        with tempfile.TemporaryDirectory(prefix="keyway-bench-sync-") as tmp:
            ports = build(Config.from_env({"KEYWAY_STATE_DIR": str(Path(tmp) / "state")}))
            if connection is not None:
                ports.business.put("connections", "conn-1", connection(sim))
            full = _measure(sim, ports, plan, token, prefix)
            minimum = minimum_of(sim)
            unchanged = _measure(sim, ports, plan, token, prefix)
            # the same re-sync when the list totals are due (once per
            # KEYWAY_RECONCILE_TOTALS_HOURS; a zero period makes them due now)
            totals_due = _measure(sim, ports, plan, token, prefix, timedelta(0))
            for kind, count in CHANGED.items():
                if kind != "pull" or provider != "jira":  # Jira has no pull requests
                    sim.touch(kind, count)
            changed = _measure(sim, ports, plan, token, prefix)
            reconciliation = _reconcile(sim, ports, plan, token, unchanged["requests"])
        return {"scale": SCALE, "changed": CHANGED, "full": full, "minimum": minimum,
                "full_vs_minimum": _compare(full, minimum), "unchanged_resync": unchanged,
                "after_1pct_changed": changed, "reconcile": reconciliation,
                "unchanged_totals_due": totals_due,
                "unchanged_goal_met": unchanged["points"] == 0}
    finally:
        sim.stop()


def _reconcile(sim, ports, plan, token: str, unchanged_requests: int) -> dict:
    """The reconciliation cycle (:mod:`shared.fetch.reconcile`) after the re-syncs: with
    nothing due (what every sync but a repository's weekly one pays), then forced (the full id
    sweep of every repository, spread over ``KEYWAY_RECONCILE_DAYS`` in production)."""
    spec = registry.get(plan.provider)
    budget = TokenBudget(ports.business, ports.clock, budget_key(plan.provider, "conn-1"))
    # as in _measure: Bitbucket's client runs without its local budget (the bench counts
    # requests); the cycle still checks its spare capacity against ``budget``
    client_budget = None if spec.api.rate_limit.local_budget is not None else budget
    client = ProviderClient(spec, sync_atlassian.api_base(sim), token, requests.Session(),
                            ports.clock, client_budget, timeout=30.0, purpose="fetch")
    found = {}
    for name, force in (("nothing_due", False), ("forced_full_sweep", True)):
        before = len(sim.requests_log)
        tally = reconcile.cycle(ports, client, plan, "t-1", "conn-1", budget, 7, force=force)
        found[name] = {"requests": len(sim.requests_log) - before,
                       "repositories": tally.repositories, "tombstoned": tally.tombstoned,
                       "targeted_sweeps": tally.targeted}
    extra = found["nothing_due"]["requests"]
    found["unchanged_extra_pct"] = round(100 * extra / max(1, unchanged_requests), 2)
    found["full_sweep_per_repository_per_period"] = round(
        found["forced_full_sweep"]["requests"] / SCALE["repos"], 1)
    return found


def run(providers: tuple[str, ...] = ("github", "gitlab", "bitbucket", "jira")) -> dict:
    """One sequence per provider (deterministic counts: requests and points do not vary
    between runs; wall time is a single run)."""
    return {"method": "keyway SyncRun against the in-process simulator; counts from the "
                      "simulator's request log, REST points = REST answers that were not 304, "
                      "GraphQL points from the simulator's GraphQL meter (GitLab has none: "
                      "its GraphQL requests count against the REST limit); 1 run (counts "
                      "are deterministic)",
            **{provider: _one(provider) for provider in providers}}


if __name__ == "__main__":
    import json
    print(json.dumps(run(), indent=2))
