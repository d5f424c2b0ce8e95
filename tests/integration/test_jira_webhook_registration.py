"""Jira's dynamic webhooks end to end, with the stack served over real HTTP and one shifted
clock for keyway and the simulator: an admin connects (``manage:jira-webhook`` asked, no
per-connection secret made) → the first sync registers the connection's webhook at
``/webhook-jira/`` → the simulator delivers an event signed with a JWT under the client secret
→ ingest writes the record; 25 days later a scheduled sync renews it, so on day 31 it still
delivers, while without that sync it lapses and the next sync registers a new one; disconnect
deletes it at Jira."""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import requests

from keyway.simulators import JiraSimulator
from shared.clock import isoformat
from shared.entry import event_function
from shared.errors import NotFound
from shared.records.model import record_id
from shared.routing import handlers_for
from tests.integration.test_webhook_registration import (
    TENANT,
    _callback,
    connect,
    disconnect,
    pump,
)
from tests.unit.test_entry import pubsub_event

DAY = timedelta(days=1).total_seconds()


class ShiftedClock:
    """The system clock moved forward by :attr:`offset` seconds (for keyway and the
    simulator alike): 25 or 31 days pass in a test that takes seconds."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset)

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclasses.dataclass
class Jira:
    sim: JiraSimulator
    clock: ShiftedClock
    secret: str

    def issue_updated(self) -> tuple[str, dict]:
        """Edit an issue in Jira and deliver ``jira:issue_updated``; returns the issue."""
        (ident,) = self.sim.touch("issue", 1)
        issue = self.sim.data.issue(str(ident))
        return issue, self.sim.deliver("jira:issue_updated", issue["key"])


@pytest.fixture
def jira(served, monkeypatch, leak_guard):
    clock = ShiftedClock()
    served.ports.clock = clock  # every function of the stack shares these ports
    sim = JiraSimulator(on_issue=leak_guard.track, clock=clock.time, rate_limit=100_000)
    sim.start()
    secret = leak_guard.track(secrets.token_urlsafe(48))
    sim.register_client("jira-client", secret, [_callback(served, "jira")])
    served.provider_config(monkeypatch, "jira", "jira-client", secret, sim.oauth_url,
                           sim.api_url)
    sim.seed_activity("acme", repos=2, issues=6, comments=4)
    yield Jira(sim, clock, secret)
    sim.stop()


def scheduled_sync(stack) -> None:
    """What Cloud Scheduler's tick starts: the scheduler finds the connection due, vault-jira
    releases its (refreshed) token, fetch-jira syncs."""
    tick = event_function("scheduler", handlers_for("scheduler"))
    tick(pubsub_event("refresh-ticks", "cloud-scheduler", "refresh.tick",
                      {"tick_time": isoformat(stack.ports.clock.now())}))
    pump(stack, "jira")


def issue_record(stack, sim: JiraSimulator, issue: dict) -> dict | None:
    key = f"{sim.cloud_id}:{issue['project']}#{issue['number']}"
    return stack.ports.business.get("issues", record_id(TENANT, "jira", "issues", key))


def site_registration(stack, connection: str) -> dict:
    return stack.ports.business.get("webhook_registrations", f"{connection}:site")


def test_connect_registers_a_dynamic_webhook_that_delivers_and_disconnect_deletes_it(
        served, jira):
    connection, authorize = connect(served, "jira")
    assert "manage:jira-webhook" in authorize["scope"].split()
    with pytest.raises(NotFound):  # Jira signs with the client secret: none per connection
        served.ports.secrets.access(f"webhook-secret-{connection}")
    pump(served, "jira")

    (hook,) = jira.sim.webhooks.live()
    projects = sorted(jira.sim.data.projects)
    assert hook.url == f"{served.config.public_url}/webhook-jira/"
    assert hook.jql == f"project in ({', '.join(map(str, projects))})"
    record = site_registration(served, connection)
    assert (record["status"], record["hook_ids"]) == ("active", [str(hook.id)])
    assert jira.secret not in json.dumps(record)

    issue, (answer,) = jira.issue_updated()
    assert (answer.status_code, answer.json()) == (202, {"status": "accepted"})
    pump(served, "jira")
    assert issue_record(served, jira.sim, issue)["title"] == issue["summary"]

    stranger = served.leak_guard.track(secrets.token_urlsafe(48))
    now = int(jira.clock.time())
    forged = served.leak_guard.track(jwt.encode({"iat": now, "exp": now + 180}, stranger,
                                                algorithm="HS256"))
    refused = requests.post(hook.url, data=b'{"webhookEvent":"jira:issue_updated"}',
                            timeout=10, headers={"Authorization": f"Bearer {forged}",
                                                 "X-Atlassian-Webhook-Identifier": "forged-1"})
    assert refused.status_code == 401
    assert refused.json()["code"] == "webhook.jira.invalid_signature"

    assert disconnect(served, "jira", connection) == 202
    assert jira.sim.webhooks.live() == []
    assert [h.id for h in jira.sim.webhooks.deleted] == [hook.id]
    assert site_registration(served, connection)["status"] == "removed"
    assert jira.issue_updated()[1] == []  # Jira has nothing left to deliver to keyway


def test_a_scheduled_sync_on_day_25_renews_the_webhook_so_it_still_delivers_on_day_31(
        served, jira):
    connection, _ = connect(served, "jira")
    pump(served, "jira")
    (hook,) = jira.sim.webhooks.live()
    jira.clock.advance(25 * DAY)
    scheduled_sync(served)
    assert jira.sim.webhooks.refreshed == [hook.id]
    renewed = site_registration(served, connection)
    jira_ms = int(jira.sim.webhooks.live()[0].expires_at * 1000)  # Jira's expirationDate
    assert renewed["expires_at"] == isoformat(datetime.fromtimestamp(jira_ms / 1000, UTC))
    jira.clock.advance(6 * DAY)  # day 31: past the first 30 days
    issue, (answer,) = jira.issue_updated()
    assert answer.status_code == 202
    pump(served, "jira")
    assert issue_record(served, jira.sim, issue)["title"] == issue["summary"]


def test_without_a_sync_the_webhook_lapses_on_day_31_and_the_next_sync_registers_anew(
        served, jira):
    connection, _ = connect(served, "jira")
    pump(served, "jira")
    (old,) = jira.sim.webhooks.live()
    jira.clock.advance(31 * DAY)
    assert jira.issue_updated()[1] == []  # expired: Jira delivers nothing
    scheduled_sync(served)
    (new,) = jira.sim.webhooks.live()
    assert new.id != old.id and site_registration(served, connection)["hook_ids"] == [
        str(new.id)]
    issue, (answer,) = jira.issue_updated()
    assert answer.status_code == 202
    pump(served, "jira")
    assert issue_record(served, jira.sim, issue)["title"] == issue["summary"]


def test_registration_off_asks_no_webhook_scope_and_registers_nothing(served, jira):
    connection, authorize = connect(served, "jira", register_webhooks=False)
    assert "manage:jira-webhook" not in authorize["scope"].split()
    pump(served, "jira")
    assert jira.sim.webhooks.live() == [] and site_registration(served, connection) is None
    assert not [r for r in jira.sim.requests_log if "/webhook" in r.path]
