"""Progress and freshness of a sync against the simulators: observed mid-run, the status shows
per list the items read, the pages left (the provider says: GitHub's rel="last", GitLab's
X-Total-Pages) and a finite ETA; after the run the progress is gone, its final counts stay in
last_run, and every repository and the connection say per record kind when they were last
complete — which an interrupted run does not advance for the kinds it did not finish."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import jsonschema_rs
import pytest
import requests

from keyway.simulators import GitHubSimulator, GitLabSimulator
from shared.api import openapi
from shared.bootstrap import build
from shared.clock import isoformat
from shared.config import Config
from shared.fetch import status
from shared.fetch.budget import TokenBudget, budget_key
from shared.fetch.client import ProviderClient
from shared.fetch.errors import ProviderUnavailable
from shared.fetch.github.plan import PLAN as GITHUB_PLAN
from shared.fetch.gitlab.plan import PLAN as GITLAB_PLAN
from shared.fetch.progress import Progress
from shared.fetch.sync import SyncRun
from shared.providers import registry

TENANT, CONNECTION = "t-1", "conn-1"
KINDS = {"pull_requests", "reviews", "issues", "comments", "labels"}


class Peek(requests.Session):
    """A real session that calls ``before(url)`` ahead of every request it sends."""

    def __init__(self, before) -> None:
        super().__init__()
        self.before = before

    def send(self, request, **kwargs):
        self.before(request.url)
        return super().send(request, **kwargs)


def conforms(schema: str, value: object) -> bool:
    """``value`` is what the OpenAPI document's ``schema`` describes."""
    components = json.loads(openapi.document())["components"]
    return jsonschema_rs.validator_for({"$ref": f"#/components/schemas/{schema}",
                                        "components": components}).is_valid(value)


def page_of(url: str) -> str | None:
    return (parse_qs(urlsplit(url).query).get("page") or [None])[0]


@pytest.fixture
def ports(tmp_path):
    ports = build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path / "state")}))
    ports.business.put("connections", CONNECTION, {"tenant": TENANT, "provider": "github",
                                                   "kind": "app", "status": "active"})
    return ports


def run(ports, sim, plan, token, *, before=lambda url: None, budget_seconds=600.0,
        continuation=False, tenant=TENANT):
    """One run the way fetch-P makes it: lease, sync with progress (every page written),
    end in the state fetch-P would record."""
    owner = status.begin(ports, tenant, CONNECTION)
    budget = TokenBudget(ports.business, ports.clock, budget_key(plan.provider, CONNECTION))
    client = ProviderClient(registry.get(plan.provider), sim.api_url, token, Peek(before),
                            ports.clock, budget, purpose="fetch", max_attempts=1)
    sync = SyncRun(ports, client, plan, tenant, CONNECTION, budget_seconds, continuation,
                   progress=Progress(ports, CONNECTION, owner, budget, interval=0))
    try:
        result = sync.run()
    except Exception:
        status.end(ports, CONNECTION, owner, "failed", reason="fetch.error",
                   stats=vars(sync.stats))
        raise
    status.end(ports, CONNECTION, owner, "done" if result.finished else "continuing",
               stats=vars(sync.stats))
    return result


def repositories(ports) -> list[dict]:
    return [s.data for s in ports.business.query("repositories")]


@pytest.mark.parametrize("provider, listing, path", [
    ("github", "pulls", "/pulls"), ("gitlab", "merge_requests", "/merge_requests")])
def test_mid_run_the_status_shows_pages_left_and_a_finite_eta_then_final_counts(
        ports, leak_guard, provider, listing, path):
    if provider == "github":
        sim, plan, scopes = GitHubSimulator(rate_limit=1_000_000).start(), GITHUB_PLAN, ("repo",)
        sim.seed_activity("acme", repos=2, prs=300, issues=50, comments=50)
    else:
        sim, plan, scopes = GitLabSimulator(rate_limit=1_000_000).start(), GITLAB_PLAN, (
            "read_api",)
        sim.seed_activity("acme-group", repos=2, prs=300, issues=50, comments=50)
        ports.business.put("connections", CONNECTION, {
            **ports.business.get("connections", CONNECTION), "provider": "gitlab"})
    seen: list[dict] = []

    def before(url: str) -> None:  # the second page of the first repository's list
        if urlsplit(url).path.endswith(path) and page_of(url) == "2" and not seen:
            seen.append(ports.business.get("sync_status", CONNECTION))

    try:
        token = leak_guard.track(sim.mint_token(scopes=scopes).access_token)
        assert run(ports, sim, plan, token, before=before).finished
    finally:
        sim.stop()
    mid = seen[0]
    assert mid["state"] == "running"
    progress = mid["progress"]
    walking = progress["lists"][listing]  # 150 per repository at 100 a page: 2 pages
    assert walking["walking"] and walking["pages"] == 1 and walking["items"] == 100
    assert walking["pages_left"] == 1 and progress["pages_left"] == 1
    assert walking["repositories"] == 2 and walking["repositories_done"] == 0
    assert progress["lists"]["repositories"]["items"] == 2
    assert progress["walks_left"] == 2 * len(plan.resources) - 1
    assert isinstance(progress["eta_seconds"], int) and progress["eta_seconds"] >= 0
    assert progress["eta_is_lower_bound"] is True
    assert progress["requests"] >= 2 and progress["requests_per_second"] > 0
    assert progress["budget"]["remaining"] > 0
    assert conforms("Progress", progress)

    after = ports.business.get("sync_status", CONNECTION)
    assert after["state"] == "done" and "progress" not in after
    assert conforms("ListProgress", after["last_run"]["lists"][listing])
    final = after["last_run"]["lists"][listing]
    assert final["items"] == 300 and final["repositories_done"] == 2 and not final["walking"]
    for repo in repositories(ports):
        assert set(repo["fresh_as_of"]) == KINDS
        assert all(mid["started_at"] <= at <= after["finished_at"]
                   for at in repo["fresh_as_of"].values())
    summary = ports.business.get("connections", CONNECTION)["freshness"]
    assert summary["repositories"] == 2 and summary["never"] == dict.fromkeys(KINDS, 0)
    assert summary["fresh_as_of"]["repositories"] >= mid["started_at"]
    for kind in KINDS:
        assert summary["fresh_as_of"][kind] == min(r["fresh_as_of"][kind]
                                                   for r in repositories(ports))


@pytest.fixture
def synced(ports, leak_guard):
    """A GitHub connection synced once completely."""
    sim = GitHubSimulator(rate_limit=1_000_000).start()
    sim.seed_activity("acme", repos=2, prs=150, issues=100, comments=100)
    token = leak_guard.track(sim.mint_token(scopes=("repo",)).access_token)
    assert run(ports, sim, GITHUB_PLAN, token).finished
    yield sim, token, {r["id"]: r["fresh_as_of"] for r in repositories(ports)}
    sim.stop()


def test_a_continued_walk_counts_from_its_start_and_unfinished_kinds_stay_unset(
        ports, leak_guard):
    sim = GitHubSimulator(rate_limit=1_000_000).start()
    try:
        sim.seed_activity("acme", repos=2, prs=300, issues=20, comments=20)
        token = leak_guard.track(sim.mint_token(scopes=("repo",)).access_token)
        assert not run(ports, sim, GITHUB_PLAN, token, budget_seconds=0.0).finished
        assert all("fresh_as_of" not in r for r in repositories(ports))  # only the list of them
        summary = ports.business.get("connections", CONNECTION)["freshness"]
        assert summary["fresh_as_of"]["repositories"] and summary["never"]["issues"] == 2
        second = isoformat(ports.clock.now())
        assert not run(ports, sim, GITHUB_PLAN, token, budget_seconds=0.0,
                       continuation=True).finished  # one page of 150 pull requests
        assert all("fresh_as_of" not in r for r in repositories(ports))
        third = isoformat(ports.clock.now())
        assert not run(ports, sim, GITHUB_PLAN, token, budget_seconds=0.0,
                       continuation=True).finished  # the second page: the walk is complete
        fresh = [r["fresh_as_of"] for r in repositories(ports) if "fresh_as_of" in r]
        assert [set(f) for f in fresh] == [{"pull_requests", "reviews"}]
        assert second <= fresh[0]["pull_requests"] < third  # as of the walk's first page
        for _ in range(100):
            if run(ports, sim, GITHUB_PLAN, token, budget_seconds=0.0,
                   continuation=True).finished:
                break
    finally:
        sim.stop()
    assert all(set(r["fresh_as_of"]) == KINDS for r in repositories(ports))
    summary = ports.business.get("connections", CONNECTION)["freshness"]
    assert summary["never"] == dict.fromkeys(KINDS, 0)


def test_a_failed_run_leaves_unfinished_kinds_as_they_were(ports, synced):
    sim, token, before = synced

    def fail_issues(url: str) -> None:
        if urlsplit(url).path.endswith("/issues"):
            raise requests.ConnectionError("the issues list is unreachable")

    with pytest.raises(ProviderUnavailable):
        run(ports, sim, GITHUB_PLAN, token, before=fail_issues)
    now = {r["id"]: r["fresh_as_of"] for r in repositories(ports)}
    changed = {(r, k) for r, kinds in now.items() for k, at in kinds.items()
               if at != before[r][k]}
    assert {k for _, k in changed} == {"pull_requests", "reviews"} and len(
        {r for r, _ in changed}) == 1
    assert all(now[r][k] == before[r][k] for r in now for k in ("issues", "comments", "labels"))
    summary = ports.business.get("connections", CONNECTION)["freshness"]
    assert summary["fresh_as_of"]["issues"] == min(b["issues"] for b in before.values())
    assert ports.business.get("sync_status", CONNECTION)["state"] == "failed"


def test_the_freshness_route_summarises_per_connection_and_kind(local_stack, leak_guard):
    ports = local_stack.ports
    tenant = "tenant-f"
    sim = GitHubSimulator(rate_limit=1_000_000).start()
    try:
        sim.seed_activity("acme", repos=2, prs=20, issues=20, comments=20)
        token = leak_guard.track(sim.mint_token(scopes=("repo",)).access_token)
        ports.business.put("connections", CONNECTION, {"tenant": tenant, "provider": "github",
                                                       "kind": "app", "status": "active"})
        ports.business.put("connections", "c-other", {
            "tenant": "tenant-g", "provider": "github", "status": "active",
            "freshness": {"fresh_as_of": {"issues": "2020-01-01T00:00:00.000000Z"}}})

        def fail_issues(url: str) -> None:
            if urlsplit(url).path.endswith("/issues"):
                raise requests.ConnectionError("the issues list is unreachable")

        with pytest.raises(ProviderUnavailable):
            run(ports, sim, GITHUB_PLAN, token, before=fail_issues, tenant=tenant)
    finally:
        sim.stop()
    reader = local_stack.token(tenant, "u-1", "member", scopes=["data:read"])
    response = local_stack.call("GET", "/api/v1/freshness", reader)
    assert response.status_code == 200
    body = json.loads(response.get_data())
    assert conforms("TenantFreshness", body)
    assert [c["connection"] for c in body["connections"]] == [CONNECTION]  # not c-other
    mine = body["connections"][0]
    assert mine["repositories"] == 2
    assert mine["never"] == {"pull_requests": 1, "reviews": 1, "issues": 2, "comments": 2,
                             "labels": 2}
    assert mine["fresh_as_of"]["pull_requests"] is not None
    assert mine["fresh_as_of"]["issues"] is None and mine["fresh_as_of"]["repositories"]
    assert body["never"] == mine["never"]
    assert body["fresh_as_of"] == mine["fresh_as_of"]
    one = json.loads(local_stack.call("GET", f"/api/v1/connections/{CONNECTION}",
                                      local_stack.token(tenant, "u-1", "member")).get_data())
    assert one["freshness"]["never"] == mine["never"]
    repos = json.loads(local_stack.call("GET", "/api/v1/repositories", reader).get_data())
    assert sorted(len(r.get("fresh_as_of", {})) for r in repos["items"]) == [0, 2]
    neither = local_stack.token(tenant, "u-1", "member", scopes=["actions:write"])
    refused = local_stack.call("GET", "/api/v1/freshness", neither)
    assert refused.status_code == 403
    assert json.loads(refused.get_data())["code"] == "auth.insufficient_scope"
