"""The fetcher against the simulators at the issue's scale: every record written exactly once,
an immediate re-sync costs only 304s, changes cost only what changed, and faults lose nothing."""

from __future__ import annotations

import time

import pytest
import requests

from keyway.simulators import GitHubSimulator, GitLabSimulator
from shared.bootstrap import build
from shared.config import Config
from shared.fetch.budget import TokenBudget, budget_key
from shared.fetch.client import ProviderClient
from shared.fetch.errors import BudgetExhausted, MalformedResponse, RateLimited
from shared.fetch.github.plan import PLAN as GITHUB_PLAN
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
                            timeout=timeout)
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
    assert spent <= 10 + 2 + 2  # reviews of the 10 changed PRs + one page each of PRs, issues


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
