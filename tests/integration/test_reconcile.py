"""Deletions at the provider that no webhook told keyway about, per provider, against the
simulators: the incremental sync's count signals and one reconciliation cycle turn every
deleted record into a tombstone with its reason, nothing else is touched, the data API hides
the tombstones by default and shows them with ``include_deleted=true``, and an unchanged
connection's re-sync and cycle cost no extra request."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
import requests

from keyway.simulators import (
    BitbucketSimulator,
    GitHubSimulator,
    GitLabSimulator,
    JiraSimulator,
)
from shared.fetch import reconcile
from shared.fetch.bitbucket.plan import PLAN as BITBUCKET_PLAN
from shared.fetch.budget import TokenBudget, budget_key
from shared.fetch.client import ProviderClient
from shared.fetch.github.plan import PLAN as GITHUB_PLAN
from shared.fetch.gitlab.plan import REST_PLAN as GITLAB_PLAN
from shared.fetch.jira.plan import PLAN as JIRA_PLAN
from shared.fetch.sync import SyncRun
from shared.ingest.handler import on_webhook_event
from shared.providers import registry
from shared.records.model import record_id
from tests.unit.test_simulator_hooks import Receiver
from tests.unit.test_webhooks_ingest import inbound

TENANT, CONNECTION = "t-1", "conn-1"
API = {"pull_requests": "pull-requests", "issues": "issues", "comments": "comments",
       "labels": "labels", "repositories": "repositories", "reviews": "reviews"}


@dataclass
class Setup:
    sim: Any
    plan: Any
    api_url: str
    token: str


def live(ports, kind: str, **where: Any) -> list[dict]:
    return [s.data for s in ports.business.query(kind) if not s.data.get("deleted")
            and all(s.data.get(k) == v for k, v in where.items())]


def client_for(ports, setup: Setup) -> tuple[ProviderClient, TokenBudget]:
    budget = TokenBudget(ports.business, ports.clock, budget_key(setup.plan.provider, CONNECTION))
    client = ProviderClient(registry.get(setup.plan.provider), setup.api_url, setup.token,
                            requests.Session(), ports.clock, budget, purpose="fetch")
    return client, budget


def sync(ports, setup: Setup):
    client, _ = client_for(ports, setup)
    run = SyncRun(ports, client, setup.plan, TENANT, CONNECTION, 600.0)
    result = run.run()
    assert result.finished
    return result


def cycle(ports, setup: Setup, force: bool = True) -> reconcile.Tally:
    client, budget = client_for(ports, setup)
    return reconcile.cycle(ports, client, setup.plan, TENANT, CONNECTION, budget, 7,
                           force=force)


def requests_made(setup: Setup) -> int:
    return len(setup.sim.requests_log)


def assert_tombstones_and_views(stack, gone: list[dict], kept: list[dict]) -> None:
    """Each of ``gone`` is a tombstone with reason ``deleted``, hidden from the data API by
    default and shown with include_deleted=true; each of ``kept`` is untouched."""
    token = stack.token(TENANT, "u-1", "member")
    for record in gone:
        stored = stack.ports.business.get(record["kind"], record["id"])
        assert (stored["deleted"], stored.get("deleted_reason")) == (True, "deleted"), stored
        path = f"/api/v1/{API[record['kind']]}/{quote(record['id'], safe='')}"
        assert stack.call("GET", path, token).status_code == 404
        shown = json.loads(stack.call("GET", path + "?include_deleted=true", token).get_data())
        assert (shown["deleted"], shown["deleted_reason"]) == (True, "deleted")
    for record in kept:
        assert stack.ports.business.get(record["kind"], record["id"])["deleted"] is False
    for kind in {r["kind"] for r in gone}:
        listed = json.loads(stack.call("GET", f"/api/v1/{API[kind]}?limit=200",
                                       token).get_data())["items"]
        assert not {r["id"] for r in gone} & {i["id"] for i in listed}
        every = json.loads(stack.call("GET", f"/api/v1/{API[kind]}?limit=200&include_deleted="
                                      "true", token).get_data())["items"]
        assert {r["id"] for r in gone if r["kind"] == kind} <= {i["id"] for i in every}


def unchanged_costs_nothing_extra(ports, setup: Setup) -> None:
    """An unchanged re-sync sends no sweep, and a cycle with nothing due sends nothing."""
    setup.sim.clear_log()
    result = sync(ports, setup)
    assert result.stats.deleted == 0
    sent = requests_made(setup)
    tally = cycle(ports, setup, force=False)
    assert (tally.requests, tally.repositories, requests_made(setup)) == (0, 0, sent)


# ---- GitHub --------------------------------------------------------------------------------
@pytest.fixture
def github(leak_guard):
    sim = GitHubSimulator(rate_limit=1_000_000).start()
    sim.seed_activity("acme", repos=1, prs=6, issues=10, comments=60, review_comments=12)
    token = leak_guard.track(sim.mint_token(scopes=("repo",)).access_token)
    yield Setup(sim, GITHUB_PLAN, sim.api_url, token)
    sim.stop()


def test_github_deletions_without_webhooks_become_tombstones(local_stack, github):
    ports = local_stack.ports
    sync(ports, github)
    issue_comments = live(ports, "comments", review_comment=False)
    comment = issue_comments[0]
    issue = next(i for i in live(ports, "issues")
                 if i["id"] != comment["parent"])
    under_issue = live(ports, "comments", parent=issue["id"])
    label = live(ports, "labels")[0]
    remark = live(ports, "comments", review_comment=True)[0]
    for kind, record in (("comment", comment), ("issue", issue), ("label", label),
                         ("review_comment", remark)):
        assert github.sim.delete(kind, int(record["external_id"]))

    github.sim.clear_log()
    incremental = sync(ports, github)
    # the comment: its issue's `comments` count is below what is stored → one targeted sweep
    # of that issue's comments; the label: the labels list is read whole whenever it changes
    per_issue = [r for r in github.sim.requests_log
                 if r.template.endswith("/issues/{issue_number}/comments")]
    assert len(per_issue) == 1
    assert ports.business.get("comments", comment["id"])["deleted"] is True
    assert ports.business.get("labels", label["id"])["deleted"] is True
    assert incremental.stats.deleted == 2
    # an issue and a review comment leave no count behind: the cycle's full sweep finds them
    tally = cycle(ports, github)
    assert tally.repositories == 1 and tally.tombstoned == 2 + len(under_issue)
    kept = [c for c in issue_comments if c["id"] != comment["id"]
            and c["parent"] != issue["id"]]
    assert_tombstones_and_views(local_stack, [comment, issue, label, remark, *under_issue],
                                kept)
    unchanged_costs_nothing_extra(ports, github)


def test_a_github_sweep_spares_what_was_written_after_it_began(local_stack, github):
    ports = local_stack.ports
    sync(ports, github)
    issue = live(ports, "issues")[0]
    # a record keyway heard of from a webhook after the sweep's start: not in the lists read
    repo_key = ports.business.get("repositories", issue["repository"])["external_id"]
    future = {**issue, "id": record_id(TENANT, "github", "issues", f"{repo_key}#99999"),
              "external_id": "999999", "number": 99999,
              "updated_at": "2999-01-01T00:00:00.000000Z"}
    ports.business.put("issues", future["id"], future)
    tally = cycle(ports, github)
    assert tally.tombstoned == 0
    assert ports.business.get("issues", future["id"])["deleted"] is False


def test_github_delete_webhooks_reach_keyway_and_tombstone_at_once(local_stack, github):
    ports = local_stack.ports
    ports.business.put("connections", CONNECTION, {"tenant": TENANT, "provider": "github",
                                                   "kind": "app", "status": "active"})
    sync(ports, github)
    repo = live(ports, "repositories")[0]
    receiver = Receiver()
    try:
        github.sim.hooks.add(repo["full_name"].lower(), receiver.url, "hook-secret", ("*",), 0)
        comment = live(ports, "comments", review_comment=False)[0]
        issue = next(i for i in live(ports, "issues") if i["id"] != comment["parent"])
        under_issue = live(ports, "comments", parent=issue["id"])
        label, remark = live(ports, "labels")[0], live(ports, "comments", review_comment=True)[0]
        for kind, record in (("comment", comment), ("issue", issue), ("label", label),
                             ("review_comment", remark)):
            assert github.sim.delete(kind, int(record["external_id"]))
        assert [a.status_code for a in github.sim.deletion_deliveries] == [202] * 4
        events = [(h["X-GitHub-Event"], json.loads(body)) for _, h, body in receiver.got]
        assert [(name, body["action"]) for name, body in events] == [
            ("issue_comment", "deleted"), ("issues", "deleted"), ("label", "deleted"),
            ("pull_request_review_comment", "deleted")]
        for n, (name, body) in enumerate(events):
            on_webhook_event(ports, inbound("github", name, body, delivery=f"d-{n}"))
    finally:
        receiver.stop()
    assert_tombstones_and_views(local_stack, [comment, issue, label, remark, *under_issue], [])
    github.sim.clear_log()
    assert sync(ports, github).stats.deleted == 0  # nothing left to find: no sweep was needed
    assert not [r for r in github.sim.requests_log
                if r.template.endswith("/issues/{issue_number}/comments")]


def test_a_due_sweep_waits_for_spare_budget_and_runs_once_there_is(local_stack, github):
    ports = local_stack.ports
    sync(ports, github)
    issue = live(ports, "issues")[0]
    assert github.sim.delete("issue", int(issue["external_id"]))
    client, budget = client_for(ports, github)
    reset = ports.clock.now() + timedelta(hours=1)
    budget.observe(limit=5000, remaining=budget.reserve + 3, reset_at=reset)  # 3 spare
    github.sim.clear_log()
    tally = reconcile.cycle(ports, client, GITHUB_PLAN, TENANT, CONNECTION, budget, 7,
                            force=True)
    assert (tally.deferred, tally.requests, requests_made(github)) == (1, 0, 0)
    assert ports.business.get("issues", issue["id"])["deleted"] is False
    budget.observe(limit=5000, remaining=4000, reset_at=reset + timedelta(hours=1))
    tally = reconcile.cycle(ports, client, GITHUB_PLAN, TENANT, CONNECTION, budget, 7,
                            force=True)
    assert tally.repositories == 1 and tally.requests == requests_made(github) > 0
    assert ports.business.get("issues", issue["id"])["deleted_reason"] == "deleted"


def test_a_cycle_out_of_time_stops_between_lists_and_leaves_the_repository_due(local_stack,
                                                                             github):
    """The cycle runs on a clock of its own after the sync: once out of time it starts no
    further list, tombstones nothing of what it did not read, and the repository stays due."""
    ports = local_stack.ports
    sync(ports, github)
    issue = live(ports, "issues")[0]
    assert github.sim.delete("issue", int(issue["external_id"]))
    client, budget = client_for(ports, github)
    asked: list[int] = []

    def after_one_list() -> bool:
        asked.append(1)
        return len(asked) > 2  # the repository check, the first list, then out of time

    before = ports.business.query("reconcile_state")
    tally = reconcile.cycle(ports, client, GITHUB_PLAN, TENANT, CONNECTION, budget, 7,
                            force=True, out_of_time=after_one_list)
    assert (tally.repositories, tally.deferred) == (0, len(live(ports, "repositories")))
    assert ports.business.query("reconcile_state") == before  # nothing swept counts as done
    assert ports.business.get("issues", issue["id"])["deleted"] is False
    tally = reconcile.cycle(ports, client, GITHUB_PLAN, TENANT, CONNECTION, budget, 7,
                            force=True)  # time again: swept whole
    assert ports.business.get("issues", issue["id"])["deleted_reason"] == "deleted"


# ---- GitLab --------------------------------------------------------------------------------
@pytest.fixture
def gitlab(leak_guard):
    sim = GitLabSimulator(rate_limit=1_000_000).start()
    sim.seed_activity("acme", repos=1, prs=6, issues=10, comments=60)
    token = leak_guard.track(sim.mint_token(scopes=("read_api",)).access_token)
    yield Setup(sim, GITLAB_PLAN, sim.api_url, token)
    sim.stop()


def test_gitlab_deletions_without_webhooks_become_tombstones(local_stack, gitlab):
    ports = local_stack.ports
    sync(ports, gitlab)
    mr_notes = [c for c in live(ports, "comments") if "%23" in c["parent"]
                and ":pr:" in c["parent"]]
    note = mr_notes[0]
    issue = live(ports, "issues")[0]
    under_issue = live(ports, "comments", parent=issue["id"])
    label = live(ports, "labels")[0]
    for kind, record in (("comment", note), ("issue", issue), ("label", label)):
        assert gitlab.sim.delete(kind, int(record["external_id"]))
    sync(ports, gitlab)
    # the issue: the issues list's X-Total is below the issues stored → one sweep of that list
    assert ports.business.get("issues", issue["id"])["deleted"] is True
    assert ports.business.get("labels", label["id"])["deleted"] is True
    cycle(ports, gitlab)
    kept = [c for c in mr_notes if c["id"] != note["id"]]
    assert_tombstones_and_views(local_stack, [note, issue, label, *under_issue], kept)
    unchanged_costs_nothing_extra(ports, gitlab)


# ---- Bitbucket -----------------------------------------------------------------------------
@pytest.fixture
def bitbucket(leak_guard):
    sim = BitbucketSimulator(on_issue=leak_guard.track).start()
    sim.seed_activity("acme", repos=2, prs=8, issues=8, comments=60)
    token = sim.mint_token(scopes=("account", "pullrequest", "issue")).access_token
    yield Setup(sim, BITBUCKET_PLAN, sim.api_url, token)
    sim.stop()


def test_bitbucket_deletions_without_webhooks_become_tombstones(local_stack, bitbucket):
    ports = local_stack.ports
    sync(ports, bitbucket)
    repos = {r["id"]: r["full_name"] for r in live(ports, "repositories")}
    pr_comments = [c for c in live(ports, "comments") if ":pr:" in c["parent"]]
    comment = pr_comments[0]
    issue = live(ports, "issues")[0]
    assert bitbucket.sim.delete("comment", f"{repos[comment['repository']]}#"
                                           f"{comment['external_id']}")
    assert bitbucket.sim.delete("issue", f"{repos[issue['repository']]}#{issue['number']}")
    incremental = sync(ports, bitbucket)
    # the comment: its pull request moved, and its comment_count is below the comments stored
    assert ports.business.get("comments", comment["id"])["deleted"] is True
    assert incremental.stats.deleted == 1
    cycle(ports, bitbucket)  # the issue (no count points at it): the cycle's full sweep
    kept = [c for c in pr_comments if c["id"] != comment["id"]]
    assert_tombstones_and_views(local_stack, [comment, issue], kept)
    unchanged_costs_nothing_extra(ports, bitbucket)


# ---- Jira ----------------------------------------------------------------------------------
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


def test_jira_deletions_without_webhooks_become_tombstones(local_stack, jira):
    ports = local_stack.ports
    sync(ports, jira)
    comments = live(ports, "comments")
    comment = comments[0]
    issue = next(i for i in live(ports, "issues") if i["id"] != comment["parent"])
    under_issue = live(ports, "comments", parent=issue["id"])
    assert jira.sim.delete("comment", int(comment["external_id"].rsplit(":", 1)[-1]))
    assert jira.sim.delete("issue", issue["external_id"])
    sync(ports, jira)
    tally = cycle(ports, jira)
    assert tally.targeted == 1  # the issue whose comment total is one below the store's
    kept = [c for c in comments if c["id"] != comment["id"] and c["parent"] != issue["id"]]
    assert_tombstones_and_views(local_stack, [comment, issue, *under_issue], kept)
    unchanged_costs_nothing_extra(ports, jira)


def test_jira_delete_webhooks_reach_keyway_and_tombstone_at_once(local_stack, jira, leak_guard):
    ports = local_stack.ports
    sync(ports, jira)
    project = int(live(ports, "repositories")[0]["external_id"])
    receiver = Receiver()
    try:
        secret = leak_guard.track(secrets.token_urlsafe(48))
        jira.sim.register_client("app-a", secret, ["https://x.test/cb"])
        jira.sim.webhooks.add("app-a", receiver.url, ("jira:issue_deleted", "comment_deleted"),
                              f"project = {project}", frozenset({project}))
        comment = live(ports, "comments")[0]
        issue = next(i for i in live(ports, "issues") if i["id"] != comment["parent"])
        under_issue = live(ports, "comments", parent=issue["id"])
        assert jira.sim.delete("comment", int(comment["external_id"]))
        assert jira.sim.delete("issue", int(issue["external_id"]))
        assert [a.status_code for a in jira.sim.deletion_deliveries] == [202] * 2
        bodies = [json.loads(body) for _, _, body in receiver.got]
        assert [b["webhookEvent"] for b in bodies] == ["comment_deleted", "jira:issue_deleted"]
        for n, body in enumerate(bodies):
            on_webhook_event(ports, inbound("jira", "", body, delivery=f"j-{n}"))
    finally:
        receiver.stop()
    assert_tombstones_and_views(local_stack, [comment, issue, *under_issue], [])
    jira.sim.clear_log()
    assert sync(ports, jira).stats.deleted == 0
    assert cycle(ports, jira).tombstoned == 0  # nothing left for the sweep to find


def test_a_cycle_stopped_by_a_rate_limit_leaves_the_finished_sync_done(served, monkeypatch,
                                                                      leak_guard, caplog):
    """The cycle runs after a sync that finished: a rate limit (or a transient failure) there
    is logged and leaves that sync ``done``, not ``waiting`` or ``retrying``."""
    import logging
    from collections import Counter
    from datetime import UTC, datetime

    from keyway.simulators import GitHubSimulator
    from shared.fetch.errors import RateLimited
    from tests.integration.test_delivery_recovery import pump
    from tests.integration.test_webhook_registration import _callback, connect

    sim = GitHubSimulator(expiring_tokens=False, on_issue=leak_guard.track).start()
    try:
        sim.register_client("gh-client", "gh-client-secret-1", [_callback(served, "github")])
        served.provider_config(monkeypatch, "github", "gh-client", "gh-client-secret-1",
                               sim.oauth_url, sim.api_url)
        sim.seed_activity("acme", repos=1, prs=2, issues=2, comments=2)

        def limited(*args, **kwargs):
            raise RateLimited("secondary rate limit", datetime.now(UTC) + timedelta(hours=1))

        monkeypatch.setattr(reconcile, "cycle", limited)
        with caplog.at_level(logging.WARNING, logger="keyway.fetch"):
            connection, _ = connect(served, "github")
            pump(served, "github", Counter())
        state = served.ports.business.get("sync_status", connection)
        assert state["state"] == "done" and state["last_success_at"]
        assert "fetch.reconcile_stopped" in [r.getMessage() for r in caplog.records]
    finally:
        sim.stop()
