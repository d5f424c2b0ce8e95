"""The Bitbucket fetcher against the simulator: every record written once, an unchanged re-sync
costing one narrowed page per list (Bitbucket has no ETags), changes costing what changed,
withdrawn approvals and removed repositories reconciled across workspaces, a time-cut sync
resuming without loss, and Bitbucket's rolling hourly limit never spun against."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from keyway.firststart import ensure_local_state
from keyway.simulators import BitbucketSimulator
from shared import bootstrap, messages, policy
from shared.bootstrap import build
from shared.clock import isoformat
from shared.config import Config
from shared.entry import event_function
from shared.fetch.bitbucket.plan import PLAN
from shared.fetch.budget import TokenBudget, budget_key
from shared.fetch.client import ProviderClient
from shared.fetch.errors import BudgetExhausted, RateLimited
from shared.fetch.sync import SyncRun
from shared.providers import registry
from shared.routing import handlers_for
from shared.topology import subscription_specs
from shared.vault import handlers as vault_handlers
from shared.vault.tokens import TokenSet
from tests.integration.conftest import _reset_caches
from tests.unit.test_entry import pubsub_event

ACME = {"repos": 3, "prs": 150, "issues": 120, "comments": 600, "review_comments": 60,
        "reviews": 50}
LABS = {"repos": 2, "prs": 30, "issues": 20, "comments": 80}
LIST_TEMPLATES = {"/user/workspaces", "/repositories/{workspace}",
                  "/repositories/{workspace}/{repo_slug}/pullrequests",
                  "/repositories/{workspace}/{repo_slug}/issues"}


@pytest.fixture
def ports(tmp_path):
    return build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path / "state")}))


@pytest.fixture
def sim(leak_guard):
    sim = BitbucketSimulator(on_issue=leak_guard.track).start()
    sim.seed_activity("acme", **ACME)
    sim.seed_activity("labs", **LABS)
    yield sim
    sim.stop()


def sync(ports, sim, token: str, budget_seconds: float = 600.0, continuation: bool = False):
    budget = TokenBudget(ports.business, ports.clock, budget_key("bitbucket", "conn-1"))
    client = ProviderClient(registry.get("bitbucket"), sim.api_url, token, requests.Session(),
                            ports.clock, budget, purpose="fetch")
    return SyncRun(ports, client, PLAN, "t-1", "conn-1", budget_seconds, continuation).run()


def live(ports, kind: str) -> list[dict]:
    return [s.data for s in ports.business.query(kind) if not s.data.get("deleted")]


def token(sim) -> str:
    return sim.mint_token(scopes=("account", "pullrequest", "issue")).access_token


def test_a_full_sync_then_an_unchanged_resync_then_only_the_changes(ports, sim):
    bearer = token(sim)
    first = sync(ports, sim, bearer)
    assert first.finished
    counts = {kind: len(live(ports, kind)) for kind in
              ("repositories", "pull_requests", "issues", "comments", "reviews")}
    comments = ACME["comments"] + ACME["review_comments"] + LABS["comments"]
    assert counts == {"repositories": 5, "pull_requests": 180, "issues": 140,
                      "comments": comments, "reviews": ACME["reviews"]}
    assert first.stats.by_kind["pull_requests"] == 180  # each written exactly once
    trackers = [r for r in live(ports, "repositories") if r["has_issues"]]
    assert len(trackers) == 3  # every other repository has its tracker off
    forbidden = {r.template for r in sim.requests_log} - LIST_TEMPLATES - {
        "/repositories/{workspace}/{repo_slug}/pullrequests/{pull_request_id}",
        "/repositories/{workspace}/{repo_slug}/pullrequests/{pull_request_id}/comments",
        "/repositories/{workspace}/{repo_slug}/issues/{issue_id}/comments"}
    assert forbidden == set()  # no source, diff, commit or removed cross-workspace endpoint

    sim.clear_log()
    again = sync(ports, sim, bearer)
    assert again.finished and again.stats.written == 0
    # 1 workspaces page, 1 repositories page per workspace, 1 narrowed page per list
    assert again.stats.requests == 1 + 2 + 5 + len(trackers) == len(sim.requests_log)
    assert {r.template for r in sim.requests_log} == LIST_TEMPLATES
    narrowed = [r.query for r in sim.requests_log if r.template.endswith("/pullrequests")]
    assert all(q["q"].startswith("updated_on > ") and q["sort"] == "-updated_on"
               for q in narrowed)

    touched_prs = sim.touch("pull", 5)
    sim.touch("issue", 3)
    sim.clear_log()
    changed = sync(ports, sim, bearer)
    assert changed.stats.by_kind == {"pull_requests": 5, "issues": 3}
    children = [r for r in sim.requests_log if r.template not in LIST_TEMPLATES]
    # participants come with the pull request list; comments are read where the pull
    # request's comment_count is not 0, and for every issue (which carries no count)
    commented = [key for key in touched_prs
                 if sim.activity.find(*key.split("#")[0].split("/")).pulls.items[
                     int(key.split("#")[1])]["comments"]]
    assert len(children) == len(commented) + 3
    assert not any(r.template.endswith("/{pull_request_id}") for r in sim.requests_log)
    titles = {p["title"] for p in live(ports, "pull_requests")}
    assert sum("(edited" in t for t in titles) == len(touched_prs)


def test_a_withdrawn_approval_and_a_removed_repository_are_reconciled(ports, sim):
    bearer = token(sim)
    assert sync(ports, sim, bearer).finished
    approvals = [r for r in live(ports, "reviews") if r["state"] == "approved"]
    victim = approvals[0]
    number = int(victim["pull_request"].rsplit("%23", 1)[1])
    full_name = next(r["full_name"] for r in live(ports, "repositories")
                     if r["id"] == victim["repository"])
    reviewer = next(u for u in sim.activity.users
                    if u["uuid"] == victim["author"]["external_id"])
    sim.activity.decide(full_name, number, reviewer, None)  # the approval is withdrawn
    sim.remove_repository("labs/repo-0002")
    removed = next(r["id"] for r in live(ports, "repositories")
                   if r["full_name"] == "labs/repo-0002")
    under = [r for kind in ("pull_requests", "issues", "comments", "reviews")
             for r in live(ports, kind) if r["repository"] == removed and r["id"] != victim["id"]]
    assert under  # the removed repository had records
    result = sync(ports, sim, bearer)
    # the withdrawn approval, the repository and every record under it
    assert result.finished and result.stats.deleted == 2 + len(under)
    assert ports.business.get("reviews", victim["id"])["deleted"] is True
    gone = [r["full_name"] for s in ports.business.query("repositories")
            if (r := s.data).get("deleted")]
    assert gone == ["labs/repo-0002"]  # the other workspace's repositories stay
    assert ports.business.get("repositories", removed)["deleted_reason"] == "access_lost"
    assert {ports.business.get(r["kind"], r["id"])["deleted_reason"] for r in under} == {
        "access_lost"}
    assert len(live(ports, "repositories")) == 4


def test_a_sync_cut_by_its_time_budget_continues_without_loss_or_repeated_lists(ports, sim):
    bearer, runs, written = token(sim), 0, 0
    while True:
        runs += 1
        result = sync(ports, sim, bearer, budget_seconds=0.0, continuation=runs > 1)
        written += result.stats.by_kind.get("pull_requests", 0)
        if result.finished:
            break
        assert runs < 500
    assert runs > 5 and written == len(live(ports, "pull_requests")) == 180
    assert len(live(ports, "repositories")) == 5
    lists = [r for r in sim.requests_log if r.template in LIST_TEMPLATES
             and "page" not in r.query]
    # every list's first page was asked for once: continuations resumed, never restarted
    assert len(lists) == 1 + 2 + 5 + 3 == len({(r.path, r.query.get("q")) for r in lists})


def test_the_local_budget_stops_a_large_first_sync_before_bitbucket_would(ports, leak_guard):
    sim = BitbucketSimulator(on_issue=leak_guard.track).start()
    try:
        # an issue's comments are one request each (an issue carries no comment count)
        sim.seed_activity("big", repos=2, prs=100, issues=1000, comments=0)
        with pytest.raises(BudgetExhausted) as stopped:
            sync(ports, sim, token(sim))
        sent = len(sim.requests_log)
        assert 890 <= sent <= 901  # 1,000 an hour less the reserve for webhooks and actions
        assert all(r.status == 200 for r in sim.requests_log)  # never a 429
        assert stopped.value.retry_at > datetime.now(UTC) + timedelta(minutes=55)
        with pytest.raises(BudgetExhausted):  # a second attempt sends nothing
            sync(ports, sim, token(sim))
        assert len(sim.requests_log) == sent
    finally:
        sim.stop()


@pytest.mark.parametrize("retry_after", [None, 2])
def test_a_429_stops_the_run_and_nothing_is_sent_until_its_time(ports, sim, retry_after):
    bearer = token(sim)
    sim.rate_limit_next(retry_after=retry_after)
    with pytest.raises(RateLimited) as limited:
        sync(ports, sim, bearer)
    wait = limited.value.retry_at - datetime.now(UTC)
    expected = timedelta(seconds=retry_after or 60)  # no Retry-After: a minute
    assert expected - timedelta(seconds=5) < wait <= expected
    sent = len(sim.requests_log)
    with pytest.raises(BudgetExhausted):
        sync(ports, sim, bearer)
    assert len(sim.requests_log) == sent  # the exhausted budget kept it from spinning
    if retry_after:
        time.sleep(retry_after + 0.2)
        assert sync(ports, sim, bearer).finished


def test_the_simulators_own_limit_answers_a_bare_429_after_1000_requests(leak_guard):
    sim = BitbucketSimulator(rate_limit=3, on_issue=leak_guard.track).start()
    try:
        sim.seed_activity("acme", repos=1, prs=1, issues=0, comments=0)
        headers = {"Authorization": f"Bearer {token(sim)}"}
        answers = [requests.get(f"{sim.api_url}/repositories/acme", headers=headers,
                                timeout=10) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert not {h.lower() for h in answers[3].headers} & {
            "retry-after", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"}
        assert answers[3].json()["error"]["message"] == \
            "Rate limit for this resource has been exceeded"
        assert requests.get(f"{sim.api_url}/user", headers=headers, timeout=10).ok  # not metered
    finally:
        sim.stop()


# ---- the scheduled path through the real entry points -----------------------------------------
@pytest.fixture
def stack(tmp_path, monkeypatch, sim):
    sim.register_client("bb-key", "bb-secret-1", ["http://127.0.0.1:8080/cb"])
    monkeypatch.setenv("KEYWAY_STATE_DIR", str(tmp_path / "state"))
    for name, value in (("CLIENT_ID", "bb-key"), ("OAUTH_URL", sim.oauth_url),
                        ("API_URL", sim.api_url)):
        monkeypatch.setenv(f"KEYWAY_BITBUCKET_{name}", value)
    monkeypatch.setenv("KEYWAY_SECRET_BITBUCKET_CLIENT_SECRET", "bb-secret-1")
    monkeypatch.delenv("KEYWAY_BACKEND", raising=False)
    _reset_caches()
    ports = bootstrap.ports()
    ensure_local_state(ports)
    for spec in subscription_specs():
        ports.bus.ensure_subscription(spec)
    issued = sim.oauth.mint("bb-key", scopes=("account", "pullrequest", "issue"))
    vault_handlers.service("bitbucket", ports).store_app_token(
        "t-1", "conn-1", "admin", TokenSet(issued.access_token, issued.refresh_token,
                                           datetime.now(UTC) + timedelta(minutes=2)))
    ports.business.put("connections", "conn-1", {
        "tenant": "t-1", "provider": "bitbucket", "status": "active", "api_base": sim.api_url,
        "next_sync_at": isoformat(datetime.now(UTC) - timedelta(seconds=1)),
        "interval_seconds": 900})
    yield ports, issued
    _reset_caches()


def deliver(ports, topic: str) -> list:
    subscriber = policy.ROUTES[topic].subscriber
    receive = event_function(subscriber, handlers_for(subscriber))
    got: list = []
    ports.bus.pull(policy.subscription_name(topic), got.append, max_messages=10)
    for m in got:
        inbound = messages.decode(topic, m.data, m.attributes, m.message_id)
        receive(pubsub_event(topic, inbound.sender, inbound.type, inbound.body))
    return got


def test_a_scheduled_sync_refreshes_the_token_with_basic_auth_and_reaches_the_records(
        stack, sim):
    ports, issued = stack
    tick = event_function("scheduler", handlers_for("scheduler"))
    tick(pubsub_event("refresh-ticks", "cloud-scheduler", "refresh.tick",
                      {"tick_time": isoformat(datetime.now(UTC))}))
    assert len(deliver(ports, "sync-requests-bitbucket")) == 1  # the vault refreshed first
    refresh = [r for r in sim.requests_log if r.template == "/site/oauth2/access_token"]
    assert [(r.status, r.headers.get("authorization")) for r in refresh] == [(200, "Basic")]
    assert issued.refresh_token in sim.oauth.refresh_tokens  # Bitbucket does not rotate it
    sim.oauth.access_tokens.pop(issued.access_token)  # only the refreshed token can work now
    assert len(deliver(ports, "fetch-jobs-bitbucket")) == 1
    assert len(live(ports, "pull_requests")) == 180
    assert ports.business.get("sync_status", "conn-1")["state"] == "done"
    used = [r for r in sim.requests_log if r.template != "/site/oauth2/access_token"]
    assert {(r.status, r.headers.get("authorization")) for r in used} == {(200, "Bearer")}


def test_a_sync_cut_by_its_time_budget_continues_through_the_vault_without_restarting(
        stack, sim, monkeypatch):
    monkeypatch.setenv("KEYWAY_SYNC_BUDGET_SECONDS", "1")
    _reset_caches()
    ports, _ = stack
    sim.latency = 0.05  # a provider slow enough that the whole sync outlasts one budget
    receive = event_function("scheduler", handlers_for("scheduler"))
    receive(pubsub_event("refresh-ticks", "cloud-scheduler", "refresh.tick",
                         {"tick_time": isoformat(datetime.now(UTC))}))
    states = []
    for _ in range(50):
        deliver(ports, "sync-requests-bitbucket")  # the tick's request, then continuations
        if not deliver(ports, "fetch-jobs-bitbucket"):
            break
        states.append(ports.business.get("sync_status", "conn-1")["state"])
    assert states[0] == "continuing" and states[-1] == "done" and len(states) > 1
    assert len(live(ports, "pull_requests")) == 180
    firsts = [r for r in sim.requests_log if r.template in LIST_TEMPLATES
              and "page" not in r.query]
    assert len(firsts) == 1 + 2 + 5 + 3  # each list started once across every continuation
