"""A sync that stops before it finishes comes back by itself, through the real entry points:
a redelivered job whose envelope was already opened resumes its sync through a fresh envelope,
a transient failure schedules its own retry, a lost request is asked again by the scheduler's
tick, and every sync that cannot go on ends ``failed`` with a stable reason."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared import messages, policy
from shared.clock import isoformat, parse_iso
from shared.entry import event_function
from shared.errors import UnavailableError
from shared.fetch import recovery, status
from shared.routing import handlers_for
from shared.vault import handlers as vault_handlers
from tests.integration.test_fetch_flow import deliver, stack  # noqa: F401 - a fixture
from tests.unit.test_entry import pubsub_event

CONNECTION = "conn-1"


@pytest.fixture(autouse=True)
def short_retries(monkeypatch):
    """Set before ``stack`` builds its configuration: a 1 s backoff base."""
    monkeypatch.setenv("KEYWAY_SYNC_RETRY_SECONDS", "1")


def tick() -> None:
    receive = event_function("scheduler", handlers_for("scheduler"))
    receive(pubsub_event("refresh-ticks", "cloud-scheduler", "refresh.tick",
                         {"tick_time": isoformat(datetime.now(UTC))}))


def pull_job(ports) -> messages.Inbound:
    got: list = []
    ports.bus.pull(policy.subscription_name("fetch-jobs-github"), got.append)
    assert len(got) == 1
    return messages.decode("fetch-jobs-github", got[0].data, got[0].attributes,
                           got[0].message_id)


def run_job(job: messages.Inbound) -> None:
    receive = event_function("fetch-github", handlers_for("fetch-github"))
    receive(pubsub_event("fetch-jobs-github", job.sender, job.type, job.body))


def requests_waiting(ports) -> list[messages.Inbound]:
    """The sync requests waiting for vault-github (taken off the bus)."""
    got: list = []
    ports.bus.pull(policy.subscription_name("sync-requests-github"), got.append)
    return [messages.decode("sync-requests-github", m.data, m.attributes, m.message_id)
            for m in got]


def first_job(ports) -> messages.Inbound:
    tick()
    assert len(deliver(ports, "sync-requests-github")) == 1
    return pull_job(ports)


def sync_status(ports) -> dict:
    return ports.business.get("sync_status", CONNECTION)


def die_mid_run(ports) -> None:
    """What a killed fetch leaves behind: ``running`` under a lease nobody will end."""
    assert status.begin(ports, "t-1", CONNECTION, timedelta(0)) is not None
    time.sleep(0.01)


def test_a_redelivered_job_of_a_run_that_died_resumes_through_a_fresh_envelope(stack):  # noqa: F811
    ports, sim = stack
    job = first_job(ports)
    run_job(job)  # the first delivery opens the envelope...
    assert sync_status(ports)["state"] == "done"
    die_mid_run(ports)  # ...and the next run of the sync died holding the lease
    run_job(job)  # the bus brings the job back: its envelope is spent
    asked = requests_waiting(ports)
    assert [(m.sender, m.body["resume"], m.body["reason"]) for m in asked] == [
        ("fetch-github", "checkpoint", "recovery")]
    shown = sync_status(ports)
    assert (shown["state"], shown["reason"], shown["attempt"]) == (
        "retrying", "fetch.lease_expired", 1)
    run_job(job)  # a third delivery while the recovery is under way asks nothing more
    assert requests_waiting(ports) == []
    receive = event_function("vault-github", handlers_for("vault-github"))
    receive(pubsub_event("sync-requests-github", asked[0].sender, asked[0].type,
                         asked[0].body))
    run_job(pull_job(ports))
    shown = sync_status(ports)
    assert (shown["state"], shown["attempt"], shown["recover_at"]) == ("done", 0, None)
    assert len(ports.business.query("pull_requests")) == 120


def test_a_redelivered_job_asks_nothing_while_a_run_holds_the_lease_or_after_the_end(stack):  # noqa: F811
    ports, _ = stack
    job = first_job(ports)
    run_job(job)
    run_job(job)  # finished sync: nothing to resume
    assert requests_waiting(ports) == []
    assert status.begin(ports, "t-1", CONNECTION, timedelta(minutes=5)) is not None
    run_job(job)  # a live run holds the lease
    assert requests_waiting(ports) == []
    assert sync_status(ports)["state"] == "running"


def test_a_transient_failure_schedules_its_own_retry_and_the_tick_resumes_it(stack):  # noqa: F811
    ports, sim = stack
    job = first_job(ports)
    sim.fail_next(503, count=3, path_prefix="/api/v3/repos/acme/repo-0002/")
    run_job(job)  # acknowledged: the retry is keyway's, not the bus's
    shown = sync_status(ports)
    assert (shown["state"], shown["reason"], shown["attempt"]) == (
        "retrying", "provider.unavailable", 0)
    retry_at = parse_iso(shown["retry_at"])
    assert datetime.now(UTC) < retry_at <= datetime.now(UTC) + timedelta(seconds=1)
    assert shown["recover_at"] == shown["retry_at"] and shown["lease"] is None
    partial = len(ports.business.query("pull_requests"))
    assert 0 < partial < 120
    tick()  # before retry_at: nothing
    assert [m.body.get("reason") for m in requests_waiting(ports)] == []
    time.sleep(max(0.0, (retry_at - datetime.now(UTC)).total_seconds()) + 0.05)
    tick()
    asked = requests_waiting(ports)
    assert [(m.sender, m.body["resume"]) for m in asked] == [("scheduler", "checkpoint")]
    receive = event_function("vault-github", handlers_for("vault-github"))
    receive(pubsub_event("sync-requests-github", asked[0].sender, asked[0].type,
                         asked[0].body))
    run_job(pull_job(ports))
    shown = sync_status(ports)
    assert (shown["state"], shown["attempt"]) == ("done", 0)
    assert len(ports.business.query("pull_requests")) == 120
    assert shown["last_run"]["by_kind"]["pull_requests"] == 120 - partial  # from checkpoints


def test_a_lost_continuation_is_asked_again_then_fails_after_the_last_attempt(stack):  # noqa: F811
    ports, _ = stack
    doc = ports.business.get("connections", CONNECTION)  # not due: only recovery asks
    ports.business.put("connections", CONNECTION, {
        **doc, "next_sync_at": isoformat(datetime.now(UTC) + timedelta(hours=1))})
    owner = status.begin(ports, "t-1", CONNECTION)
    status.end(ports, CONNECTION, owner, "continuing",
               recover_at=datetime.now(UTC) - timedelta(seconds=1))
    for attempt in range(1, recovery.MAX_ATTEMPTS + 1):
        tick()
        assert len(requests_waiting(ports)) == 1  # the request is lost (never delivered)
        shown = sync_status(ports)
        assert (shown["state"], shown["attempt"]) == ("retrying", attempt)
        assert shown["reason"] == "fetch.continuation_lost"
        ports.business.put("sync_status", CONNECTION, {
            **shown, "recover_at": isoformat(datetime.now(UTC) - timedelta(seconds=1))})
    tick()
    assert requests_waiting(ports) == []
    shown = sync_status(ports)
    assert (shown["state"], shown["reason"], shown["recover_at"]) == (
        "failed", "fetch.continuation_lost", None)
    assert shown["consecutive_failures"] == 1


def test_a_sync_whose_connection_needs_reauthorization_ends_failed_instead(stack):  # noqa: F811
    """The vault refused the request (it dead-letters); the tick ends the sync with the
    connection's reason rather than asking again."""
    ports, _ = stack
    die_mid_run(ports)
    doc = ports.business.get("connections", CONNECTION)
    ports.business.put("connections", CONNECTION, {
        **doc, "status": "needs_reauth", "status_reason": "vault.needs_reauth"})
    tick()
    assert requests_waiting(ports) == []
    shown = sync_status(ports)
    assert (shown["state"], shown["reason"]) == ("failed", "vault.needs_reauth")


def test_retry_backoff_doubles_with_jitter_and_is_capped() -> None:
    for attempt, base in ((0, 60), (1, 60), (3, 60)):
        delay = recovery.backoff(attempt, base).total_seconds()
        assert base * 2 ** attempt * 0.5 <= delay <= base * 2 ** attempt
    assert recovery.backoff(20, 60) <= recovery.MAX_BACKOFF
    assert len({recovery.backoff(2, 60) for _ in range(20)}) > 1


class DownBus:
    """The bus, with publishing down (a fake of the port's publish)."""

    def __init__(self, bus) -> None:
        self._bus = bus

    def publish(self, *args, **kwargs) -> str:
        raise UnavailableError("pubsub.publish: service unavailable")

    def __getattr__(self, name: str):
        return getattr(self._bus, name)


def scheduled_request() -> messages.Inbound:
    return messages.Inbound("sync-requests-github", "sync.requested", 1, "scheduler",
                            {"tenant": "t-1", "connection": CONNECTION, "scope": "all",
                             "requested_at": isoformat(datetime.now(UTC))}, "m-1")


def test_a_request_the_vault_cannot_serve_is_asked_again_once_the_bus_gives_up(stack):  # noqa: F811
    ports, _ = stack
    doc = ports.business.get("connections", CONNECTION)  # not due: only recovery asks
    ports.business.put("connections", CONNECTION, {
        **doc, "next_sync_at": isoformat(datetime.now(UTC) + timedelta(hours=1))})
    with pytest.raises(UnavailableError):  # raised: the bus redelivers it, up to dead-letter
        vault_handlers.on_sync_requested("github", replace(ports, bus=DownBus(ports.bus)),
                                         scheduled_request())
    shown = sync_status(ports)
    assert (shown["state"], shown["reason"]) == ("retrying", "backend.unavailable")
    assert parse_iso(shown["recover_at"]) > datetime.now(UTC)
    tick()  # the bus is still trying: nothing yet
    assert requests_waiting(ports) == []
    ports.business.put("sync_status", CONNECTION, {  # a lease later, dead-lettered by now
        **shown, "recover_at": isoformat(datetime.now(UTC) - timedelta(seconds=1))})
    tick()
    assert [(m.sender, m.body["resume"]) for m in requests_waiting(ports)] == [
        ("scheduler", "checkpoint")]
    assert sync_status(ports)["attempt"] == 1


def test_a_request_for_a_token_that_needs_reauthorization_ends_the_sync_failed(stack):  # noqa: F811
    ports, _ = stack
    record = ports.vault.get("app_tokens", CONNECTION)
    ports.vault.put("app_tokens", CONNECTION, {**record, "status": "needs_reauth"})
    receive = event_function("vault-github", handlers_for("vault-github"))
    request = scheduled_request()
    receive(pubsub_event("sync-requests-github", request.sender, request.type, request.body))
    shown = sync_status(ports)
    assert (shown["state"], shown["reason"], shown["recover_at"]) == (
        "failed", "vault.needs_reauth", None)
    assert ports.business.get("connections", CONNECTION)["status"] == "needs_reauth"
