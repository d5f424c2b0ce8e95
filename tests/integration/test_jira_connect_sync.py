"""Jira Cloud end to end against the simulator: connecting through Atlassian 3LO (consent,
offline access, the accessible-resources lookup of the cloud id), a full sync, incremental
re-syncs with JQL's minute resolution, and a 429 with Retry-After."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
import requests

from keyway.simulators import JiraSimulator
from keyway.simulators.jira_api import EMBEDDED_COMMENTS
from shared import policy
from shared.bootstrap import build
from shared.config import Config
from shared.fetch.budget import TokenBudget, budget_key
from shared.fetch.client import ProviderClient
from shared.fetch.errors import BudgetExhausted, EgressRefused, RateLimited
from shared.fetch.jira.plan import PLAN
from shared.fetch.sync import SyncRun
from shared.providers import registry
from tests.integration.conftest import query_of, redirect_uri
from tests.integration.test_connect_flow import authorize, begin, finish, vault_records

TENANT = "tenant-a"
ZONE = "America/Los_Angeles"
SCOPES = ("read:jira-work", "read:jira-user", "offline_access")


@pytest.fixture
def jira(local_stack, monkeypatch, leak_guard):
    sim = JiraSimulator(on_issue=leak_guard.track, time_zone=ZONE).start()
    secret = leak_guard.track("jira-client-secret-1")
    sim.register_client("jira-client", secret, [redirect_uri("jira")])
    local_stack.provider_config(monkeypatch, "jira", "jira-client", secret, sim.oauth_url,
                                sim.api_url)
    yield sim
    sim.stop()


def test_an_admin_connects_jira_and_the_site_is_looked_up(local_stack, jira):
    started = begin(local_stack, "jira", local_stack.token(TENANT, "admin-1", "admin"))
    params = query_of(started["provider_url"])
    assert (params["audience"], params["prompt"]) == ("api.atlassian.com", "consent")
    assert "offline_access" in params["scope"].split() and "code_challenge" not in params
    done = finish(local_stack, "jira", authorize(started["provider_url"]))
    assert query_of(done.headers["Location"])["status"] == "connected"
    connection = local_stack.ports.business.get("connections", started["connection"])
    assert connection["api_base"] == jira.site_api_url  # the cloud id, looked up
    assert connection["site"] == {"id": jira.cloud_id, "url": jira.site_url, "name": "acme"}
    assert connection["account"] == {"id": jira.account.login, "login": "Jane Doe",
                                     "time_zone": ZONE}
    assert local_stack.ports.vault.get("app_tokens", started["connection"])["tenant"] == TENANT
    paths = [r.template for r in jira.requests_log]
    assert paths == ["/authorize", "/oauth/token", "/oauth/token/accessible-resources",
                     "/ex/jira/{cloud_id}/rest/api/3/myself"]
    got: list = []
    local_stack.ports.bus.pull(policy.subscription_name("sync-requests-jira"), got.append)
    assert [m.attributes["sender"] for m in got] == ["oauth-jira"]


def test_a_member_links_a_jira_identity_with_the_write_scope(local_stack, jira):
    started = begin(local_stack, "jira", local_stack.token(TENANT, "member-7", "member"),
                    "/api/v1/identities")
    assert "write:jira-work" in query_of(started["provider_url"])["scope"].split()
    done = finish(local_stack, "jira", authorize(started["provider_url"]))
    assert query_of(done.headers["Location"])["identity"] == "linked"
    identity = local_stack.ports.business.get("identities", f"jira:{TENANT}:member-7")
    assert identity["account"]["id"] == jira.account.login


def test_a_grant_without_a_jira_site_stores_nothing(local_stack, jira):
    started = begin(local_stack, "jira", local_stack.token(TENANT, "admin-1", "admin"))
    url = started["provider_url"].replace("scope=read%3Ajira-work+read%3Ajira-user+",
                                           "scope=").replace("+manage%3Ajira-webhook", "")
    assert "jira" not in query_of(url)["scope"]  # consent given to no Jira scope
    done = finish(local_stack, "jira", authorize(url))
    result = query_of(done.headers["Location"])
    assert (result["status"], result["reason"]) == ("error", "oauth.no_site")
    assert vault_records(local_stack) == 0
    assert local_stack.ports.business.get("connections", started["connection"]) is None


def test_the_authorize_endpoint_refuses_a_request_without_the_audience(local_stack, jira):
    started = begin(local_stack, "jira", local_stack.token(TENANT, "admin-1", "admin"))
    url = started["provider_url"].replace("audience=api.atlassian.com", "audience=elsewhere")
    response = requests.get(url, allow_redirects=False, timeout=10)
    assert response.status_code == 400 and "Location" not in response.headers


def test_the_first_sync_runs_through_vault_jira_and_fetch_jira(local_stack, jira):
    from tests.integration.test_fetch_flow import deliver

    jira.seed_activity("acme", repos=2, issues=30, comments=40)
    started = begin(local_stack, "jira", local_stack.token(TENANT, "admin-1", "admin"))
    finish(local_stack, "jira", authorize(started["provider_url"]))
    assert len(deliver(local_stack.ports, "sync-requests-jira")) == 1  # vault-jira releases
    assert len(deliver(local_stack.ports, "fetch-jobs-jira")) == 1  # fetch-jira syncs
    status = local_stack.ports.business.get("sync_status", started["connection"])
    assert status["state"] == "done", status
    issues = local_stack.ports.business.query("issues")
    assert len(issues) == 30 and {s.data["tenant"] for s in issues} == {TENANT}
    assert all(s.id.startswith(f"{TENANT}:jira:issue:{jira.cloud_id}") for s in issues)
    assert len(local_stack.ports.business.query("comments")) == 40


# ---- sync ---------------------------------------------------------------------------------
@pytest.fixture
def synced(tmp_path, leak_guard):
    ports = build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path / "state")}))
    sim = JiraSimulator(on_issue=leak_guard.track, time_zone=ZONE, rate_limit=100_000).start()
    sim.seed_activity("acme", repos=2, issues=240, comments=500)
    token = leak_guard.track(sim.mint_token(scopes=SCOPES).access_token)
    ports.business.put("connections", "conn-1", {
        "tenant": "t-1", "provider": "jira", "api_base": sim.site_api_url,
        "site": {"id": sim.cloud_id, "url": sim.site_url, "name": "acme"},
        "account": {"id": sim.account.login, "login": "Jane Doe", "time_zone": ZONE}})
    yield ports, sim, token
    sim.stop()


def sync(ports, sim, token: str):
    budget = TokenBudget(ports.business, ports.clock, budget_key("jira", "conn-1"))
    client = ProviderClient(registry.get("jira"), sim.site_api_url, token, requests.Session(),
                            ports.clock, budget, purpose="fetch")
    return SyncRun(ports, client, PLAN, "t-1", "conn-1", 600.0).run()


def live(ports, kind: str) -> int:
    return len([s for s in ports.business.query(kind) if not s.data.get("deleted")])


def test_a_full_sync_writes_every_project_issue_and_comment_once(synced):
    ports, sim, token = synced
    result = sync(ports, sim, token)
    assert result.finished
    assert (live(ports, "repositories"), live(ports, "issues"), live(ports, "comments")) == (
        2, 240, 500)
    assert result.stats.by_kind["issues"] == 240 and result.stats.by_kind["comments"] == 500
    assert live(ports, "labels") > 0 and live(ports, "pull_requests") == 0
    searches = [r for r in sim.requests_log if r.template.endswith("/search/jql")]
    assert any("nextPageToken" in r.query for r in searches)  # paged by token, not startAt
    assert all(r.query["maxResults"] == "100" for r in searches)


def test_an_incremental_resync_reads_only_what_changed_even_within_the_cursors_minute(synced):
    ports, sim, token = synced
    sync(ports, sim, token)
    sim.clear_log()
    again = sync(ports, sim, token)
    assert again.finished and "issues" not in again.stats.by_kind
    assert "comments" not in again.stats.by_kind
    jql = [r.query["jql"] for r in sim.requests_log if r.template.endswith("/search/jql")]
    assert len(jql) == 2 and all('AND updated >= "' in q for q in jql)

    cursor = max(s.data["updated_at"] for s in ports.business.query("issues"))
    newest = datetime.fromisoformat(cursor.replace("Z", "+00:00"))
    # an edit Jira stamps 5 s before the cursor, in the cursor's minute, that the last sync
    # could not see yet (search lags writes): a bound cut to the minute must still find it
    late = int((newest - timedelta(seconds=5)).timestamp() * 1000)
    [late_id] = sim.touch("issue", 1, at_ms=late)
    sim.touch("issue", 3)
    changed = sync(ports, sim, token)
    assert changed.stats.by_kind["issues"] == 4  # the 3 edited now and the late one
    record = next(s.data for s in ports.business.query("issues")
                  if s.data["external_id"] == str(late_id))
    assert "(edited" in record["title"]
    assert live(ports, "issues") == 240  # re-read ones were not duplicated


def test_a_429_with_retry_after_stops_the_run_and_it_resumes_after(synced):
    ports, sim, token = synced
    sim.rate_limit_next(retry_after=1, count=1)
    with pytest.raises(RateLimited) as limited:
        sync(ports, sim, token)
    wait = (limited.value.retry_at - ports.clock.now()).total_seconds()
    assert 0 < wait <= 1.5
    before = len(sim.requests_log)
    try:
        sync(ports, sim, token)
    except BudgetExhausted as waiting:  # the budget knows the reset: nothing is sent
        assert len(sim.requests_log) == before
        time.sleep(max(0.0, (waiting.retry_at - ports.clock.now()).total_seconds()) + 0.2)
    assert sync(ports, sim, token).finished
    assert live(ports, "issues") == 240


def test_an_api_base_without_its_looked_up_site_is_refused_before_sending(synced):
    ports, sim, token = synced
    with pytest.raises(EgressRefused, match="placeholder"):
        ProviderClient(registry.get("jira"), sim.api_url, token, requests.Session(),
                       ports.clock, purpose="fetch")
    assert sim.requests_log == []


def test_comments_come_with_their_issues_and_only_a_longer_thread_is_read_apart(synced):
    ports, sim, token = synced
    chatty = next(iter(next(iter(sim.data.projects.values())).issues.values()))
    before = len(chatty["comments"])
    author = {"accountId": sim.account.login, "displayName": sim.account.name}
    for n in range(EMBEDDED_COMMENTS + 5 - before):
        sim.data.add_comment(chatty, author, f"Comment {n}", [])
    assert sync(ports, sim, token).finished
    assert live(ports, "comments") == 500 + EMBEDDED_COMMENTS + 5 - before
    read = [r for r in sim.requests_log if r.template.endswith("/comment")]
    assert [r.path.rsplit("/", 2)[1] for r in read] == [chatty["key"]]  # the others embedded
    assert read[0].query.get("maxResults") == "100"
    found = requests.get(f"{sim.site_api_url}/rest/api/3/search/jql", timeout=10, params={
        "jql": f"project = {chatty['project']} ORDER BY updated DESC", "fields": "comment",
        "maxResults": "100"}, headers={"Authorization": f"Bearer {token}"}).json()
    page = next(i for i in found["issues"] if i["key"] == chatty["key"])["fields"]["comment"]
    assert (len(page["comments"]), page["total"], page["startAt"]) == (
        EMBEDDED_COMMENTS, EMBEDDED_COMMENTS + 5, 0)  # a first page, saying there is more
