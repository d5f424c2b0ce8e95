"""Webhook gap recovery end to end, over real HTTP: the simulators lose some deliveries (logged
as failed, as the providers log them), keyway's scheduler asks ``vault-P`` for a round, the
vault reads the provider's delivery log and recovers what keyway missed — from the stored
payload, or by asking for a redelivery — and after one cycle keyway's delivery records equal
the simulator's and every event is published to ``ingest`` exactly once."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from keyway.simulators import GitHubSimulator, JiraSimulator
from shared import messages, policy
from shared.entry import event_function
from shared.records.model import record_id
from shared.routing import handlers_for
from shared.scheduler import deliveries as rounds
from shared.webhooks import recovery
from shared.webhooks.deliveries import COLLECTION
from tests.integration.test_webhook_registration import (
    TENANT,
    _callback,
    connect,
    github_event,
    gitlab_event,
)
from tests.integration.test_webhook_registration import gitlab as gitlab  # noqa: F401 - fixture
from tests.unit.test_entry import pubsub_event

TOPICS = ("sync-requests", "connection-control", "fetch-jobs", "events", "delivery-recovery")


@pytest.fixture
def github(served, monkeypatch, leak_guard):
    sim = GitHubSimulator(expiring_tokens=False, on_issue=leak_guard.track).start()  # OAuth App
    sim.register_client("gh-client", "gh-client-secret-1", [_callback(served, "github")])
    served.provider_config(monkeypatch, "github", "gh-client", "gh-client-secret-1",
                           sim.oauth_url, sim.api_url)
    sim.seed_activity("acme", repos=1, prs=2, issues=2, comments=2)
    yield sim
    sim.stop()


def pump(stack, provider: str, published: Counter) -> None:
    """Hand every waiting message to its subscriber until none is left; count each
    ``webhook.event`` by delivery id as ingest receives it."""
    while True:
        got = []
        for topic in (f"{t}-{provider}" for t in TOPICS):
            batch: list = []
            stack.ports.bus.pull(policy.subscription_name(topic), batch.append, max_messages=50)
            got += [(topic, m) for m in batch]
        if not got:
            return
        for topic, m in got:
            inbound = messages.decode(topic, m.data, m.attributes, m.message_id)
            if inbound.type == "webhook.event":
                published[inbound.body["delivery"]] += 1
            receiver = policy.ROUTES[topic].subscriber
            event_function(receiver, handlers_for(receiver))(
                pubsub_event(topic, inbound.sender, inbound.type, inbound.body))


def one_round(stack, provider: str, published: Counter, *, later: int = 0) -> int:
    """A scheduler round (``later`` rounds after now), then everything it set off."""
    now = datetime.now(UTC) + timedelta(seconds=later * stack.config.delivery_recovery_seconds)
    asked = rounds.sweep(stack.ports, now)
    pump(stack, provider, published)
    return asked


def pr_event(repo: dict, number: int) -> dict:
    number += 100  # clear of the seeded pull requests the first sync fetched
    payload = github_event(repo)
    payload["number"] = number
    payload["pull_request"].update(number=number, id=990_100_000 + number,
                                   title=f"event {number}")
    return payload


def pr_record(stack, repo: dict, number: int) -> dict | None:
    return stack.ports.business.get("pull_requests", record_id(
        TENANT, "github", "pull_requests", f"{repo['id']}#{number + 100}"))


def recorded(stack, provider: str) -> set[str]:
    return {s.data["delivery"] for s in stack.ports.business.query(COLLECTION)
            if s.data.get("provider") == provider}


@pytest.mark.parametrize("omit_payloads", [False, True], ids=["stored-payload", "redelivery"])
def test_dropped_repository_hook_deliveries_are_recovered_once(served, github,
                                                               omit_payloads) -> None:
    published: Counter = Counter()
    connect(served, "github")
    pump(served, "github", published)
    repo = github.data.list()[0]
    assert github.hooks.list(repo["full_name"].lower()), "the first sync registered a hook"
    github.deliveries.omit_payloads = omit_payloads

    for number in (1, 2):
        github.deliver(repo["full_name"], "pull_request", pr_event(repo, number))
    github.drop_deliveries(next_n=3)  # an outage: three deliveries never reach keyway
    for number in (3, 4, 5):
        assert github.deliver(repo["full_name"], "pull_request", pr_event(repo, number)) == [None]
    github.deliver(repo["full_name"], "pull_request", pr_event(repo, 6))
    github.deliveries.redeliver(github.delivery_log.records()[0])  # a normal one, redelivered
    pump(served, "github", published)
    assert [n for n in range(1, 7) if pr_record(served, repo, n)] == [1, 2, 6]

    github.clear_log()
    assert one_round(served, "github", published) == 1  # the connection (no App configured)
    cost = [f"{r.method} {r.path.rsplit('/', 1)[-1]}" for r in github.requests_log]
    per_missed = [[f"GET {d}"] + (["POST attempts"] if omit_payloads else [])
                  for d in _ids(github, 3)]  # read it whole; without a payload, redeliver
    assert cost == ["GET deliveries"] + sum(per_missed, [])  # one list, then per missed one
    assert [n for n in range(1, 7) if pr_record(served, repo, n)] == [1, 2, 3, 4, 5, 6]
    sent = {d.guid for d in github.delivery_log.records()}
    assert recorded(served, "github") == sent  # keyway's records equal the simulator's
    assert {published[guid] for guid in sent} == {1}  # each applied once, none twice
    redelivered = [d for d in github.delivery_log.records() if d.redelivery]
    assert len(redelivered) == (4 if omit_payloads else 1)  # three asked for, one by hand

    before = sum(published.values())
    github.clear_log()
    one_round(served, "github", published, later=1)  # the next round finds nothing new
    assert sum(published.values()) == before
    assert [r.method for r in github.requests_log] == ["GET"]  # a quiet hook: one request


def _ids(github, count: int) -> list[str]:
    """The log ids of the ``count`` failed first attempts, oldest first."""
    return [str(d.id) for d in github.delivery_log.records()
            if not d.ok and not d.redelivery][:count]


def test_a_publish_that_fails_mid_round_loses_nothing(served, github, monkeypatch) -> None:
    """The bus refuses the second recovered event: that round stops there with the watermark
    before it, and the next round publishes the rest — each event once."""
    published: Counter = Counter()
    connect(served, "github")
    pump(served, "github", published)
    repo = github.data.list()[0]
    github.drop_deliveries(next_n=3)
    for number in (1, 2, 3):
        github.deliver(repo["full_name"], "pull_request", pr_event(repo, number))
    real, calls = messages.publish_encoded, []

    def flaky(bus, topic, data, attributes, **kw):
        if topic == "events-github":
            calls.append(topic)
            if len(calls) == 2:
                from shared.errors import UnavailableError
                raise UnavailableError("bus down", key="bus.unavailable")
        return real(bus, topic, data, attributes, **kw)

    monkeypatch.setattr(messages, "publish_encoded", flaky)
    one_round(served, "github", published)
    assert [n for n in (1, 2, 3) if pr_record(served, repo, n)] == [1]
    monkeypatch.setattr(messages, "publish_encoded", real)
    one_round(served, "github", published, later=1)
    assert [n for n in (1, 2, 3) if pr_record(served, repo, n)] == [1, 2, 3]
    assert {published[d.guid] for d in github.delivery_log.records()} == {1}


# ---- Jira: the app's failed deliveries ---------------------------------------------------------
@pytest.fixture
def jira(served, monkeypatch, leak_guard):
    sim = JiraSimulator(on_issue=leak_guard.track).start()
    sim.register_client("jira-client", "jira-client-secret-of-32-bytes-x", [
        _callback(served, "jira")])
    served.provider_config(monkeypatch, "jira", "jira-client", "jira-client-secret-of-32-bytes-x",
                           sim.oauth_url, sim.api_url)
    sim.seed_activity("acme", repos=1, issues=4, comments=2)
    yield sim
    sim.stop()


def test_jira_failed_deliveries_are_recovered_from_their_bodies(served, jira) -> None:
    published: Counter = Counter()
    connect(served, "jira")
    pump(served, "jira", published)
    assert jira.webhooks.live(), "the first sync registered the dynamic webhook"
    keys = sorted(i["key"] for p in jira.data.projects.values() for i in p.issues.values())[:4]
    assert len(keys) == 4
    jira.deliver("jira:issue_updated", keys[0])
    jira.webhooks.drop_next(2)
    jira.deliver("jira:issue_updated", keys[1])
    jira.deliver("jira:issue_updated", keys[2])
    jira.deliver("jira:issue_updated", keys[3])
    pump(served, "jira", published)
    lost = {d.guid for d in jira.webhooks.log.records() if not d.ok}
    assert len(lost) == 2 and not lost & set(published)

    one_round(served, "jira", published)
    sent = {d.guid for d in jira.webhooks.log.records()}
    assert recorded(served, "jira") == sent
    assert {published[guid] for guid in sent} == {1}
    marks = served.ports.business.query(recovery.WATERMARKS)
    assert [m.data["provider"] for m in marks] == ["jira"]
    one_round(served, "jira", published, later=1)
    assert {published[guid] for guid in sent} == {1}
    assert json.dumps(list(published))  # delivery ids only, nothing secret


@pytest.mark.parametrize("how", ["hook-deleted", "admin-lost"])
def test_a_hook_out_of_reach_is_no_longer_reported_active(served, github, how) -> None:
    """Its log answers 404: the registration reads ``unavailable`` with a stable reason, the
    next round spends no request on it, and the registration pass restores it a day later."""
    published: Counter = Counter()
    connect(served, "github")
    pump(served, "github", published)
    repo = github.data.list()[0]
    [hook] = github.hooks.list(repo["full_name"].lower())
    if how == "hook-deleted":
        github.hooks.remove(repo["full_name"].lower(), hook.id)
    else:
        github.deny_admin(repo["full_name"])
    [before] = [s.data for s in served.ports.business.query("webhook_registrations")]
    assert before["status"] == "active"

    github.clear_log()
    one_round(served, "github", published)
    assert [r.status for r in github.requests_log] == [404]
    [after] = [s.data for s in served.ports.business.query("webhook_registrations")]
    assert (after["status"], after["reason"]) == ("unavailable", "webhooks.hook_unreachable")
    assert after["hook_id"] == before["hook_id"] and after["retry_at"] > after["updated_at"]

    github.clear_log()
    one_round(served, "github", published, later=1)
    assert github.requests_log == []  # nothing live left to read


# ---- GitLab: a project hook's failed events carry their payloads ---------------------------
def mr_event(project: dict, iid: int) -> dict:
    payload = gitlab_event(project)
    payload["object_attributes"].update(iid=iid, id=990_100_000 + iid, title=f"event {iid}")
    return payload


def mr_record(stack, project: dict, iid: int) -> dict | None:
    return stack.ports.business.get("pull_requests", record_id(
        TENANT, "gitlab", "pull_requests", f"{project['id']}#{iid}"))


def test_gitlab_hook_events_lost_in_an_outage_are_recovered_once(served, gitlab) -> None:
    published: Counter = Counter()
    connect(served, "gitlab", register_webhooks=True)
    pump(served, "gitlab", published)
    project = gitlab.data.list()[0]
    [hook] = gitlab.hooks.list(str(project["id"]))

    gitlab.deliver(project["id"], mr_event(project, 5001))
    gitlab.drop_deliveries(next_n=23)  # more failures than one page of GitLab's 20
    for iid in range(5002, 5025):
        assert gitlab.deliver(project["id"], mr_event(project, iid)) == [None]
    gitlab.deliver(project["id"], mr_event(project, 5025))
    pump(served, "gitlab", published)
    assert [i for i in range(5001, 5026) if mr_record(served, project, i)] == [5001, 5025]

    gitlab.clear_log()
    assert one_round(served, "gitlab", published) == 1
    paths = [f"{r.method} {r.path.split('/hooks/', 1)[-1]}" for r in gitlab.requests_log]
    assert paths == [f"GET {hook.id}/events"] * 2  # 23 failures: two pages of 20, nothing else
    assert all(r.query.get("per_page") == "20" for r in gitlab.requests_log)
    assert [i for i in range(5001, 5026) if not mr_record(served, project, i)] == []
    sent = {d.guid for d in gitlab.delivery_log.records()}
    assert recorded(served, "gitlab") == sent  # keyway's records equal the simulator's
    assert {published[guid] for guid in sent} == {1}  # each applied once

    gitlab.clear_log()
    one_round(served, "gitlab", published, later=1)  # nothing new: one request, no event
    assert [r.method for r in gitlab.requests_log] == ["GET"]
    assert {published[guid] for guid in sent} == {1}


def test_a_gitlab_event_without_its_payload_is_left_to_the_sync(served, gitlab, caplog) -> None:
    """GitLab keeps ``{"oversize": true}`` instead of a large payload: unrecoverable from the
    log (a resend would send that stand-in), logged, and the watermark moves past it."""
    import logging

    published: Counter = Counter()
    connect(served, "gitlab", register_webhooks=True)
    pump(served, "gitlab", published)
    project = gitlab.data.list()[0]
    gitlab.drop_deliveries(next_n=1)
    gitlab.deliver(project["id"], mr_event(project, 6001))
    [lost] = [d for d in gitlab.delivery_log.records() if not d.ok]
    lost.payload = {"oversize": True}
    with caplog.at_level(logging.WARNING, logger="keyway.webhooks.recovery"):
        one_round(served, "gitlab", published)
    assert mr_record(served, project, 6001) is None and not published
    assert [r.getMessage() for r in caplog.records].count("deliveries.gitlab.unrecoverable") == 1
    gitlab.clear_log()
    one_round(served, "gitlab", published, later=1)
    assert not published and [r.method for r in gitlab.requests_log] == ["GET"]
