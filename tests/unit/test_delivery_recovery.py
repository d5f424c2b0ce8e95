"""The gap-recovery job against the GitHub simulator's App webhook log: missed deliveries are
published once and the watermark moves past them only; a log answer of an unknown shape, a 4xx
or a 5xx leaves the watermark where it was under a stable log key; the App's JWT goes to the
configured API host only (a ``Link`` to another host, a redirect: nothing reaches it)."""

from __future__ import annotations

import json
import logging

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from keyway.simulators import GitHubSimulator
from shared import messages, policy
from shared.bootstrap import build
from shared.config import Config
from shared.errors import PolicyViolation
from shared.providers import registry
from shared.topology import subscription_specs
from shared.webhooks import recovery, recovery_job
from shared.webhooks.deliveries import COLLECTION
from tests.fakes.egress_servers import Recorder
from tests.unit.test_github_app import private_pem, public_pem

APP_ID = "424243"
LOG_PATH = "/api/v3/app/hook/deliveries"


@pytest.fixture
def ports(tmp_path):
    ports = build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path)}))
    for spec in subscription_specs():
        ports.bus.ensure_subscription(spec)
    return ports


@pytest.fixture(scope="module")
def app_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def github(monkeypatch, app_key):
    key = app_key
    with GitHubSimulator() as sim:
        sim.apps.register_app(APP_ID, public_pem(key),
                              dict(registry.get("github").github_app.permissions))
        sim.set_app_webhook(APP_ID, "http://127.0.0.1:9/webhook-github/", "app-hook-secret")
        monkeypatch.setenv("KEYWAY_GITHUB_APP_ID", APP_ID)
        monkeypatch.setenv("KEYWAY_SECRET_GITHUB_APP_PRIVATE_KEY", private_pem(key).decode())
        monkeypatch.setenv("KEYWAY_GITHUB_API_URL", sim.api_url)
        yield sim


@pytest.fixture
def recorder():
    other = Recorder().start()
    yield other
    other.stop()


def lose(sim: GitHubSimulator, count: int) -> list[str]:
    """``count`` App-webhook deliveries lost in an outage; their GUIDs."""
    sim.drop_deliveries(next_n=count)
    return [sim.deliver_app("installation_repositories", {
        "action": "added", "installation": {"id": 77}, "n": n}).guid for n in range(count)]


def run(ports) -> recovery.Outcome:
    (outcome,) = recovery_job.recover("github", ports, {"target": "app"}, lambda c: "")
    return outcome


def published(ports) -> list[messages.Inbound]:
    return _events(ports, "github")


def test_missed_app_webhook_deliveries_are_published_once_and_watermarked(ports, github):
    guids = lose(github, 3)
    outcome = run(ports)
    assert (outcome.read, outcome.ingested, outcome.stopped) == (3, 3, None)
    sent = published(ports)
    assert [m.body["delivery"] for m in sent] == guids  # oldest first
    assert {(m.sender, m.body["verified_by"], m.body["connection"]) for m in sent} == {
        ("vault-github", "provider_api", None)}
    assert sent[0].body["payload"]["n"] == 0
    assert sent[0].body["headers"]["target_type"] == "integration"
    assert {s.data["delivery"] for s in ports.business.query(COLLECTION)} == set(guids)
    assert recovery.watermark(ports, recovery_job.APP_SOURCE) == \
        github.delivery_log.records("app")[-1].id

    again = run(ports)  # nothing new: no second publish, the watermark stays
    assert (again.read, again.ingested) == (0, 0) and published(ports) == []


def test_a_delivery_keyway_recorded_is_not_published_again(ports, github):
    from shared.webhooks import deliveries
    guids = lose(github, 2)
    deliveries.claim(ports.business, ports.clock, deliveries.doc_id("github", guids[0]),
                     {"provider": "github", "delivery": guids[0]})  # what webhook-P records
    outcome = run(ports)
    assert (outcome.recorded, outcome.ingested) == (1, 1)
    assert [m.body["delivery"] for m in published(ports)] == [guids[1]]


@pytest.mark.parametrize(("status", "body", "key"), [
    (200, b'{"deliveries": []}', "deliveries.bad_shape"),
    (200, b'[{"id": "12", "guid": 5}]', "deliveries.bad_shape"),
    (404, b'{"message": "Not Found"}', "provider.not_found"),
    (422, b'{"message": "Validation Failed"}', "provider.refused"),
    (503, b'{"message": "unavailable"}', "provider.unavailable"),
], ids=["object", "wrong-types", "404", "422", "503"])
def test_a_bad_log_answer_leaves_the_watermark_and_logs_a_stable_key(
        ports, github, caplog, status, body, key):
    lose(github, 1)
    run(ports)
    mark = recovery.watermark(ports, recovery_job.APP_SOURCE)
    assert mark is not None
    published(ports)
    lose(github, 1)
    github.fail_next(status, 5, body=body, path_prefix=LOG_PATH)
    with caplog.at_level(logging.WARNING):
        outcome = run(ports)
    assert outcome.stopped == key
    assert recovery.watermark(ports, recovery_job.APP_SOURCE) == mark
    assert published(ports) == []
    logged = [r for r in caplog.records if r.getMessage() == "deliveries.github.read_failed"]
    assert logged and logged[-1].fields["reason"] == key
    github.clear_faults()
    assert run(ports).ingested == 1  # recovered once the log answers again


def test_the_app_jwt_never_follows_a_next_link_to_another_host(ports, github, recorder):
    lose(github, 1)
    item = json.loads(json.dumps([{
        "id": 1, "guid": "g-1", "delivered_at": "2026-01-01T00:00:00Z", "redelivery": False,
        "duration": 0.1, "status": "failed", "status_code": 503, "event": "push",
        "action": None, "installation_id": None, "repository_id": None}]))
    github.fail_next(200, 1, body=json.dumps(item).encode(), path_prefix=LOG_PATH, headers={
        "Link": f'<{recorder.url}{LOG_PATH}?cursor=v1_1>; rel="next"'})
    outcome = run(ports)
    assert outcome.stopped == "egress.refused"
    assert recorder.requests == []
    assert recovery.watermark(ports, recovery_job.APP_SOURCE) is None


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_the_app_jwt_never_follows_a_redirect(ports, github, recorder, status):
    lose(github, 1)
    github.fail_next(status, 5, path_prefix=LOG_PATH,
                     headers={"Location": f"{recorder.url}{LOG_PATH}"})
    outcome = run(ports)
    assert outcome.stopped == "provider.redirect_refused"
    assert recorder.requests == []
    assert published(ports) == []


def test_only_the_scheduler_asks_for_recovery_and_only_the_vault_reads_logs():
    policy.check_publish("scheduler", "delivery-recovery-github", "deliveries.recover")
    policy.check_delivery("vault-github", "delivery-recovery-github", "scheduler",
                          "deliveries.recover")
    for sender in ("api", "ingest", "fetch-github", "webhook-github", "vault-github"):
        with pytest.raises(PolicyViolation):
            policy.check_publish(sender, "delivery-recovery-github", "deliveries.recover")
    with pytest.raises(PolicyViolation):  # not beside sync requests, whoever claims to send it
        policy.check_delivery("vault-github", "sync-requests-github", "scheduler",
                              "deliveries.recover")
    policy.check_publish("vault-github", "events-github", "webhook.event")
    with pytest.raises(PolicyViolation):  # one provider's vault never feeds another's events
        policy.check_publish("vault-gitlab", "events-github", "webhook.event")


def _rounds(ports, now) -> list[messages.Inbound]:
    from shared.scheduler import deliveries as rounds
    asked = rounds.sweep(ports, now)
    got: list = []
    for provider in ("github", "gitlab", "jira", "bitbucket"):
        topic = f"delivery-recovery-{provider}"
        ports.bus.pull(policy.subscription_name(topic), got.append, max_messages=100)
    decoded = [messages.decode("delivery-recovery-x", m.data, m.attributes, m.message_id)
               for m in got]
    assert asked == len(decoded)
    return decoded


@pytest.fixture
def configured(monkeypatch):
    from shared import bootstrap

    def use(seconds: str) -> None:
        monkeypatch.setenv("KEYWAY_DELIVERY_RECOVERY_SECONDS", seconds)
        bootstrap.config.cache_clear()

    yield use
    bootstrap.config.cache_clear()


def test_a_round_asks_once_per_target_and_a_redelivered_tick_asks_nothing(
        ports, monkeypatch, configured):
    from datetime import UTC, datetime, timedelta
    configured("3600")
    monkeypatch.setenv("KEYWAY_GITHUB_APP_ID", APP_ID)
    for cid, provider, status, hooks in (
            ("c-1", "github", "active", True), ("c-2", "jira", "active", True),
            ("c-3", "github", "needs_reauth", True), ("c-4", "gitlab", "active", True),
            ("c-5", "gitlab", "active", False), ("c-6", "bitbucket", "active", True)):
        ports.business.put("connections", cid, {"tenant": "t-1", "provider": provider,
                                                "status": status, "register_webhooks": hooks})
    now = datetime.now(UTC)
    asked = _rounds(ports, now)
    assert sorted((m.body["target"], m.body.get("connection")) for m in asked) == [
        ("app", None), ("connection", "c-1"), ("connection", "c-2"), ("connection", "c-4")]
    assert {m.sender for m in asked} == {"scheduler"}
    assert _rounds(ports, now + timedelta(minutes=59)) == []  # not due yet: nothing twice
    assert len(_rounds(ports, now + timedelta(minutes=61))) == 4


def test_an_interval_of_zero_turns_recovery_off(ports, configured):
    from datetime import UTC, datetime
    configured("0")
    ports.business.put("connections", "c-1", {"tenant": "t-1", "provider": "github",
                                               "status": "active"})
    assert _rounds(ports, datetime.now(UTC)) == []


def test_the_log_is_read_across_cursor_pages_oldest_first(ports, github):
    guids = lose(github, 101)  # two pages of 100
    outcome = run(ports)
    assert (outcome.read, outcome.ingested, outcome.stopped) == (101, 101, None)
    assert [m.body["delivery"] for m in published(ports)] == guids


# ---- Jira: the app's failed deliveries, read with a connection's token ------------------------
@pytest.fixture
def jira_log(ports):
    from keyway.simulators import JiraSimulator
    from shared.clock import SystemClock
    from shared.fetch.client import ProviderClient, shared_session
    from shared.webhooks.recovery_sources import JiraFailedLog

    spec = registry.get("jira")
    with JiraSimulator() as sim:
        sim.register_client("simulator", "jira-unit-signing-secret-32-bytes-x", [])
        project = sim.seed_activity("acme", repos=1, issues=3, comments=0)[0]
        token = sim.mint_token(scopes=(*spec.oauth.scopes["app"],
                                       *spec.webhook_registration.scopes)).access_token
        client = ProviderClient(spec, sim.site_api_url, token, shared_session(), SystemClock(),
                                purpose="recover", local_mode=True, max_attempts=1)
        setup = ProviderClient(spec, sim.site_api_url, token, shared_session(), SystemClock(),
                               purpose="fetch", local_mode=True, max_attempts=1)
        setup.post("POST /rest/api/3/webhook", {}, {
            "url": "http://127.0.0.1:9/webhook-jira/", "webhooks": [{
                "events": ["jira:issue_updated"], "jqlFilter": f"project = {project.id}"}]})
        keys = sorted(i["key"] for i in project.issues.values())
        yield sim, JiraFailedLog(client, "jira:c-1:site"), keys


def test_jira_failures_are_ingested_from_their_bodies_once(ports, jira_log):
    sim, source, keys = jira_log
    sim.webhooks.drop_next(3)
    for key in keys:
        sim.deliver("jira:issue_updated", key)
    outcome = recovery.run(ports, source)
    assert (outcome.read, outcome.ingested, outcome.stopped) == (3, 3, None)
    sent = _events(ports, "jira")
    assert sorted(m.body["delivery"] for m in sent) == sorted(
        d.guid for d in sim.webhooks.log.records())
    assert {m.body["payload"]["webhookEvent"] for m in sent} == {"jira:issue_updated"}
    assert recovery.run(ports, source).ingested == 0 and _events(ports, "jira") == []


@pytest.mark.parametrize("fault", ["connect_only", "bad_shape", "redirect"])
def test_a_jira_log_refusal_or_redirect_leaves_the_watermark(ports, jira_log, recorder, fault):
    sim, source, keys = jira_log
    sim.webhooks.drop_next(1)
    sim.deliver("jira:issue_updated", keys[0])
    recovery.run(ports, source)
    mark = recovery.watermark(ports, source.key)
    _events(ports, "jira")
    sim.webhooks.drop_next(1)
    sim.deliver("jira:issue_updated", keys[1])
    if fault == "connect_only":
        sim.webhooks.failed_connect_only = True
    elif fault == "bad_shape":
        sim.fail_next(200, 1, body=b'{"values": [{"id": 7}], "maxResults": 100}')
    else:
        sim.fail_next(302, 1, headers={"Location": f"{recorder.url}/rest/api/3/webhook/failed"})
    outcome = recovery.run(ports, source)
    assert outcome.stopped == {"connect_only": "provider.refused",
                               "bad_shape": "deliveries.bad_shape",
                               "redirect": "provider.redirect_refused"}[fault]
    assert recovery.watermark(ports, source.key) == mark
    assert _events(ports, "jira") == [] and recorder.requests == []


def _events(ports, provider: str) -> list[messages.Inbound]:
    """Every message waiting on ``events-<provider>``, in publish order."""
    got: list = []
    topic = f"events-{provider}"
    while True:
        before = len(got)
        ports.bus.pull(policy.subscription_name(topic), got.append, max_messages=100)
        if len(got) == before:
            return [messages.decode(topic, m.data, m.attributes, m.message_id) for m in got]


def _crashed_claim(ports, guid: str, seconds_ago: int) -> None:
    """What a run that died between its claim and its publish leaves behind."""
    from datetime import timedelta

    from shared.clock import isoformat
    from shared.webhooks import deliveries
    at = isoformat(ports.clock.now() - timedelta(seconds=seconds_ago))
    ports.business.put(COLLECTION, deliveries.doc_id("github", guid), {
        "provider": "github", "delivery": guid, "via": "recovery", "state": "claimed",
        "owner": "dead-run", "claimed_at": at, "received_at": at})


def test_a_claim_left_by_a_crashed_run_is_published_after_its_lease(ports, github):
    guids = lose(github, 2)
    _crashed_claim(ports, guids[0], seconds_ago=120)  # past the 60 s lease
    outcome = run(ports)
    assert (outcome.ingested, outcome.stopped) == (2, None)
    assert [m.body["delivery"] for m in published(ports)] == guids


def test_a_claim_still_inside_its_lease_stops_the_round_before_it(ports, github):
    guids = lose(github, 2)
    _crashed_claim(ports, guids[1], seconds_ago=5)  # another run may still be publishing it
    outcome = run(ports)
    assert (outcome.ingested, outcome.stopped) == (1, "deliveries.pending")
    first = github.delivery_log.records("app")[0].id
    assert recovery.watermark(ports, recovery_job.APP_SOURCE) == first  # not past the second
    assert [m.body["delivery"] for m in published(ports)] == guids[:1]


@pytest.mark.parametrize(("named", "stored", "hook_tenant"), [
    ({"tenant": "t-other"}, {}, "t-1"),               # the request names another tenant
    ({}, {"provider": "gitlab"}, "t-1"),              # another provider's connection
    ({}, {"status": "needs_reauth"}, "t-1"),          # not active
    ({}, {}, "t-other"),                              # its registration is another tenant's
], ids=["other-tenant", "other-provider", "not-active", "foreign-registration"])
def test_a_connection_round_for_what_is_not_that_tenants_active_hook_reads_nothing(
        ports, github, named, stored, hook_tenant):
    """``deliveries.recover`` for a connection reads a hook's log only when the connection is
    the named tenant's, of this provider, active, and the registration is that tenant's too:
    otherwise no request leaves, no token is asked for and nothing is published."""
    ports.business.put("connections", "c-1", {"tenant": "t-1", "provider": "github",
                                               "status": "active", "api_base": github.api_url,
                                               **stored})
    ports.business.put("webhook_registrations", "c-1:r-1", {
        "tenant": hook_tenant, "provider": "github", "connection": "c-1", "repository": "r-1",
        "target": {"owner": "acme", "repo": "repo-0001"},
        "hook_id": "480000001", "status": "active"})
    asked: list[str] = []
    github.clear_log()
    outcomes = recovery_job.recover("github", ports, {
        "target": "connection", "tenant": "t-1", "connection": "c-1", **named},
        lambda c: asked.append(c) or "token")
    assert (outcomes, asked, github.requests_log, published(ports)) == ([], [], [], [])


def test_the_same_round_for_the_tenants_active_hook_reads_its_log(ports, github):
    """The control of the test above: with everything matching, the hook's log is read with
    the connection's token (the simulator answers 404 for a hook it never made)."""
    ports.business.put("connections", "c-1", {"tenant": "t-1", "provider": "github",
                                               "status": "active", "api_base": github.api_url})
    ports.business.put("webhook_registrations", "c-1:r-1", {
        "tenant": "t-1", "provider": "github", "connection": "c-1", "repository": "r-1",
        "target": {"owner": "acme", "repo": "repo-0001"}, "hook_id": "480000001",
        "status": "active"})
    asked: list[str] = []
    github.clear_log()
    recovery_job.recover("github", ports, {"target": "connection", "tenant": "t-1",
                                           "connection": "c-1"},
                         lambda c: asked.append(c) or "token")
    assert asked == ["c-1"] and [r.path for r in github.requests_log] == [
        "/api/v3/repos/acme/repo-0001/hooks/480000001/deliveries"]
