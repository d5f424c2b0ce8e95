"""Registering keyway's webhooks during a sync and removing them on disconnect, against the
GitHub and GitLab simulators over real HTTP: one hook per repository signed with the
connection's secret, once; GitHub's 422 adopted; an interrupted registration adopted instead
of duplicated; repositories the user may not manage recorded ``unavailable`` and retried only
daily; removal that survives a revoked token — and the secret in no log, record or error."""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import timedelta

import pytest
import requests

from keyway.simulators import GitHubSimulator, GitLabSimulator
from shared.bootstrap import build
from shared.config import Config
from shared.fetch.client import ProviderClient
from shared.fetch.errors import RateLimited
from shared.fetch.github.plan import PLAN as GITHUB_PLAN
from shared.fetch.gitlab.plan import PLAN as GITLAB_PLAN
from shared.providers import registry
from shared.records import github as gh_records
from shared.records import gitlab as gl_records
from shared.records.model import Context
from shared.webhooks import hooks, register, unregister
from shared.webhooks.secrets import create_connection_secret, delete_connection_secrets
from tests.support import FakeClock

TENANT, CONNECTION, PUBLIC = "t-1", "c-hooks", "https://keyway.example"
URL = {p: f"{PUBLIC}/webhook-{p}/c/{CONNECTION}" for p in ("github", "gitlab")}
PLANS = {"github": GITHUB_PLAN, "gitlab": GITLAB_PLAN}
SCOPES = {"github": ("read:org", "admin:repo_hook"), "gitlab": ("read_api", "api")}


@dataclasses.dataclass
class Setup:
    provider: str
    sim: GitHubSimulator | GitLabSimulator
    ports: object
    clock: FakeClock
    token: str
    secret: str
    repos: list

    def registrar(self, token: str | None = None) -> register.Registrar:
        client = ProviderClient(registry.get(self.provider), self.sim.api_url,
                                token or self.token, requests.Session(), self.clock,
                                purpose="fetch")
        return register.Registrar(self.ports, client, registry.get(self.provider),
                                  PLANS[self.provider], TENANT, CONNECTION, PUBLIC)

    def ensure(self, token: str | None = None) -> register.Counts:
        return self.registrar(token).ensure(self.repos)

    def records(self) -> dict[str, dict]:
        return {r["external_id"]: r for r in
                hooks.for_connection(self.ports.business, CONNECTION).values()}

    def target(self, repo) -> str:
        """The simulator's key for a repository's hooks."""
        data = repo.data
        return data["full_name"].lower() if self.provider == "github" else data["external_id"]

    def hook_writes(self) -> list[str]:
        return [f"{r.method} {r.template}" for r in self.sim.requests_log if "hooks" in r.path]


@pytest.fixture(params=["github", "gitlab"])
def setup(request, tmp_path, leak_guard) -> Setup:
    provider = request.param
    clock = FakeClock()
    ports = dataclasses.replace(
        build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path / "state")})), clock=clock)
    sim_class = GitHubSimulator if provider == "github" else GitLabSimulator
    sim = sim_class(on_issue=leak_guard.track).start()
    request.addfinalizer(sim.stop)
    seeded = sim.seed("acme", 3)
    ctx = Context(TENANT, provider, CONNECTION, observed_at="2030-01-01T00:00:00.000000Z")
    normalize = gh_records.repository if provider == "github" else gl_records.repository
    for raw in seeded:
        record = normalize(raw, ctx)
        ports.business.put("repositories", record["id"], record)
    ports.business.put("connections", CONNECTION, {
        "tenant": TENANT, "provider": provider, "status": "active", "api_base": sim.api_url,
        "register_webhooks": True})
    create_connection_secret(ports.secrets, CONNECTION)
    secret = leak_guard.track(ports.secrets.access(f"webhook-secret-{CONNECTION}").decode())
    token = sim.mint_token(scopes=SCOPES[provider]).access_token
    return Setup(provider, sim, ports, clock, token, secret,
                 ports.business.query("repositories"))


# ---- registration ---------------------------------------------------------------------------
def test_each_repository_gets_one_hook_signed_with_the_connections_secret(setup):
    counts = setup.ensure()
    assert (counts.registered, counts.adopted, counts.unavailable) == (3, 0, 0)
    at_provider = setup.sim.hooks.all()
    assert sorted(h.target for h in at_provider) == sorted(setup.target(r) for r in setup.repos)
    reg = registry.get(setup.provider).webhook_registration
    for hook in at_provider:
        assert hook.url == URL[setup.provider] and hook.secret == setup.secret
        assert set(reg.events) <= set(hook.events)
        assert "push_events" not in hook.events  # GitLab: pushes are never asked for
    records = setup.records()
    assert {r["status"] for r in records.values()} == {"active"}
    assert sorted(r["hook_id"] for r in records.values()) == sorted(
        str(h.id) for h in at_provider)
    assert setup.secret not in json.dumps(list(records.values()))


def test_a_second_sync_registers_nothing_and_sends_no_request(setup):
    setup.ensure()
    setup.sim.clear_log()
    assert setup.ensure() == register.Counts()
    assert setup.sim.requests_log == []
    assert len(setup.sim.hooks.all()) == 3


def test_registration_stops_when_the_syncs_time_is_spent_and_the_next_run_goes_on(setup):
    counts = setup.registrar().ensure(setup.repos, out_of_time=lambda: True)
    assert counts.registered == 1 and len(setup.sim.hooks.all()) == 1  # progress, then stop
    assert setup.registrar().ensure(setup.repos, out_of_time=lambda: False).registered == 2
    assert len(setup.sim.hooks.all()) == 3


def test_a_registration_interrupted_after_the_post_is_adopted_not_duplicated(setup):
    setup.ensure()
    repo = setup.repos[0]
    record = setup.records()[repo.data["external_id"]]
    hooks.save(setup.ports, record, status="registering", hook_id=None)  # the write was lost
    setup.sim.clear_log()
    counts = setup.ensure()
    assert (counts.adopted, counts.registered) == (1, 0)
    assert len(setup.sim.hooks.list(setup.target(repo))) == 1
    assert [r.method for r in setup.sim.requests_log] == ["GET"]  # looked, did not create
    again = setup.records()[repo.data["external_id"]]
    assert again["status"] == "active" and again["adopted"] is True
    assert again["hook_id"] == record["hook_id"]


def test_a_provider_failure_leaves_the_intent_and_the_next_sync_looks_before_creating(
        setup, caplog):
    setup.sim.fail_next(502, count=1)
    with caplog.at_level(logging.INFO):
        counts = setup.ensure()
    assert (counts.failed, counts.registered) == (1, 2)
    assert "webhooks.register_failed" in [r.getMessage() for r in caplog.records]
    pending = [r for r in setup.records().values() if r["status"] == "registering"]
    assert len(pending) == 1
    setup.sim.clear_log()
    assert setup.ensure().registered == 1
    assert [r.method for r in setup.sim.requests_log] == ["GET", "POST"]
    assert len(setup.sim.hooks.all()) == 3


def test_a_repository_the_user_cannot_manage_is_unavailable_and_retried_only_daily(
        setup, caplog):
    denied = setup.repos[1]
    if setup.provider == "github":
        setup.sim.deny_admin(denied.data["full_name"])  # GitHub hides it: 404
    else:
        setup.sim.deny_maintainer(int(denied.data["external_id"]))  # GitLab: 403
    with caplog.at_level(logging.INFO):
        counts = setup.ensure()
    assert (counts.registered, counts.unavailable) == (2, 1)
    record = setup.records()[denied.data["external_id"]]
    assert record["status"] == "unavailable" and record["hook_id"] is None
    assert record["reason"] == ("provider.not_found" if setup.provider == "github"
                                else "provider.refused")
    assert [r.getMessage() for r in caplog.records].count("webhooks.unavailable") == 1
    setup.sim.clear_log()
    setup.ensure()
    setup.clock.advance(timedelta(hours=23).total_seconds())
    setup.ensure()
    assert setup.sim.requests_log == []  # not on every sync
    setup.clock.advance(timedelta(hours=1, seconds=1).total_seconds())
    setup.ensure()
    assert setup.hook_writes() == [f"POST {_hooks_template(setup.provider)}"]


def test_a_hook_marked_unreachable_is_created_again_a_day_later(setup):
    """Gap recovery found the hook's log answering 404 (:func:`hooks.mark_unreachable`): the
    registration is ``unavailable`` until a pass a day later creates the hook anew."""
    setup.ensure()
    repo = setup.repos[0]
    before = setup.records()[repo.data["external_id"]]
    [gone] = setup.sim.hooks.list(setup.target(repo))
    setup.sim.hooks.remove(setup.target(repo), gone.id)
    assert not hooks.mark_unreachable(setup.ports, CONNECTION, repo.id, "another-hook")
    assert hooks.mark_unreachable(setup.ports, CONNECTION, repo.id, before["hook_id"])
    assert not hooks.mark_unreachable(setup.ports, CONNECTION, repo.id, before["hook_id"])
    marked = setup.records()[repo.data["external_id"]]
    assert (marked["status"], marked["reason"]) == ("unavailable", hooks.UNREACHABLE)
    setup.sim.clear_log()
    setup.ensure()
    assert setup.sim.requests_log == []
    setup.clock.advance(timedelta(days=1, seconds=1).total_seconds())
    setup.ensure()
    template = _hooks_template(setup.provider)
    assert setup.hook_writes() == [f"GET {template}", f"POST {template}"]  # looked for, then made
    [made] = setup.sim.hooks.list(setup.target(repo))
    again = setup.records()[repo.data["external_id"]]
    assert (again["status"], again["reason"], again["hook_id"]) == ("active", None, str(made.id))
    assert made.id != gone.id


def test_a_hook_marked_unreachable_that_still_exists_is_adopted_not_duplicated(setup):
    """A 404 from the hook's delivery log need not mean the hook is gone (a GitLab older than
    17.3 has no events endpoint): a day later the pass finds it by its URL and adopts it, and
    a disconnect meanwhile removes it."""
    setup.ensure()
    repo = setup.repos[0]
    before = setup.records()[repo.data["external_id"]]
    assert hooks.mark_unreachable(setup.ports, CONNECTION, repo.id, before["hook_id"])
    unregister_now = unregister.remover(setup.ports, setup.provider, TENANT, CONNECTION)
    assert unregister_now is not None  # the unavailable one still has a hook to remove
    setup.clock.advance(timedelta(days=1, seconds=1).total_seconds())
    setup.sim.clear_log()
    setup.ensure()
    assert setup.hook_writes() == [f"GET {_hooks_template(setup.provider)}"]  # listed, found
    [kept] = setup.sim.hooks.list(setup.target(repo))
    again = setup.records()[repo.data["external_id"]]
    assert (again["status"], again["hook_id"], again["adopted"]) == ("active", str(kept.id), True)
    assert str(kept.id) == before["hook_id"]
    hooks.mark_unreachable(setup.ports, CONNECTION, repo.id, before["hook_id"])
    unregister.remover(setup.ports, setup.provider, TENANT, CONNECTION)(setup.token)
    assert setup.sim.hooks.list(setup.target(repo)) == []
    assert setup.records()[repo.data["external_id"]]["status"] == "removed"


def _hooks_template(provider: str) -> str:
    return "/repos/{owner}/{repo}/hooks" if provider == "github" else "/projects/{id}/hooks"


@pytest.mark.parametrize("setup", ["github"], indirect=True)  # GitLab accepts duplicates
def test_github_adopts_a_hook_that_already_has_our_url(setup):
    repo = setup.repos[2]
    existing = setup.sim.hooks.add(setup.target(repo), URL["github"], setup.secret,
                                   ("issues",), 0.0)
    counts = setup.ensure()
    assert (counts.adopted, counts.registered) == (1, 2)
    assert setup.records()[repo.data["external_id"]]["hook_id"] == str(existing.id)
    assert len(setup.sim.hooks.list(setup.target(repo))) == 1


def test_a_token_without_the_hook_scope_registers_nothing(setup):
    narrow = setup.sim.mint_token(scopes=SCOPES[setup.provider][:1]).access_token
    counts = setup.ensure(token=narrow)
    assert counts.unavailable == 3 and setup.sim.hooks.all() == []
    # GitLab's insufficient_scope, GitHub's X-Accepted-OAuth-Scopes: both say why
    assert {r["reason"] for r in setup.records().values()} == {"provider.insufficient_scope"}


def test_a_rate_limit_propagates_to_the_sync_and_keeps_the_intent(setup):
    setup.sim.rate_limit_next(status=429, retry_after=60)
    with pytest.raises(RateLimited):
        setup.ensure()
    assert [r["status"] for r in setup.records().values()] == ["registering"]


def test_a_disconnecting_connection_registers_nothing_more(setup):
    _connection(setup, status="disconnecting")
    assert setup.ensure() == register.Counts()
    assert setup.sim.requests_log == [] and setup.records() == {}


def test_without_the_connections_secret_nothing_is_registered(setup, caplog):
    delete_connection_secrets(setup.ports.secrets, CONNECTION)
    with caplog.at_level(logging.INFO):
        setup.ensure()
    assert setup.sim.requests_log == [] and setup.records() == {}
    assert "webhooks.secret_missing" in [r.getMessage() for r in caplog.records]


def test_only_a_connection_that_asked_for_hooks_gets_a_registrar(setup):
    spec, plan = registry.get(setup.provider), PLANS[setup.provider]
    client = ProviderClient(spec, setup.sim.api_url, setup.token, requests.Session(),
                            setup.clock, purpose="fetch")

    def build_for(record: dict, spec=spec):
        return register.registrar(setup.ports, client, spec, plan, TENANT, record, CONNECTION,
                                  PUBLIC)

    assert build_for({"register_webhooks": True}) is not None
    assert build_for({}) is None and build_for({"register_webhooks": False}) is None
    assert build_for({"register_webhooks": True, "installation_id": "42"}) is None
    no_table = dataclasses.replace(spec, webhook_registration=None)
    assert build_for({"register_webhooks": True}, no_table) is None


# ---- removal --------------------------------------------------------------------------------
def _connection(setup, tenant: str = TENANT, status: str = "disconnecting") -> None:
    setup.ports.business.put("connections", CONNECTION, {
        "tenant": tenant, "provider": setup.provider, "status": status,
        "api_base": setup.sim.api_url, "register_webhooks": True})


def test_removal_deletes_every_hook_keyway_registered(setup):
    setup.ensure()
    _connection(setup)
    created = sorted(h.id for h in setup.sim.hooks.all())
    cleanup = unregister.remover(setup.ports, setup.provider, TENANT, CONNECTION)
    cleanup(setup.token)
    assert setup.sim.hooks.all() == []
    assert sorted(h.id for h in setup.sim.hooks.deleted) == created
    assert {r["status"] for r in setup.records().values()} == {"removed"}
    assert unregister.remover(setup.ports, setup.provider, TENANT, CONNECTION) is None


def test_removal_finds_the_hook_of_an_interrupted_registration_by_its_url(setup):
    setup.ensure()
    _connection(setup)
    repo = setup.repos[0]
    record = setup.records()[repo.data["external_id"]]
    hooks.save(setup.ports, record, status="registering", hook_id=None)
    unregister.remover(setup.ports, setup.provider, TENANT, CONNECTION)(setup.token)
    assert setup.sim.hooks.all() == []


def test_a_hook_already_gone_counts_as_removed(setup):
    setup.ensure()
    _connection(setup)
    gone = setup.sim.hooks.all()[0]
    setup.sim.hooks.remove(gone.target, gone.id)
    unregister.remover(setup.ports, setup.provider, TENANT, CONNECTION)(setup.token)
    reasons = sorted(str(r["reason"]) for r in setup.records().values())
    assert reasons == ["None", "None", "provider.not_found"]
    assert {r["status"] for r in setup.records().values()} == {"removed"}


def test_a_revoked_token_stops_removal_at_the_first_refusal_and_logs_it(setup, caplog):
    setup.ensure()
    _connection(setup)
    setup.sim.oauth.revoke(setup.token)
    setup.sim.clear_log()
    with caplog.at_level(logging.INFO):
        unregister.remover(setup.ports, setup.provider, TENANT, CONNECTION)(setup.token)
    assert len(setup.sim.requests_log) == 1  # no further request after the 401
    assert len(setup.sim.hooks.all()) == 3
    records = setup.records().values()
    assert {(r["status"], r["reason"]) for r in records} == {
        ("remove_failed", "provider.token_rejected")}
    assert [r.getMessage() for r in caplog.records].count("webhooks.remove_failed") == 3


@pytest.mark.parametrize("setup", ["gitlab"], indirect=True)
def test_a_token_without_the_hook_scope_stops_removal_at_the_first_refusal(setup):
    setup.ensure()
    _connection(setup)
    narrow = setup.sim.mint_token(scopes=("read_api",)).access_token  # api consent withdrawn
    setup.sim.clear_log()
    unregister.remover(setup.ports, setup.provider, TENANT, CONNECTION)(narrow)
    assert [r.status for r in setup.sim.requests_log] == [403]  # the others would be alike
    assert len(setup.sim.hooks.all()) == 3
    assert {(r["status"], r["reason"]) for r in setup.records().values()} == {
        ("remove_failed", "provider.insufficient_scope")}


def test_removal_that_runs_out_of_time_marks_the_rest(setup, monkeypatch):
    setup.ensure()
    _connection(setup)
    monkeypatch.setattr(unregister, "BUDGET_SECONDS", -1.0)
    unregister.remover(setup.ports, setup.provider, TENANT, CONNECTION)(setup.token)
    assert {r["reason"] for r in setup.records().values()} == {"webhooks.out_of_time"}
    assert len(setup.sim.hooks.all()) == 3


def test_another_tenants_disconnect_gets_no_cleanup(setup):
    setup.ensure()
    _connection(setup, tenant="t-other")
    assert unregister.remover(setup.ports, setup.provider, TENANT, CONNECTION) is None
    _connection(setup)
    assert unregister.remover(setup.ports, setup.provider, "t-other", CONNECTION) is None
