"""The fetcher against the simulators at the issue's scale: every record written exactly once,
an immediate re-sync costs only 304s, changes cost only what changed, and faults lose nothing.
GitHub reviews come through GraphQL in batches of 100 pull requests and land as the same records
the per-pull-request REST endpoint gave."""

from __future__ import annotations

import dataclasses
import json
import math
import time

import pytest
import requests

from keyway.simulators import GitHubSimulator, GitLabSimulator
from keyway.simulators.github_api import node_id
from shared.bootstrap import build
from shared.config import Config
from shared.fetch.budget import TokenBudget, budget_key
from shared.fetch.client import ProviderClient
from shared.fetch.errors import BudgetExhausted, MalformedResponse, RateLimited
from shared.fetch.github.plan import PLAN as GITHUB_PLAN
from shared.fetch.github.plan import REST_REVIEWS
from shared.fetch.gitlab.plan import PLAN as GITLAB_PLAN
from shared.fetch.sync import SyncRun
from shared.providers import registry

SCALE = {"repos": 4, "prs": 2000, "issues": 3000, "comments": 20000}
SMALL = {"repos": 2, "prs": 300, "issues": 400, "comments": 2000}


@pytest.fixture(scope="module")
def github_sim():
    sim = GitHubSimulator(rate_limit=1_000_000).start()
    sim.seed_activity("acme", **SCALE)
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def small_sim():
    sim = GitHubSimulator(rate_limit=1_000_000).start()
    sim.seed_activity("acme", **SMALL)
    yield sim
    sim.stop()


@pytest.fixture
def ports(tmp_path):
    return build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path / "state")}))


def sync(ports, sim, plan, token: str, budget_seconds: float = 600.0, connection="conn-1",
         timeout: float = 10.0):
    spec = registry.get(plan.provider)
    budget = TokenBudget(ports.business, ports.clock, budget_key(plan.provider, connection))
    client = ProviderClient(spec, sim.api_url, token, requests.Session(), ports.clock, budget,
                            timeout=timeout, purpose="fetch")
    return SyncRun(ports, client, plan, "t-1", connection, budget_seconds).run()


def count(ports, kind: str) -> int:
    return len([s for s in ports.business.query(kind) if not s.data.get("deleted")])


def token_for(sim, leak_guard) -> str:
    return leak_guard.track(sim.mint_token(scopes=("repo",)).access_token)


def test_full_sync_then_conditional_resync_then_only_changes(ports, github_sim, leak_guard):
    token = token_for(github_sim, leak_guard)
    first = sync(ports, github_sim, GITHUB_PLAN, token)
    assert first.finished
    assert count(ports, "pull_requests") == SCALE["prs"]
    assert count(ports, "issues") == SCALE["issues"]
    assert count(ports, "comments") == SCALE["comments"]
    assert first.stats.by_kind["pull_requests"] == SCALE["prs"]  # each written exactly once
    assert first.stats.by_kind["comments"] == SCALE["comments"]

    used = github_sim.quota_used(github_sim.account.id)
    again = sync(ports, github_sim, GITHUB_PLAN, token)
    assert again.finished and again.stats.written == 0
    assert again.stats.requests == again.stats.not_modified  # only conditional requests
    assert github_sim.quota_used(github_sim.account.id) == used  # 304s spend no quota

    github_sim.touch("pull", 10)
    github_sim.touch("issue", 10)
    changed = sync(ports, github_sim, GITHUB_PLAN, token)
    assert changed.stats.by_kind.get("pull_requests") == 10
    assert changed.stats.by_kind.get("issues") == 10
    spent = github_sim.quota_used(github_sim.account.id) - used
    assert spent <= 4 + 4  # one page of PRs and of issues per repository; reviews are GraphQL
    assert changed.stats.graphql <= 4  # the changed PRs' reviews: one query per PR page


def test_a_sync_cut_by_its_time_budget_resumes_without_loss_or_duplicates(ports, small_sim,
                                                                         leak_guard):
    token = token_for(small_sim, leak_guard)
    runs, written = 0, 0
    while True:
        runs += 1
        result = sync(ports, small_sim, GITHUB_PLAN, token, budget_seconds=0.0)
        written += result.stats.by_kind.get("comments", 0)
        if result.finished:
            break
        assert runs < 500
    assert runs > 10  # one page per run
    assert count(ports, "pull_requests") == SMALL["prs"]
    assert count(ports, "comments") == SMALL["comments"] == written  # none twice, none lost


def test_a_rate_limit_stops_the_run_without_spinning_and_resumes_after(ports, small_sim,
                                                                        leak_guard):
    token = token_for(small_sim, leak_guard)
    small_sim.rate_limit_next(status=429, retry_after=1, count=1)
    with pytest.raises(RateLimited) as limited:
        sync(ports, small_sim, GITHUB_PLAN, token)
    assert limited.value.retry_at > ports.clock.now()
    requests_before = len(small_sim.requests_log)
    try:
        sync(ports, small_sim, GITHUB_PLAN, token)
    except BudgetExhausted as waiting:  # the budget knows the reset: no request is sent
        assert len(small_sim.requests_log) == requests_before
        time.sleep(max(0.0, (waiting.retry_at - ports.clock.now()).total_seconds()) + 0.2)
    assert sync(ports, small_sim, GITHUB_PLAN, token).finished
    assert count(ports, "issues") == SMALL["issues"]


def test_a_crash_between_pages_resumes_from_the_last_checkpoint(ports, small_sim, leak_guard):
    token = token_for(small_sim, leak_guard)
    small_sim.malformed_next(count=1, path_prefix="/api/v3/repos/acme/repo-0002/issues/comments")
    with pytest.raises(MalformedResponse):  # the run dies mid-walk, as a crashed instance would
        sync(ports, small_sim, GITHUB_PLAN, token)
    partial = count(ports, "comments")
    assert 0 < partial < SMALL["comments"]
    result = sync(ports, small_sim, GITHUB_PLAN, token)
    assert result.finished
    assert count(ports, "comments") == SMALL["comments"]
    assert result.stats.by_kind.get("comments", 0) == SMALL["comments"] - partial


def test_server_errors_and_a_stalled_page_are_retried(ports, small_sim, leak_guard):
    token = token_for(small_sim, leak_guard)
    small_sim.fail_next(502, count=2)
    small_sim.stall_next(2.0, count=1, path_prefix="/api/v3/repos/")  # > timeout: retried
    assert sync(ports, small_sim, GITHUB_PLAN, token, timeout=1.0).finished
    assert count(ports, "pull_requests") == SMALL["prs"]
    assert count(ports, "comments") == SMALL["comments"]


# ---- reviews through GraphQL ----------------------------------------------------------------
REST_PLAN = dataclasses.replace(GITHUB_PLAN, children={"reviews": REST_REVIEWS})
REVIEWS_REST = "/repos/{owner}/{repo}/pulls/{pull_number}/reviews"


@pytest.fixture
def reviewed_sim():
    sim = GitHubSimulator(rate_limit=1_000_000).start()
    sim.seed_activity("acme", repos=2, prs=300, issues=100, comments=300, reviews=900)
    sim.seed_activity("busy", repos=1, prs=3, issues=0, comments=0, reviews=400)
    yield sim
    sim.stop()


def reviews_of(ports) -> dict:
    return {s.id: s.data for s in ports.business.query("reviews")}


def counted(sim, run):
    """``run()``'s result and the requests it made: REST by template, GraphQL queries."""
    before, queries = len(sim.requests_log), len(sim.graphql_queries)
    result = run()
    log = sim.requests_log[before:]
    return result, log, sim.graphql_queries[queries:]


def test_a_full_sync_reads_reviews_in_graphql_batches_as_the_same_records(
        tmp_path, reviewed_sim, leak_guard):
    sim, token = reviewed_sim, token_for(reviewed_sim, leak_guard)
    graphql_ports = build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path / "a")}))
    rest_ports = build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path / "b")}))
    batched, log, queries = counted(sim, lambda: sync(graphql_ports, sim, GITHUB_PLAN, token))
    per_pull, rest_log, _ = counted(sim, lambda: sync(rest_ports, sim, REST_PLAN, token))
    assert batched.finished and per_pull.finished
    stored = reviews_of(graphql_ports)
    assert len(stored) == 1300 and stored == reviews_of(rest_ports)  # identical records

    pulls = [len(a.pulls.items) for a in sim.activity.repos.values()]
    reviews = [len(r) for a in sim.activity.repos.values() for r in a.reviews.values()]
    pages = sum(math.ceil(n / 100) for n in pulls)  # one batch per page of pull requests
    follow_ups = sum(math.ceil(n / 100) - 1 for n in reviews if n > 100)
    assert follow_ups >= 1
    assert [q["operation"] for q in queries].count("PullRequestReviews") == pages == 5
    assert len(queries) == batched.stats.graphql == pages + follow_ups
    assert not any(r.template == REVIEWS_REST for r in log)
    assert sum(r.template == REVIEWS_REST for r in rest_log) >= sum(pulls) == 303
    assert len(log) == len(rest_log) - sum(
        r.template == REVIEWS_REST for r in rest_log) + len(queries)
    # 1 point each, as the answers' rateLimit.cost says (the simulator's hourly meter is not
    # read here: its window turns with the wall clock's hour, which a run may cross)
    assert batched.stats.graphql_points == len(queries)


def test_a_resync_asks_graphql_only_for_the_changed_pull_requests(ports, reviewed_sim,
                                                                  leak_guard):
    sim, token = reviewed_sim, token_for(reviewed_sim, leak_guard)
    assert sync(ports, sim, GITHUB_PLAN, token).finished
    touched = sim.touch("pull", 7)
    (act,) = [a for a in sim.activity.repos.values() if a.name == "acme/repo-0002"]
    number = next(n for n, t in sorted(act.by_number.items())
                  if t["pull_id"] is not None and t["pull_id"] not in touched)
    review = sim.add_review("acme/repo-0002", number, "CHANGES_REQUESTED")
    result, log, queries = counted(sim, lambda: sync(ports, sim, GITHUB_PLAN, token))
    asked = {i for q in queries for i in q["variables"].get("ids", [])}
    expected = {node_id("011", "PullRequest", p)
                for p in [*touched, act.by_number[number]["pull_id"]]}
    assert asked == expected and len(queries) <= 3  # at most one per repository
    assert not any(r.template == REVIEWS_REST for r in log)
    assert result.stats.by_kind.get("reviews") == 1
    assert any(r["external_id"] == str(review["id"]) and r["state"] == "changes_requested"
               for r in reviews_of(ports).values())
    _, _, none = counted(sim, lambda: sync(ports, sim, GITHUB_PLAN, token))
    assert none == []  # nothing changed: no GraphQL at all


def test_a_graphql_rate_limit_mid_page_loses_no_review(ports, reviewed_sim, leak_guard):
    sim, token = reviewed_sim, token_for(reviewed_sim, leak_guard)
    limited = json.dumps({"errors": [{"type": "RATE_LIMITED", "message": "limit"}]})
    sim.fail_next(200, body=limited.encode(), path_prefix="/api/graphql",
                  headers={"Retry-After": "1"})
    with pytest.raises(RateLimited) as stopped:
        sync(ports, sim, GITHUB_PLAN, token)
    assert 0 < (stopped.value.retry_at - ports.clock.now()).total_seconds() <= 1
    assert count(ports, "pull_requests") == 0  # children first: the page was not written
    assert sync(ports, sim, GITHUB_PLAN, token).finished
    assert count(ports, "pull_requests") == 303 and count(ports, "reviews") == 1300


def test_gitlab_full_sync_and_conditional_resync(ports, leak_guard):
    sim = GitLabSimulator(rate_limit=1_000_000).start()
    try:
        sim.seed_activity("acme-group", repos=2, prs=200, issues=300, comments=1000)
        token = leak_guard.track(sim.mint_token(scopes=("read_api",)).access_token)
        first = sync(ports, sim, GITLAB_PLAN, token)
        assert first.finished
        assert count(ports, "pull_requests") == 200 and count(ports, "issues") == 300
        again = sync(ports, sim, GITLAB_PLAN, token)
        assert again.stats.written == 0 and again.stats.requests == again.stats.not_modified
    finally:
        sim.stop()
