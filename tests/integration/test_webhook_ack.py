"""One durable write per webhook acknowledgement, through the real ``webhook-github`` function on
both backends (embedded; the Firestore and Pub/Sub emulators): concurrent duplicates publish one
event, a failed publish is published by the retry, a claim left by a crash before its publish is
published by a redelivery after the lease, and an accepted delivery writes the store once."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from werkzeug.test import Client

from shared import messages, policy
from shared.errors import UnavailableError
from shared.webhooks import deliveries
from tests.integration.conftest import _reset_caches, build_stack
from tests.integration.test_webhooks import github_signature

BODY = json.dumps({"action": "opened", "number": 1}).encode()
EVENTS = "events-github"
CONTENDERS = 24


class Crash(BaseException):
    """The instance dies here: nothing it does afterwards reaches a backend."""


class RecordingStore:
    """The business store, recording every write (a create that writes nothing is no write)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.writes, self.transactions, self.dead = inner, 0, 0, False
        self.refuse_transactions = False
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _count(self, n: int = 1) -> None:
        if self.dead:
            raise Crash("the instance is gone")
        with self._lock:
            self.writes += n

    def create(self, collection: str, doc_id: str, data: dict) -> bool:
        created = self.inner.create(collection, doc_id, data)
        self._count(1 if created else 0)
        return created

    def put(self, collection: str, doc_id: str, data: dict) -> None:
        self._count()
        self.inner.put(collection, doc_id, data)

    def delete(self, collection: str, doc_id: str) -> None:
        self._count()
        self.inner.delete(collection, doc_id)

    def transaction(self, fn: Any, **kwargs: Any) -> Any:
        self._count(0)
        if self.refuse_transactions:
            raise UnavailableError("store.transaction: service unavailable")
        with self._lock:
            self.transactions += 1
        return self.inner.transaction(fn, **kwargs)


class RecordingBus:
    """The bus, counting publishes; ``fail`` makes the next ones unavailable, ``crash`` kills
    the instance at its next publish (after the claim was created)."""

    def __init__(self, inner: Any, store: RecordingStore) -> None:
        self.inner, self.store, self.published, self.fail, self.crash = inner, store, 0, 0, False
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def publish(self, topic: str, data: bytes, attributes: Any = None,
                ordering_key: str | None = None) -> str:
        if self.crash:
            self.store.dead = True
            raise Crash("between create and publish")
        if self.fail:
            self.fail -= 1
            raise UnavailableError("bus.publish: service unavailable")
        message_id = self.inner.publish(topic, data, attributes, ordering_key=ordering_key)
        with self._lock:
            self.published += 1
        return message_id


class Later:
    """The system clock, ``shift`` seconds ahead (the lease passes without waiting for it)."""

    def __init__(self, inner: Any, shift: float) -> None:
        self.inner, self.shift = inner, timedelta(seconds=shift)

    def now(self) -> Any:
        return self.inner.now() + self.shift

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture(params=["embedded", pytest.param("emulator", marks=pytest.mark.emulator)])
def stack(request, tmp_path, monkeypatch, leak_guard):
    env = None
    if request.param == "emulator":
        hosts = request.getfixturevalue("emulator_hosts")
        env = {"KEYWAY_BACKEND": "emulator",
               "KEYWAY_PROJECT": request.getfixturevalue("unique_project"), **hosts}
    built = build_stack(tmp_path, monkeypatch, leak_guard, backend_env=env)
    store = RecordingStore(built.ports.business)
    monkeypatch.setattr(built.ports, "business", store)
    monkeypatch.setattr(built.ports, "bus", RecordingBus(built.ports.bus, store))
    yield built
    _reset_caches()


def deliver(stack, delivery: str, client: Client | None = None):
    secret = stack.leak_guard.track(stack.ports.secrets.access("github-webhook-secret"))
    signature = stack.leak_guard.track(github_signature(secret, BODY))
    return (client or stack.client).post("/webhook-github/", data=BODY, headers={
        "X-GitHub-Event": "pull_request", "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": signature, "Content-Type": "application/json"})


def status(response) -> tuple[int, str]:
    return response.status_code, (response.json or {}).get("status", "")


def waiting(stack, expected: int) -> list:
    """What ``events-github`` holds, pulled (and acked) until nothing more comes."""
    got: list = []
    quiet, deadline = 0, time.monotonic() + 30
    while quiet < 3 and time.monotonic() < deadline:
        before = len(got)
        stack.ports.bus.pull(policy.subscription_name(EVENTS), got.append, max_messages=50)
        quiet = quiet + 1 if len(got) == before and len(got) >= expected else 0
        time.sleep(0.2 if len(got) == before else 0)
    return got


def test_concurrent_duplicate_deliveries_publish_exactly_one_event(stack):
    barrier, answers, errors = threading.Barrier(CONTENDERS), [], []

    def contend() -> None:
        client = Client(stack.app)  # one client each, as separate provider connections
        try:
            barrier.wait()
            answers.append(status(deliver(stack, "d-race", client)))
        except Exception as e:  # reported below, not lost in the thread
            errors.append(e)

    workers = [threading.Thread(target=contend) for _ in range(CONTENDERS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    assert sorted(answers) == [(202, "accepted")] + [(202, "duplicate")] * (CONTENDERS - 1)
    assert stack.ports.bus.published == 1 and len(waiting(stack, 1)) == 1
    assert stack.ports.business.writes == 1 and stack.ports.business.transactions == 0


def test_an_accepted_delivery_writes_the_store_once_and_a_duplicate_not_at_all(stack):
    for n in range(5):
        assert status(deliver(stack, f"d-{n}")) == (202, "accepted")
    assert (stack.ports.business.writes, stack.ports.business.transactions) == (5, 0)
    assert status(deliver(stack, "d-0")) == (202, "duplicate")
    assert (stack.ports.business.writes, stack.ports.business.transactions) == (5, 0)
    assert stack.ports.bus.published == 5 and len(waiting(stack, 5)) == 5
    claim = stack.ports.business.get(deliveries.COLLECTION, "github:d-0")
    assert claim["state"] == "claimed" and claim["delivery"] == "d-0"


def test_a_failed_publish_releases_the_claim_and_the_retry_is_published_once(stack):
    stack.ports.bus.fail = 1
    refused = deliver(stack, "d-retry")
    assert refused.status_code == 503 and int(refused.headers["Retry-After"]) > 0
    assert stack.ports.business.get(deliveries.COLLECTION, "github:d-retry") is None
    assert status(deliver(stack, "d-retry")) == (202, "accepted")
    assert status(deliver(stack, "d-retry")) == (202, "duplicate")
    assert stack.ports.bus.published == 1 and len(waiting(stack, 1)) == 1


def test_a_claim_left_by_a_crash_before_its_publish_is_published_after_the_lease(
        stack, monkeypatch):
    stack.ports.bus.crash = True
    with pytest.raises(Crash):
        deliver(stack, "d-crash")
    stack.ports.bus.crash = stack.ports.business.dead = False  # a new instance takes over
    left = stack.ports.business.get(deliveries.COLLECTION, "github:d-crash")
    assert left is not None and left["state"] == "claimed"  # the claim outlived its instance
    assert status(deliver(stack, "d-crash")) == (202, "duplicate")  # within the lease
    assert stack.ports.bus.published == 0
    lease = deliveries.PENDING_LEASE.total_seconds()
    monkeypatch.setattr(stack.ports, "clock", Later(stack.ports.clock, lease + 1))
    assert status(deliver(stack, "d-crash")) == (202, "accepted")  # after it: published
    assert status(deliver(stack, "d-crash")) == (202, "duplicate")  # under a new lease
    published = waiting(stack, 1)
    assert stack.ports.bus.published == 1 and len(published) == 1
    m = published[0]
    body = messages.decode(EVENTS, m.data, m.attributes, m.message_id).body
    assert body["received_at"] == left["received_at"]  # ingest sees the first arrival


def test_a_claim_that_cannot_be_released_is_published_by_a_redelivery_after_the_lease(
        stack, monkeypatch, caplog):
    stack.ports.bus.fail, stack.ports.business.refuse_transactions = 1, True
    assert deliver(stack, "d-stuck").status_code == 503  # the publish error, not the release's
    assert "webhook.github.release_failed" in [r.getMessage() for r in caplog.records]
    stack.ports.business.refuse_transactions = False
    assert status(deliver(stack, "d-stuck")) == (202, "duplicate")  # the claim stayed
    lease = deliveries.PENDING_LEASE.total_seconds()
    monkeypatch.setattr(stack.ports, "clock", Later(stack.ports.clock, lease + 1))
    assert status(deliver(stack, "d-stuck")) == (202, "accepted")
    assert stack.ports.bus.published == 1 and len(waiting(stack, 1)) == 1
