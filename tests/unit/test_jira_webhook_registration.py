"""Jira's dynamic webhooks kept by ``fetch-jira`` and removed by ``vault-jira``, against the
Jira simulator over real HTTP with one fake clock for both sides: one webhook per connection
for its projects at the app URL, registered once; renewed only when fewer than ten days remain,
so a connection that syncs never lets it lapse; expired or vanished webhooks registered again;
the filter following the project set; interrupted registrations adopted, never another
connection's webhook; refusals retried daily; removal by ids — and no token in any record."""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
from datetime import timedelta

import pytest
import requests

from keyway.simulators import JiraSimulator
from keyway.simulators.jira_render import project_json
from shared.bootstrap import build
from shared.clock import isoformat
from shared.config import Config
from shared.fetch.client import ProviderClient
from shared.fetch.errors import EgressRefused, RateLimited
from shared.fetch.jira.plan import PLAN
from shared.providers import registry
from shared.records import jira as jira_records
from shared.records.model import Context
from shared.webhooks import dynamic, hooks, register, unregister
from tests.support import FakeClock

TENANT, CONNECTION, OTHER, PUBLIC = "t-1", "c-jira", "c-other", "https://keyway.example"
APP_URL = f"{PUBLIC}/webhook-jira/"
CLIENT = "jira-app"
SCOPES = ("read:jira-work", "read:jira-user", "offline_access", "manage:jira-webhook")
DAY = timedelta(days=1).total_seconds()
SPEC = registry.get("jira")


@dataclasses.dataclass
class Site:
    sim: JiraSimulator
    ports: object
    clock: FakeClock
    repos: list

    def token(self, scopes: tuple[str, ...] = SCOPES) -> str:
        """A fresh access token (the vault refreshes an expired one before every sync)."""
        return self.sim.mint_token(scopes=scopes, client_id=CLIENT).access_token

    def client(self, token: str | None = None) -> ProviderClient:
        return ProviderClient(SPEC, self.sim.site_api_url, token or self.token(),
                              requests.Session(), self.clock, purpose="fetch")

    def ensure(self, repos: list | None = None, *, connection: str = CONNECTION,
               token: str | None = None) -> hooks.Counts:
        registrar = register.registrar(self.ports, self.client(token), SPEC, PLAN, TENANT,
                                       {"register_webhooks": True}, connection, PUBLIC)
        assert isinstance(registrar, dynamic.SiteRegistrar)
        return registrar.ensure(self.repos if repos is None else repos)

    def record(self, connection: str = CONNECTION) -> dict | None:
        return hooks.for_connection(self.ports.business, connection).get(hooks.SITE)

    def calls(self) -> list[str]:
        return [f"{r.method} {r.template.rsplit('/rest/api/3', 1)[1]}"
                for r in self.sim.requests_log if "/webhook" in r.path]

    def live(self) -> list:
        return self.sim.webhooks.live()

    def connect(self, connection: str, status: str = "active") -> None:
        self.ports.business.put("connections", connection, {
            "tenant": TENANT, "provider": "jira", "status": status, "register_webhooks": True,
            "api_base": self.sim.site_api_url,
            "site": {"id": self.sim.cloud_id, "url": self.sim.site_url, "name": "acme"}})


@pytest.fixture
def site(request, tmp_path, leak_guard) -> Site:
    clock = FakeClock()
    ports = dataclasses.replace(
        build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path / "state")})), clock=clock)
    sim = JiraSimulator(on_issue=leak_guard.track, clock=lambda: clock.now().timestamp())
    sim.start()
    request.addfinalizer(sim.stop)
    sim.register_client(CLIENT, leak_guard.track(secrets.token_urlsafe(48)),
                        ["https://keyway.example/oauth-jira/callback"])
    ctx = Context(TENANT, "jira", CONNECTION, observed_at="2030-01-01T00:00:00.000000Z",
                  site=sim.cloud_id)
    for project in sim.seed_activity("acme", repos=3, issues=6, comments=4):
        record = jira_records.repository(project_json(project, sim.site_url), ctx)
        ports.business.put("repositories", record["id"], record)
    found = Site(sim, ports, clock, ports.business.query("repositories"))
    found.connect(CONNECTION)
    return found


def project_ids(site: Site, repos: list | None = None) -> str:
    return ", ".join(sorted((r.data["external_id"] for r in repos or site.repos), key=int))


# ---- registration ---------------------------------------------------------------------------
def test_a_connection_gets_one_webhook_for_its_projects_at_the_app_url(site):
    counts = site.ensure()
    assert (counts.registered, counts.adopted, counts.unavailable) == (1, 0, 0)
    (hook,) = site.live()
    assert hook.url == APP_URL and hook.client_id == CLIENT
    assert hook.jql == f"project in ({project_ids(site)})"
    assert hook.events == SPEC.webhook_registration.events
    assert hook.projects == {int(r.data["external_id"]) for r in site.repos}
    record = site.record()
    assert (record["status"], record["hook_ids"], record["jql"]) == (
        "active", [str(hook.id)], hook.jql)
    assert record["external_id"] == site.sim.cloud_id and record["url"] == APP_URL
    assert record["expires_at"] == isoformat(site.clock.now() + timedelta(days=30))
    assert site.calls() == ["POST /webhook"]


def test_a_second_sync_registers_nothing_and_sends_no_request(site):
    site.ensure()
    site.sim.clear_log()
    assert site.ensure() == hooks.Counts()
    assert site.sim.requests_log == [] and len(site.live()) == 1


def test_renewal_waits_until_fewer_than_ten_days_remain(site):
    site.ensure()
    (hook,) = site.live()
    site.sim.clear_log()
    site.clock.advance(19 * DAY)  # 11 days left
    assert site.ensure() == hooks.Counts() and site.calls() == []
    site.clock.advance(2 * DAY)  # 9 days left
    assert site.ensure().renewed == 1
    assert site.calls() == ["GET /webhook", "PUT /webhook/refresh"]
    assert site.sim.webhooks.refreshed == [hook.id]
    record = site.record()
    assert record["expires_at"] == isoformat(site.clock.now() + timedelta(days=30))
    assert record["renewed_at"] == isoformat(site.clock.now()) and record["hook_ids"] == [
        str(hook.id)]
    site.sim.clear_log()
    site.ensure()
    assert site.calls() == []  # renewed: nothing due for another 20 days


def test_a_connection_that_syncs_never_lets_its_webhook_lapse(site):
    site.ensure()
    (first,) = site.live()
    for _ in range(120):  # four months of daily syncs
        site.clock.advance(DAY)
        site.ensure()
        assert [h.id for h in site.live()] == [first.id]  # alive, never replaced
    assert len(site.sim.webhooks.refreshed) == 5  # on days 21, 42, 63, 84 and 105


@pytest.mark.parametrize("days", [25, 31])
def test_without_renewal_a_webhook_delivers_for_thirty_days_then_lapses(site, days):
    site.ensure()
    site.clock.advance(25 * DAY)
    (hook,) = site.live()  # 5 days left: still delivered
    site.clock.advance((days - 25) * DAY)
    assert [h.id for h in site.live()] == ([hook.id] if days < 30 else [])


def test_an_expired_webhook_is_registered_again_and_the_old_id_deleted(site):
    site.ensure()
    (old,) = site.live()
    site.clock.advance(31 * DAY)
    assert site.live() == []  # Jira stopped delivering
    site.sim.clear_log()
    assert site.ensure().registered == 1
    assert site.calls() == ["POST /webhook", "DELETE /webhook"]  # no refresh of a dead one
    (new,) = site.live()
    record = site.record()
    assert new.id != old.id and record["hook_ids"] == [str(new.id)]
    assert record["retired_ids"] == []
    assert record["expires_at"] == isoformat(site.clock.now() + timedelta(days=30))


def test_a_webhook_deleted_at_jira_is_found_missing_at_renewal_and_registered_again(site):
    site.ensure()
    (old,) = site.live()
    site.sim.webhooks.remove(CLIENT, {old.id})  # an admin removed it
    site.clock.advance(21 * DAY)
    site.sim.clear_log()
    site.ensure()
    assert site.calls() == ["GET /webhook", "POST /webhook", "DELETE /webhook"]
    assert len(site.live()) == 1 and site.live()[0].id != old.id
    assert site.sim.webhooks.refreshed == []


def test_the_filter_follows_the_project_set_with_no_gap(site):
    site.ensure()
    (old,) = site.live()
    fewer = site.repos[:2]
    site.sim.clear_log()
    assert site.ensure(fewer).registered == 1
    assert site.calls() == ["POST /webhook", "DELETE /webhook"]  # created first, then deleted
    (new,) = site.live()
    assert new.jql == f"project in ({project_ids(site, fewer)})"
    assert [h.id for h in site.sim.webhooks.deleted] == [old.id]
    assert site.record()["jql"] == new.jql
    site.sim.clear_log()
    site.ensure(fewer)
    assert site.calls() == []
    site.ensure()  # a project came back
    assert site.live()[0].jql == f"project in ({project_ids(site)})"


def test_a_replaced_webhook_that_fails_to_delete_is_deleted_by_the_next_sync(
        site, caplog, monkeypatch):
    site.ensure()
    (old,) = site.live()

    def broken(client_id, ids):
        raise RuntimeError("simulated outage")  # the simulator answers 500

    monkeypatch.setattr(site.sim.webhooks, "remove", broken)
    with caplog.at_level(logging.INFO):
        site.ensure(site.repos[:1])
    assert "webhooks.remove_failed" in [r.getMessage() for r in caplog.records]
    record = site.record()
    assert record["retired_ids"] == [str(old.id)] and record["status"] == "active"
    assert len(site.live()) == 2  # both deliver for now; ingest knows both ids
    monkeypatch.undo()
    site.sim.clear_log()
    site.ensure(site.repos[:1])
    assert site.calls() == ["DELETE /webhook"]
    assert site.record()["retired_ids"] == [] and len(site.live()) == 1


def test_a_changed_public_url_moves_the_webhook_old_one_first(site):
    site.ensure()
    (old,) = site.live()
    moved = "https://keyway.example.org"
    site.sim.clear_log()
    registrar = register.registrar(site.ports, site.client(), SPEC, PLAN, TENANT,
                                   {"register_webhooks": True}, CONNECTION, moved)
    assert registrar.ensure(site.repos).registered == 1
    assert site.calls() == ["DELETE /webhook", "POST /webhook"]  # one URL per app
    (new,) = site.live()
    assert (new.url, site.record()["url"]) == (f"{moved}/webhook-jira/",) * 2
    assert [h.id for h in site.sim.webhooks.deleted] == [old.id]


def test_no_project_left_deletes_the_webhook(site):
    site.ensure()
    (old,) = site.live()
    site.ensure([])
    assert site.live() == [] and [h.id for h in site.sim.webhooks.deleted] == [old.id]
    record = site.record()
    assert (record["status"], record["reason"]) == ("removed", "webhooks.no_projects")
    site.ensure()  # projects again: registered again
    assert len(site.live()) == 1 and site.record()["status"] == "active"


def test_an_interrupted_registration_is_adopted_not_duplicated(site):
    site.ensure()
    (hook,) = site.live()
    record = site.record()  # the sync died after the POST: only the intent was written
    hooks.save(site.ports, record, status="registering", hook_ids=[], pending=record["jql"])
    site.sim.clear_log()
    counts = site.ensure()
    assert (counts.adopted, counts.registered) == (1, 0)
    assert site.calls() == ["GET /webhook"] and [h.id for h in site.live()] == [hook.id]
    again = site.record()
    assert (again["status"], again["hook_ids"], again["adopted"]) == (
        "active", [str(hook.id)], True)


def test_another_connections_webhook_on_the_same_site_is_never_adopted(site):
    site.connect(OTHER)
    site.ensure(connection=OTHER)  # the same site and projects: the same filter
    (theirs,) = site.live()
    jql = site.record(OTHER)["jql"]
    hooks.save(site.ports, {"tenant": TENANT, "provider": "jira", "connection": CONNECTION,
                            "repository": hooks.SITE, "external_id": site.sim.cloud_id},
               status="registering", hook_ids=[], pending=jql)
    site.sim.clear_log()
    assert site.ensure().registered == 1  # looked, found only the other's, created its own
    assert site.calls() == ["GET /webhook", "POST /webhook"]
    assert site.record()["hook_ids"] != [str(theirs.id)]
    assert len(site.live()) == 2


def test_a_token_without_manage_jira_webhook_is_refused_and_retried_daily(site, caplog):
    narrow = site.token(SCOPES[:-1])
    with caplog.at_level(logging.INFO):
        counts = site.ensure(token=narrow)
    assert counts.unavailable == 1 and site.live() == []
    record = site.record()
    assert (record["status"], record["reason"]) == ("unavailable", "provider.insufficient_scope")
    assert "webhooks.unavailable" in [r.getMessage() for r in caplog.records]
    site.sim.clear_log()
    site.clock.advance(DAY - 60)
    site.ensure()
    assert site.calls() == []  # not on every sync
    site.clock.advance(120)
    assert site.ensure().registered == 1 and len(site.live()) == 1


def test_a_refused_renewal_waits_a_day_and_an_expired_webhook_then_becomes_unavailable(site):
    site.ensure()
    site.clock.advance(21 * DAY)
    narrow = site.token(SCOPES[:-1])  # the admin re-consented without manage:jira-webhook
    assert site.ensure(token=narrow).unavailable == 1
    record = site.record()
    assert (record["status"], record["reason"]) == ("active", "provider.insufficient_scope")
    site.sim.clear_log()
    site.clock.advance(DAY / 2)
    site.ensure(token=site.token(SCOPES[:-1]))
    assert site.calls() == []  # not on every sync
    site.clock.advance(9 * DAY)  # day 30.5: it expired
    site.ensure(token=site.token(SCOPES[:-1]))
    assert site.calls() == ["POST /webhook"]  # no refresh of a dead one; the POST is refused
    assert (site.record()["status"], site.live()) == ("unavailable", [])


def test_a_failed_renewal_keeps_the_webhook_active_and_the_next_sync_renews(site, caplog):
    site.ensure()
    expires = site.record()["expires_at"]
    site.clock.advance(21 * DAY)
    site.sim.fail_next(502, count=3, path_prefix="/ex/jira/")  # every GET attempt
    with caplog.at_level(logging.INFO):
        assert site.ensure().failed == 1
    assert "webhooks.register_failed" in [r.getMessage() for r in caplog.records]
    record = site.record()
    assert (record["status"], record["expires_at"]) == ("active", expires)
    assert site.ensure().renewed == 1


def test_a_rate_limit_propagates_to_the_sync_and_keeps_the_intent(site):
    site.sim.rate_limit_next(retry_after=60)
    with pytest.raises(RateLimited):
        site.ensure()
    assert site.record()["status"] == "registering" and site.record()["pending"]


def test_a_disconnecting_connection_registers_nothing(site):
    site.connect(CONNECTION, status="disconnecting")
    assert site.ensure() == hooks.Counts()
    assert site.sim.requests_log == [] and site.record() is None


def test_no_token_reaches_a_record_or_a_log(site, caplog):
    token = site.token()
    with caplog.at_level(logging.DEBUG):
        site.ensure(token=token)
    assert token not in json.dumps(site.record())


# ---- removal --------------------------------------------------------------------------------
def test_disconnect_deletes_the_connections_webhooks_by_id(site):
    site.ensure()
    (hook,) = site.live()
    site.connect(CONNECTION, status="disconnecting")
    cleanup = unregister.remover(site.ports, "jira", TENANT, CONNECTION)
    site.sim.clear_log()
    cleanup(site.token())
    assert site.calls() == ["DELETE /webhook"]
    assert site.live() == [] and [h.id for h in site.sim.webhooks.deleted] == [hook.id]
    assert site.record()["status"] == "removed"
    assert unregister.remover(site.ports, "jira", TENANT, CONNECTION) is None


def test_disconnect_finds_an_unrecorded_webhook_by_its_filter_but_not_anothers(site):
    site.connect(OTHER)
    site.ensure(connection=OTHER)
    (theirs,) = site.live()
    site.ensure()
    mine = [h for h in site.live() if h.id != theirs.id]
    record = site.record()
    hooks.save(site.ports, record, status="registering", hook_ids=[], pending=record["jql"])
    site.connect(CONNECTION, status="disconnecting")
    unregister.remover(site.ports, "jira", TENANT, CONNECTION)(site.token())
    assert [h.id for h in site.live()] == [theirs.id]  # the other connection's stays
    assert [h.id for h in site.sim.webhooks.deleted] == [mine[0].id]


def test_a_revoked_token_at_disconnect_is_recorded_and_disconnect_goes_on(site):
    site.ensure()
    site.connect(CONNECTION, status="disconnecting")
    token = site.token()
    site.sim.oauth.revoke(token)
    unregister.remover(site.ports, "jira", TENANT, CONNECTION)(token)
    assert (site.record()["status"], site.record()["reason"]) == (
        "remove_failed", "provider.token_rejected")
    assert len(site.live()) == 1  # it expires by itself within 30 days


# ---- pieces ---------------------------------------------------------------------------------
def test_only_a_connection_that_asked_gets_the_site_registrar(site):
    client = site.client()

    def build_for(record: dict, spec=SPEC):
        return register.registrar(site.ports, client, spec, PLAN, TENANT, record, CONNECTION,
                                  PUBLIC)

    assert isinstance(build_for({"register_webhooks": True}), dynamic.SiteRegistrar)
    assert build_for({}) is None and build_for({"register_webhooks": False}) is None
    assert build_for({"register_webhooks": True},
                     dataclasses.replace(SPEC, webhook_registration=None)) is None


def test_the_client_sends_bodies_on_put_and_delete_only_to_allowlisted_templates(site):
    client = site.client()
    with pytest.raises(EgressRefused):
        client.put("PUT /rest/api/3/webhook", {}, json={"webhookIds": [1]})
    with pytest.raises(EgressRefused):
        client.delete("DELETE /rest/api/3/issue/{issueIdOrKey}", {"issueIdOrKey": "A-1"})
    assert site.sim.requests_log == []  # refused before a byte left
    answer = client.put("PUT /rest/api/3/webhook/refresh", {}, json={"webhookIds": [1]})
    assert answer.status == 200 and "expirationDate" in answer.body


def test_jira_expiration_dates_are_read_as_milliseconds_or_as_text():
    assert isoformat(dynamic.expiry(1_893_456_000_000)) == "2030-01-01T00:00:00.000000Z"
    assert isoformat(dynamic.expiry("2019-06-01T12:42:30.000+0000")) == (
        "2019-06-01T12:42:30.000000Z")
    assert dynamic.expiry("soon") is None and dynamic.expiry(True) is None


def test_the_filter_names_only_numeric_project_ids(site):
    assert dynamic.jql_filter(site.repos) == f"project in ({project_ids(site)})"
    assert dynamic.jql_filter([]) is None
