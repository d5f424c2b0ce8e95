"""The whole scheduled path through real entry points: scheduler tick → vault-github releases a
sealed token → fetch-github syncs from the simulator → records; redelivery is harmless."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from keyway.firststart import ensure_local_state
from keyway.simulators import GitHubSimulator
from shared import bootstrap, messages, policy
from shared.clock import isoformat
from shared.entry import event_function
from shared.routing import handlers_for
from shared.topology import subscription_specs
from shared.vault import handlers as vault_handlers
from shared.vault.tokens import TokenSet
from tests.integration.conftest import _reset_caches
from tests.unit.test_entry import pubsub_event


@pytest.fixture
def stack(tmp_path, monkeypatch, leak_guard):
    sim = GitHubSimulator(on_issue=leak_guard.track).start()
    sim.seed_activity("acme", repos=2, prs=120, issues=150, comments=400)
    sim.register_client("gh-client", "gh-client-secret-1", ["http://127.0.0.1:8080/cb"])
    monkeypatch.setenv("KEYWAY_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("KEYWAY_GITHUB_CLIENT_ID", "gh-client")
    monkeypatch.setenv("KEYWAY_GITHUB_OAUTH_URL", sim.oauth_url)
    monkeypatch.setenv("KEYWAY_GITHUB_API_URL", sim.api_url)
    monkeypatch.setenv("KEYWAY_SECRET_GITHUB_CLIENT_SECRET", "gh-client-secret-1")
    monkeypatch.delenv("KEYWAY_BACKEND", raising=False)
    _reset_caches()
    ports = bootstrap.ports()
    ensure_local_state(ports)
    for spec in subscription_specs():
        ports.bus.ensure_subscription(spec)
    issued = sim.mint_token(scopes=("repo",))
    vault_handlers.service("github", ports).store_app_token(
        "t-1", "conn-1", "admin", TokenSet(issued.access_token, issued.refresh_token,
                                           datetime.now(UTC) + timedelta(hours=8)))
    ports.business.put("connections", "conn-1", {
        "tenant": "t-1", "provider": "github", "status": "active", "api_base": sim.api_url,
        "next_sync_at": isoformat(datetime.now(UTC) - timedelta(seconds=1)),
        "interval_seconds": 900})
    yield ports, sim
    sim.stop()
    _reset_caches()


def deliver(ports, topic: str) -> list:
    """Pull what is waiting on ``topic`` and hand it to its subscriber's entry point."""
    subscriber = policy.ROUTES[topic].subscriber
    receive = event_function(subscriber, handlers_for(subscriber))
    got: list = []
    ports.bus.pull(policy.subscription_name(topic), got.append, max_messages=10)
    for m in got:
        inbound = messages.decode(topic, m.data, m.attributes, m.message_id)
        receive(pubsub_event(topic, inbound.sender, inbound.type, inbound.body))
    return got


def test_a_scheduled_sync_reaches_the_records_and_a_redelivered_job_adds_nothing(stack):
    ports, sim = stack
    tick = event_function("scheduler", handlers_for("scheduler"))
    tick(pubsub_event("refresh-ticks", "cloud-scheduler", "refresh.tick",
                      {"tick_time": isoformat(datetime.now(UTC))}))
    assert len(deliver(ports, "sync-requests-github")) == 1
    got: list = []
    ports.bus.pull(policy.subscription_name("fetch-jobs-github"), got.append)
    assert len(got) == 1
    job = messages.decode("fetch-jobs-github", got[0].data, got[0].attributes, got[0].message_id)
    receive = event_function("fetch-github", handlers_for("fetch-github"))
    receive(pubsub_event("fetch-jobs-github", job.sender, job.type, job.body))
    prs = len(ports.business.query("pull_requests"))
    assert prs == 120 and ports.business.get("sync_status", "conn-1")["state"] == "done"
    for _ in range(2):  # the same job again: its envelope was already used → refused, acked
        receive(pubsub_event("fetch-jobs-github", job.sender, job.type, job.body))
    assert len(ports.business.query("pull_requests")) == prs


def test_a_job_whose_envelope_names_another_connection_is_refused(stack):
    ports, _ = stack
    envelope = vault_handlers.service("github", ports).release_for_fetch("t-1", "conn-1",
                                                                         "scheduler")
    receive = event_function("fetch-github", handlers_for("fetch-github"))
    receive(pubsub_event("fetch-jobs-github", "vault-github", "fetch.job",
                         {"tenant": "t-1", "connection": "conn-2", "envelope": envelope}))
    assert ports.business.query("pull_requests") == []


def test_a_job_naming_another_tenant_for_the_connection_is_refused(stack):
    """The envelope is for conn-1, but the job says another tenant owns it: nothing is synced
    and no status is written under that tenant."""
    ports, _ = stack
    envelope = vault_handlers.service("github", ports).release_for_fetch("t-1", "conn-1",
                                                                         "scheduler")
    receive = event_function("fetch-github", handlers_for("fetch-github"))
    receive(pubsub_event("fetch-jobs-github", "vault-github", "fetch.job",
                         {"tenant": "t-2", "connection": "conn-1", "envelope": envelope}))
    assert ports.business.query("pull_requests") == []
    assert ports.business.get("sync_status", "conn-1") is None


def test_a_scheduled_sync_whose_reviews_are_refused_ends_done_but_degraded(stack):
    """GraphQL refused for the whole query: the pull requests are stored, the job is
    acknowledged (no redelivery loop) and the status names what is missing and why."""
    ports, sim = stack
    sim.refuse_graphql("FORBIDDEN")
    tick = event_function("scheduler", handlers_for("scheduler"))
    tick(pubsub_event("refresh-ticks", "cloud-scheduler", "refresh.tick",
                      {"tick_time": isoformat(datetime.now(UTC))}))
    deliver(ports, "sync-requests-github")
    assert len(deliver(ports, "fetch-jobs-github")) == 1  # handled without raising
    assert len(ports.business.query("pull_requests")) == 120
    shown = ports.business.get("sync_status", "conn-1")
    assert shown["state"] == "done" and shown["degraded"] is True
    assert [(m["reason"], m["parents"], m["repositories"]) for m in shown["missing"]] == [
        ("reviews.unavailable: permission", 120, 2)]
    assert shown["last_run"]["missing"] == 120


def test_a_finished_job_keeps_its_final_list_counts_and_freshness_not_its_progress(stack):
    ports, sim = stack
    tick = event_function("scheduler", handlers_for("scheduler"))
    tick(pubsub_event("refresh-ticks", "cloud-scheduler", "refresh.tick",
                      {"tick_time": isoformat(datetime.now(UTC))}))
    deliver(ports, "sync-requests-github")
    deliver(ports, "fetch-jobs-github")
    done = ports.business.get("sync_status", "conn-1")
    assert done["state"] == "done" and "progress" not in done
    assert done["last_run"]["lists"]["pulls"]["items"] == 120
    assert done["last_run"]["lists"]["pulls"]["repositories_done"] == 2
    kinds = {"pull_requests", "reviews", "issues", "comments", "labels"}
    repos = [s.data for s in ports.business.query("repositories")]
    assert len(repos) == 2 and all(set(r["fresh_as_of"]) == kinds for r in repos)
    summary = ports.business.get("connections", "conn-1")["freshness"]
    assert summary["never"] == dict.fromkeys(kinds, 0) and summary["repositories"] == 2
    assert all(done["started_at"] <= at <= done["finished_at"]
               for at in summary["fresh_as_of"].values())
