"""List totals asked of the provider (:mod:`shared.fetch.reconcile_totals`) against the
simulators: Jira's approximate count of a project's issues, below the live issues stored, makes
the incremental sync sweep that project's issues (no full cycle); a count that agrees costs
one request and nothing else; a count the provider refuses, cannot give or answers malformed
changes no record and logs ``fetch.reconcile_total_failed``, and a refusal shows in the sync
status as missing (``totals.unavailable: <why>``) until a count is answered; a count not yet
due is not asked."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from urllib.parse import urlparse

import pytest

from keyway.simulators import GitHubSimulator, JiraSimulator
from keyway.simulators.github import GRAPHQL_PATH
from shared import health
from shared.clock import isoformat, parse_iso
from shared.fetch import pending, reconcile_state, status
from shared.fetch.github.plan import PLAN as GITHUB_PLAN
from shared.fetch.jira.plan import PLAN as JIRA_PLAN
from shared.fetch.sync import SyncRun
from tests.integration.test_reconcile import (
    CONNECTION,
    TENANT,
    Setup,
    assert_tombstones_and_views,
    client_for,
    live,
)

COUNT = "/rest/api/3/search/approximate-count"


@pytest.fixture
def jira(leak_guard, local_stack):
    sim = JiraSimulator(on_issue=leak_guard.track, rate_limit=100_000).start()
    sim.seed_activity("acme", repos=1, issues=20, comments=60)
    token = leak_guard.track(sim.mint_token(
        scopes=("read:jira-work", "read:jira-user", "offline_access")).access_token)
    local_stack.ports.business.put("connections", CONNECTION, {
        "tenant": TENANT, "provider": "jira", "api_base": sim.site_api_url,
        "site": {"id": sim.cloud_id, "url": sim.site_url, "name": "acme"},
        "account": {"id": sim.account.login, "login": "Jane Doe", "time_zone": "UTC"}})
    yield Setup(sim, JIRA_PLAN, sim.site_api_url, token)
    sim.stop()


def sync(ports, setup: Setup, period: timedelta = timedelta(0)):
    client, _ = client_for(ports, setup)
    result = SyncRun(ports, client, setup.plan, TENANT, CONNECTION, 600.0,
                     totals_period=period).run()
    assert result.finished
    return result


def counts_asked(setup: Setup) -> int:
    return sum(1 for r in setup.sim.requests_log if r.path.endswith(COUNT))


def snapshot(ports) -> dict:
    return {(kind, s.id): s.data for kind in ("issues", "comments", "pull_requests", "labels")
            for s in ports.business.query(kind)}


def test_a_jira_count_below_the_store_sweeps_that_projects_issues(local_stack, jira):
    ports = local_stack.ports
    sync(ports, jira)
    issue = live(ports, "issues")[3]
    under_issue = live(ports, "comments", parent=issue["id"])
    others = [i for i in live(ports, "issues") if i["id"] != issue["id"]]
    assert jira.sim.delete("issue", issue["external_id"])  # no webhook: nothing told keyway
    jira.sim.clear_log()
    result = sync(ports, jira)
    assert counts_asked(jira) == 1
    assert result.stats.deleted == 1 + len(under_issue)
    assert_tombstones_and_views(local_stack, [issue, *under_issue], others)
    jira.sim.clear_log()
    again = sync(ports, jira)  # the count agrees now: one request, no sweep
    assert (counts_asked(jira), again.stats.deleted) == (1, 0)
    assert len(jira.sim.requests_log) == 3  # projects, the issues page, the count


@pytest.mark.parametrize("fault", [
    (400, b'{"errorMessages":["Error in the JQL Query"],"errors":{}}'),
    (503, b"unavailable"),
    (200, b'{"total": 3}'),  # no count: malformed
    (200, b'{"count": -1}'),
])
def test_a_failed_count_changes_nothing_and_logs_a_stable_key(local_stack, jira, caplog,
                                                              fault) -> None:
    ports = local_stack.ports
    sync(ports, jira)
    assert jira.sim.delete("issue", live(ports, "issues")[0]["external_id"])
    before = snapshot(ports)
    code, body = fault
    jira.sim.fail_next(code, body=body, headers={"Content-Type": "application/json"},
                       path_prefix=_prefix(jira))
    with caplog.at_level(logging.WARNING, logger="keyway.fetch"):
        result = sync(ports, jira)
    assert result.stats.deleted == 0
    assert snapshot(ports) == before
    failed = [r for r in caplog.records if r.getMessage() == "fetch.reconcile_total_failed"]
    assert len(failed) == 1
    refused = ["totals.unavailable: refused"] if code == 400 else []  # 5xx/malformed: transient
    assert missing(ports) == refused
    jira.sim.clear_faults()
    assert sync(ports, jira).stats.deleted >= 1  # asked again at the next sync: swept then
    assert missing(ports) == []  # answered: no longer shown


def missing(ports) -> list[str]:
    """The reasons ``sync_status.missing`` would show for the connection now."""
    shown = pending.summary(ports.business, CONNECTION)
    assert all(s["repositories"] >= 1 for s in shown if s["child"] == "totals")
    return [s["reason"] for s in shown]


def _prefix(setup: Setup) -> str:
    return urlparse(setup.api_url).path + COUNT


def test_a_count_not_due_is_not_asked(local_stack, jira):
    ports = local_stack.ports
    day = timedelta(hours=24)
    sync(ports, jira, day)  # first sight: the count is scheduled a jittered part of a day on
    assert jira.sim.delete("issue", live(ports, "issues")[0]["external_id"])
    jira.sim.clear_log()
    assert sync(ports, jira, day).stats.deleted == 0
    assert counts_asked(jira) == 0
    repository = live(ports, "repositories")[0]["id"]
    state = ports.business.get("reconcile_state", repository)
    assert state["totals_due_at"] > state.get("swept_at", "")  # scheduled, not yet asked
    ports.business.put("reconcile_state", repository, {**state,
                                                       "totals_due_at": "2000-01-01T00:00:00Z"})
    jira.sim.clear_log()
    assert sync(ports, jira, day).stats.deleted >= 1  # due now: asked, and the issue swept
    assert counts_asked(jira) == 1
    after = ports.business.get("reconcile_state", repository)
    assert after["totals_due_at"] > "2000-01-02" and "due_at" not in after
    # the full sweep's own first-sight schedule is its part of 7 days, not due at once
    now = after["totals_due_at"]
    assert reconcile_state.is_due(ports.business, repository, now, timedelta(days=7),
                                  CONNECTION) is False
    swept = ports.business.get("reconcile_state", repository)
    assert swept["due_at"] == isoformat(parse_iso(now) + timedelta(days=7) * reconcile_state
                                        .jitter(repository))
    assert swept["totals_due_at"] == now  # kept


def test_a_refused_count_waits_a_period_instead_of_costing_every_sync(local_stack, jira):
    """A refusal is shown as missing and asked again a period later; a transient failure
    would be asked at the next sync (test above)."""
    ports = local_stack.ports
    day = timedelta(hours=24)
    sync(ports, jira, day)
    repository = live(ports, "repositories")[0]["id"]
    state = ports.business.get("reconcile_state", repository)
    ports.business.put("reconcile_state", repository, {**state,
                                                       "totals_due_at": "2000-01-01T00:00:00Z"})
    jira.sim.fail_next(400, body=b'{"errorMessages":["Error in the JQL Query"],"errors":{}}',
                       headers={"Content-Type": "application/json"}, path_prefix=_prefix(jira))
    jira.sim.clear_log()
    sync(ports, jira, day)
    assert counts_asked(jira) == 1 and missing(ports) == ["totals.unavailable: refused"]
    assert ports.business.get("reconcile_state", repository)["totals_due_at"] > \
        isoformat(ports.clock.now() + timedelta(hours=23))
    jira.sim.clear_log()
    sync(ports, jira, day)
    assert counts_asked(jira) == 0 and missing(ports) == ["totals.unavailable: refused"]


# ---- GitHub: repository_totals, several repositories a query ---------------------------------
@pytest.fixture
def github(leak_guard):
    sim = GitHubSimulator(rate_limit=1_000_000).start()
    sim.seed_activity("acme", repos=3, prs=4, issues=6, comments=12, review_comments=0)
    token = leak_guard.track(sim.mint_token(scopes=("repo",)).access_token)
    yield Setup(sim, GITHUB_PLAN, sim.api_url, token)
    sim.stop()


def totals_queries(setup: Setup) -> list[dict]:
    return [q for q in setup.sim.graphql_queries if q["operation"] == "RepositoryTotals"]


def test_github_totals_below_the_store_sweep_those_lists_one_query_for_all(local_stack,
                                                                           github):
    ports = local_stack.ports
    sync(ports, github)
    repos = live(ports, "repositories")
    assert len(repos) == 3 and all(r["node_id"] for r in repos)
    first, second = repos[0]["id"], repos[1]["id"]
    issue = live(ports, "issues", repository=first)[0]
    pull = live(ports, "pull_requests", repository=second)[0]
    under_issue = live(ports, "comments", parent=issue["id"])
    kept = [i for i in live(ports, "issues") if i["id"] != issue["id"]]
    assert github.sim.delete("issue", int(issue["external_id"]))
    assert github.sim.delete("pull", int(pull["external_id"]))
    before = github.sim.graphql_points_used(github.sim.account.id)
    earlier = len(totals_queries(github))  # the first sync's (due at every sync here)
    result = sync(ports, github)
    asked = totals_queries(github)[earlier:]
    assert len(asked) == 1 and len(asked[0]["variables"]["ids"]) == 3  # one query, 3 repos
    assert github.sim.graphql_points_used(github.sim.account.id) - before == 1
    assert result.stats.graphql_points == 1
    assert ports.business.get("pull_requests", pull["id"])["deleted"] is True
    assert_tombstones_and_views(local_stack, [issue, *under_issue], kept)
    again = sync(ports, github)  # the totals agree now: one query, nothing swept
    assert (len(totals_queries(github)), again.stats.deleted) == (earlier + 2, 0)


@pytest.mark.parametrize("fault", ["FORBIDDEN", "malformed", "http-502"])
def test_a_failed_github_totals_query_changes_nothing_and_logs(local_stack, github, caplog,
                                                              fault) -> None:
    ports = local_stack.ports
    sync(ports, github)
    assert github.sim.delete("issue", int(live(ports, "issues")[0]["external_id"]))
    before = snapshot(ports)
    if fault == "FORBIDDEN":
        github.sim.refuse_graphql("FORBIDDEN", count=1)
    elif fault == "malformed":  # data without the totals asked for
        body = json.dumps({"data": {"nodes": [{"id": "x"}, None, None],
                                    "rateLimit": {"cost": 1, "remaining": 4999,
                                                  "resetAt": "2030-01-01T00:00:00Z"}}})
        github.sim.fail_next(200, body=body.encode(), path_prefix=GRAPHQL_PATH,
                             headers={"Content-Type": "application/json"})
    else:
        github.sim.fail_next(502, count=10, path_prefix=GRAPHQL_PATH)
    with caplog.at_level(logging.WARNING, logger="keyway.fetch"):
        result = sync(ports, github)
    assert result.stats.deleted == 0 and snapshot(ports) == before
    assert [r for r in caplog.records if r.getMessage() == "fetch.reconcile_total_failed"]
    if fault == "FORBIDDEN":  # every repository of the refused query: degraded, and why
        [shown] = pending.summary(ports.business, CONNECTION)
        assert (shown["reason"], shown["repositories"]) == ("totals.unavailable: permission", 3)
        owner = status.begin(ports, TENANT, CONNECTION)  # how a fetch run ends: its status
        status.end(ports, CONNECTION, owner, "done")
        sync_doc = ports.business.get(status.COLLECTION, CONNECTION)
        assert sync_doc["degraded"] and sync_doc["missing"] == [shown]
        assert health.derive({"status": "active"}, sync_doc, ports.clock.now()) == \
            health.Health("degraded", "totals.unavailable: permission")
    else:
        assert missing(ports) == []
    github.sim.clear_faults()
    assert sync(ports, github).stats.deleted >= 1  # asked again at the next sync
    assert missing(ports) == []


def test_github_totals_not_due_cost_nothing(local_stack, github):
    """With the default schedule an unchanged re-sync sends no totals query at all."""
    ports = local_stack.ports
    sync(ports, github, timedelta(hours=24))
    github.sim.clear_log()
    result = sync(ports, github, timedelta(hours=24))
    assert totals_queries(github) == [] and result.stats.graphql_points == 0
    states = [ports.business.get("reconcile_state", r["id"]) for r in live(ports,
                                                                            "repositories")]
    due = sorted(parse_iso(s["totals_due_at"]) for s in states)  # one connection's jitter:
    assert due[-1] - due[0] < timedelta(minutes=1)  # due together, so one query asks all
    # the first repository falls due; the others' times are close behind: one query asks all
    soon = isoformat(parse_iso(isoformat(ports.clock.now())) + timedelta(minutes=30))
    for n, repo in enumerate(live(ports, "repositories")):
        state = ports.business.get("reconcile_state", repo["id"])
        ports.business.put("reconcile_state", repo["id"], {
            **state, "totals_due_at": "2000-01-01T00:00:00Z" if n == 0 else soon})
    result = sync(ports, github, timedelta(hours=24))
    asked = totals_queries(github)
    assert len(asked) == 1 and len(asked[0]["variables"]["ids"]) == 3
    assert result.stats.graphql_points == 1
    later = [ports.business.get("reconcile_state", r["id"])["totals_due_at"]
             for r in live(ports, "repositories")]
    assert min(later) > soon  # each counted: next due a period on


def test_a_repository_node_github_will_not_show_is_a_refused_count(local_stack, github):
    """``nodes: [null, …]`` with a ``NOT_FOUND`` error at that path (a stale ``node_id``, a
    repository out of reach): that repository's count is refused and shown; the others'
    totals are used."""
    ports = local_stack.ports
    sync(ports, github)
    shown = {"totalCount": 0}
    body = json.dumps({"data": {"nodes": [None, *[{"issues": shown, "pullRequests": shown,
                                                  "labels": shown}] * 2],
                                "rateLimit": {"cost": 1, "remaining": 4999,
                                              "resetAt": "2030-01-01T00:00:00Z"}},
                       "errors": [{"type": "NOT_FOUND", "path": ["nodes", 0],
                                   "message": "Could not resolve to a node"}]})
    github.sim.fail_next(200, body=body.encode(), path_prefix=GRAPHQL_PATH,
                         headers={"Content-Type": "application/json"})
    sync(ports, github)
    [refused] = pending.summary(ports.business, CONNECTION)
    assert (refused["reason"], refused["repositories"]) == ("totals.unavailable: not_found", 1)


def test_a_total_github_forbids_is_a_refused_count_for_lack_of_permission(local_stack, github):
    ports = local_stack.ports
    sync(ports, github)
    shown = {"totalCount": 0}
    body = json.dumps({"data": {"nodes": [{"issues": None, "pullRequests": shown,
                                           "labels": shown},
                                          *[{"issues": shown, "pullRequests": shown,
                                             "labels": shown}] * 2],
                                "rateLimit": {"cost": 1, "remaining": 4999,
                                              "resetAt": "2030-01-01T00:00:00Z"}},
                       "errors": [{"type": "FORBIDDEN", "path": ["nodes", 0, "issues"],
                                   "message": "Resource not accessible by integration"}]})
    github.sim.fail_next(200, body=body.encode(), path_prefix=GRAPHQL_PATH,
                         headers={"Content-Type": "application/json"})
    sync(ports, github)
    [refused] = pending.summary(ports.business, CONNECTION)
    assert (refused["reason"], refused["repositories"]) == ("totals.unavailable: permission", 1)
