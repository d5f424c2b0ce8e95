"""Signed notifications to the URLs a tenant admin registers (promise 10): one delivery per
event and subscription, each attempt recorded, retried with backoff, never redirected, never
to a refused address, verifiable with the snippet in docs/API.md as written."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from pathlib import Path

import pytest
from cloudevents.http import CloudEvent

from shared import health, policy
from shared.acting import acting_as
from shared.entry import event_function
from shared.errors import InvalidInput, PolicyViolation, UnavailableError
from shared.notify import deliver, subscriptions
from shared.notify import events as notify_events
from shared.ports import SubscriptionSpec
from shared.routing import handlers_for
from tests.fakes.webhook_receiver import Receiver
from tests.integration.conftest import _reset_caches, build_stack

ROOT = Path(__file__).resolve().parents[2]
TENANT, OTHER = "acme", "globex"
CONNECTION = "c-notify"
TEST_SUB, OUTLET_SUB = "notifications-under-test", "keyway-events-under-test"


def docs_verify():
    """docs/API.md's verification snippet, executed exactly as printed there."""
    text = (ROOT / "docs" / "API.md").read_text()
    section = text[text.index("## Verifying a notification"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    scope: dict = {}
    exec(compile(code, "docs/API.md", "exec"), scope)  # noqa: S102 - the documented snippet
    return scope["verify"]


def push(message) -> CloudEvent:
    """The CloudEvent a Pub/Sub push of ``message`` becomes."""
    body = {"data": base64.b64encode(message.data).decode(),
            "attributes": dict(message.attributes), "messageId": message.message_id}
    return CloudEvent({"type": "google.cloud.pubsub.topic.v1.messagePublished",
                       "source": "//pubsub.googleapis.com/projects/keyway-local/topics/"
                                 "notifications", "id": message.message_id}, {"message": body})


class Setup:
    def __init__(self, stack) -> None:
        self.stack, self.ports = stack, stack.ports
        self.admin = stack.token(TENANT, "admin-1", "admin")
        for name, topic in ((TEST_SUB, "notifications"), (OUTLET_SUB, "keyway-events")):
            self.ports.bus.ensure_subscription(SubscriptionSpec(
                name=name, topic=topic, dead_letter_topic=f"{topic}-dead-letter",
                min_backoff=0.0, max_backoff=0.0))
        self.ports.business.put("connections", CONNECTION, {
            "tenant": TENANT, "provider": "github", "kind": "app", "status": "active"})
        self.receive = event_function("notify", handlers_for("notify"))

    def subscribe(self, url: str, events=("connection.health_changed",), token=None):
        response = self.stack.call("POST", "/api/v1/subscriptions", token or self.admin,
                                   json={"url": url, "events": list(events)})
        body = json.loads(response.get_data())
        if response.status_code == 201:
            self.stack.leak_guard.track(body["secret"])
        return response.status_code, body

    def health_change(self, status: str = "needs_reauth") -> None:
        with acting_as("vault-github"):
            health.mark(self.ports, TENANT, CONNECTION, status, "vault.needs_reauth")

    def pump(self, rounds: int = 10) -> int:
        """Deliver what ``notifications`` holds to notify's entry point until it is empty."""
        handled = 0
        for _ in range(rounds):
            batch: list = []
            self.ports.bus.pull(TEST_SUB, batch.append)
            if not batch:
                return handled
            for message in batch:
                handled += 1
                try:
                    self.receive(push(message))
                except deliver.DeliveryPending:  # what makes the bus redeliver
                    self.ports.bus.publish("notifications", message.data,
                                           dict(message.attributes))
        return handled

    def deliveries(self, subscription: str, token=None) -> tuple[int, dict]:
        response = self.stack.call("GET", f"/api/v1/subscriptions/{subscription}/deliveries",
                                   token or self.admin)
        return response.status_code, json.loads(response.get_data())


@pytest.fixture
def setup(local_stack):
    return Setup(local_stack)


@pytest.fixture(params=["embedded", pytest.param("emulator", marks=pytest.mark.emulator)])
def backend_setup(request, tmp_path, monkeypatch, leak_guard):
    env: dict[str, str] = {}
    if request.param == "emulator":
        env = {**request.getfixturevalue("emulator_env"), "KEYWAY_BACKEND": "emulator",
               "KEYWAY_PROJECT": request.getfixturevalue("unique_project")}
    yield Setup(build_stack(tmp_path, monkeypatch, leak_guard, backend_env=env))
    _reset_caches()


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


def test_a_health_change_is_delivered_once_signed_and_on_keyway_events(setup, receiver):
    status, made = setup.subscribe(receiver.url)
    assert status == 201 and made["secret"].startswith("kwsec_")
    setup.health_change()
    setup.pump()
    [got] = receiver.received
    event = json.loads(got.body)
    assert event["type"] == "connection.health_changed" and event["tenant"] == TENANT
    assert event["data"]["to"] == "needs_reauth"
    assert event["data"]["reason"] == "vault.needs_reauth"
    assert got.headers["Keyway-Event-Id"] == event["id"]
    assert got.headers["Keyway-Signature"].startswith(f"t={got.headers['Keyway-Timestamp']},")
    assert docs_verify()(made["secret"], got.headers["Keyway-Signature"], got.body)
    status, listed = setup.deliveries(made["id"])
    [delivery] = listed["items"]
    assert status == 200 and delivery["state"] == "delivered"
    assert [a["status"] for a in delivery["attempts"]] == [200]
    outlet: list = []
    setup.ports.bus.pull(OUTLET_SUB, outlet.append)
    assert [json.loads(m.data)["event"]["id"] for m in outlet] == [event["id"]]
    assert outlet[0].attributes["sender"] == "notify"


def test_a_tampered_or_stale_delivery_fails_the_documented_verification(setup, receiver):
    _, made = setup.subscribe(receiver.url)
    setup.health_change()
    setup.pump()
    [got] = receiver.received
    verify, header = docs_verify(), got.headers["Keyway-Signature"]
    assert verify(made["secret"], header, got.body)
    assert not verify(made["secret"], header, got.body.replace(b"needs_reauth", b"active"))
    assert not verify(made["secret"], header, got.body + b" ")
    assert not verify("kwsec_" + "x" * 43, header, got.body)
    stale = int(got.headers["Keyway-Timestamp"]) - 600
    body = got.body
    old = hmac.new(made["secret"].encode(), f"{stale}.".encode() + body, hashlib.sha256)
    assert not verify(made["secret"], f"t={stale},v1={old.hexdigest()}", body)
    assert not verify(made["secret"], "v1=deadbeef", body)


def test_a_receiver_failing_twice_gets_three_attempts_and_one_delivery(backend_setup, receiver):
    setup = backend_setup
    receiver.statuses = [500, 503, 200]
    _, made = setup.subscribe(receiver.url)
    setup.health_change()
    setup.pump()
    assert len(receiver.received) == 3
    assert len({r.headers["Keyway-Event-Id"] for r in receiver.received}) == 1
    assert [r.headers["Keyway-Delivery-Attempt"] for r in receiver.received] == ["1", "2", "3"]
    [delivery] = setup.deliveries(made["id"])[1]["items"]
    assert delivery["state"] == "delivered"
    assert [(a["status"], a["error"]) for a in delivery["attempts"]] == [
        (500, "notify.http_500"), (503, "notify.http_503"), (200, None)]


def test_a_redelivered_message_or_repeated_fact_is_not_delivered_twice(setup, receiver):
    setup.subscribe(receiver.url)
    setup.health_change()
    published: list = []
    setup.ports.bus.pull(TEST_SUB, published.append)
    for message in published * 3:  # the same message three times, as after lost acks
        setup.ports.bus.publish("notifications", message.data, dict(message.attributes))
    setup.pump()
    notify_events.sweep(setup.ports)  # nothing pending: the outbox holds it as published
    setup.health_change()  # the same state again: no new change, no new event
    setup.pump()
    assert len(receiver.received) == 1


def test_a_redirecting_receiver_forwards_nothing(setup, receiver):
    target = Receiver().start()
    try:
        receiver.statuses, receiver.redirect_to = [302], target.url
        _, made = setup.subscribe(receiver.url)
        setup.health_change()
        setup.pump()
        assert target.received == [] and len(receiver.received) == 1
        [delivery] = setup.deliveries(made["id"])[1]["items"]
        assert delivery["state"] == "failed" and delivery["reason"] == "notify.redirect_refused"
    finally:
        target.stop()


def test_after_the_last_attempt_the_delivery_reads_failed(setup, receiver):
    receiver.statuses = [500]
    _, made = setup.subscribe(receiver.url)
    setup.health_change()
    setup.pump()
    assert len(receiver.received) == deliver.MAX_ATTEMPTS
    [delivery] = setup.deliveries(made["id"])[1]["items"]
    assert delivery["state"] == "failed" and delivery["reason"] == "notify.http_500"
    assert len(delivery["attempts"]) == deliver.MAX_ATTEMPTS
    assert setup.pump() == 0  # acknowledged: nothing left to redeliver


def test_only_subscribed_types_and_own_tenant_are_sent(setup, receiver):
    _, made = setup.subscribe(receiver.url, events=["sync.failed"])
    other = setup.stack.token(OTHER, "admin-9", "admin")
    setup.subscribe(receiver.url, token=other)
    setup.health_change()
    setup.pump()
    assert receiver.received == []


@pytest.mark.parametrize(("body", "key"), [
    ({"url": "http://169.254.169.254/latest", "events": ["sync.failed"]}, "ssrf.refused"),
    ({"url": "https://10.1.2.3/hook", "events": ["sync.failed"]}, "ssrf.refused"),
    ({"url": "https://u:p@127.0.0.1/hook", "events": ["sync.failed"]}, "ssrf.refused"),
    ({"url": "http://127.0.0.1:9/hook?x=1", "events": ["sync.failed"]}, "ssrf.refused"),
    ({"url": "http://127.0.0.1:9/hook", "events": ["sync.exploded"]},
     "subscription.unknown_event"),
    ({"url": "http://127.0.0.1:9/hook", "events": []}, "subscription.invalid_events"),
    ({"url": 7, "events": ["sync.failed"]}, "subscription.invalid_url"),
    ({"url": "http://127.0.0.1:9/hook", "events": ["sync.failed"], "secret": "mine"},
     "input.unknown_field"),
])
def test_bad_subscriptions_are_400_and_store_nothing(setup, body, key):
    response = setup.stack.call("POST", "/api/v1/subscriptions", setup.admin, json=body)
    problem = json.loads(response.get_data())
    assert response.status_code == 400 and problem["code"] == key
    assert response.mimetype == "application/problem+json"
    listed = setup.stack.call("GET", "/api/v1/subscriptions", setup.admin)
    assert json.loads(listed.get_data()) == {"items": []}


def test_another_tenants_subscription_is_a_404_like_a_missing_one(setup, receiver):
    _, made = setup.subscribe(receiver.url)
    other = setup.stack.token(OTHER, "admin-9", "admin")
    for path, method in ((f"/api/v1/subscriptions/{made['id']}/deliveries", "GET"),
                         (f"/api/v1/subscriptions/{made['id']}", "DELETE"),
                         ("/api/v1/subscriptions/sub_missing", "DELETE")):
        response = setup.stack.call(method, path, other)
        assert response.status_code == 404, path
    listed = json.loads(setup.stack.call("GET", "/api/v1/subscriptions", other).get_data())
    assert listed == {"items": []}
    mine = json.loads(setup.stack.call("GET", "/api/v1/subscriptions", setup.admin).get_data())
    assert [s["id"] for s in mine["items"]] == [made["id"]] and "secret" not in mine["items"][0]


def test_a_member_may_not_subscribe_and_a_deleted_subscription_gets_nothing(setup, receiver):
    member = setup.stack.token(TENANT, "bob", "member")
    status, problem = setup.subscribe(receiver.url, token=member)
    assert status == 403 and problem["code"] == "auth.admin_required"
    _, made = setup.subscribe(receiver.url)
    response = setup.stack.call("DELETE", f"/api/v1/subscriptions/{made['id']}", setup.admin)
    assert response.status_code == 200
    setup.health_change()
    setup.pump()
    assert receiver.received == []
    with pytest.raises(Exception, match="notify-secret"):
        setup.ports.secrets.access(f"notify-secret-{made['id']}")


def test_a_private_address_outside_local_mode_is_refused_at_registration(setup):
    for url in ("https://10.0.0.7/hook", "https://127.0.0.1/hook", "http://example.com/hook",
                "https://[::1]/hook", "https://metadata.google.internal/x"):
        with pytest.raises(InvalidInput) as refused:
            subscriptions.create(setup.ports, TENANT, "admin-1",
                                 {"url": url, "events": ["sync.failed"]}, local_mode=False)
        assert refused.value.key == "ssrf.refused", url
    assert setup.ports.business.query(subscriptions.COLLECTION) == []


def test_no_secret_reaches_a_log_or_an_answer(setup, receiver, caplog):
    receiver.statuses = [500, 200]
    _, made = setup.subscribe(receiver.url)  # tracked: any log line or checked answer fails
    setup.health_change()
    setup.pump()
    setup.deliveries(made["id"])
    setup.stack.call("GET", "/api/v1/subscriptions", setup.admin)
    assert made["secret"] not in caplog.text
    assert any(r.getMessage() == "notify.delivery_delivered" for r in caplog.records)


def test_notifications_topic_is_published_by_the_recorders_and_read_by_notify():
    route = policy.ROUTES["notifications"]
    assert route.subscriber == "notify" and "vault-github" in route.publishers
    assert "webhook-github" not in route.publishers and "ingest" not in route.publishers
    policy.check_publish("notify", "keyway-events", "notification.event")
    with pytest.raises(PolicyViolation):
        policy.check_publish("api", "keyway-events", "notification.event")
    with pytest.raises(PolicyViolation):  # nobody in keyway consumes the outlet
        policy.check_delivery("notify", "keyway-events", "notify", "notification.event")


def test_a_disconnect_through_the_api_notifies_in_the_apis_name(setup, receiver):
    _, made = setup.subscribe(receiver.url)
    response = setup.stack.call("DELETE", f"/api/v1/connections/{CONNECTION}", setup.admin)
    assert response.status_code == 202
    batch: list = []
    setup.ports.bus.pull(TEST_SUB, batch.append)
    assert [m.attributes["sender"] for m in batch] == ["api"]
    setup.receive(push(batch[0]))
    [got] = receiver.received
    assert json.loads(got.body)["data"]["to"] == "disconnected"
    assert docs_verify()(made["secret"], got.headers["Keyway-Signature"], got.body)


def test_a_delivery_another_instance_holds_is_asked_again_not_dropped(setup, receiver):
    _, made = setup.subscribe(receiver.url)
    setup.health_change()
    batch: list = []
    setup.ports.bus.pull(TEST_SUB, batch.append)
    event = json.loads(batch[0].data)["event"]
    key = f"{event['id']}:{made['id']}"
    assert deliver._claim(setup.ports, key, event, made["id"]) not in ("busy", "settled")
    with pytest.raises(deliver.DeliveryPending):  # leased elsewhere: redelivered, not acked
        setup.receive(push(batch[0]))
    assert receiver.received == []
    deliver._release(setup.ports, key)  # the holder gave up without sending
    setup.receive(push(batch[0]))
    assert len(receiver.received) == 1


def test_a_secret_store_outage_sends_nothing_and_keeps_the_delivery_pending(
        setup, receiver, monkeypatch):
    _, made = setup.subscribe(receiver.url)
    setup.health_change()
    batch: list = []
    setup.ports.bus.pull(TEST_SUB, batch.append)

    def down(name, version="latest"):
        raise UnavailableError("secrets down")

    monkeypatch.setattr(setup.ports.secrets, "access", down)
    with pytest.raises(UnavailableError):
        setup.receive(push(batch[0]))
    monkeypatch.undo()
    assert receiver.received == []
    [delivery] = setup.deliveries(made["id"])[1]["items"]
    assert delivery["state"] == "pending" and delivery["attempts"] == []
    setup.receive(push(batch[0]))  # the redelivery sends at once: the lease was released
    assert len(receiver.received) == 1


def test_an_address_refused_at_delivery_gets_nothing_though_it_passed_registration(
        setup, receiver, monkeypatch):
    port = receiver.url.split(":")[2].split("/")[0]
    answers = {"hooks.example.test": ["127.0.0.1"]}
    monkeypatch.setattr("shared.providers.ssrf.default_resolver",
                        lambda host, _port: answers[host])
    _, made = setup.subscribe(f"http://hooks.example.test:{port}/hooks/keyway")
    answers["hooks.example.test"] = ["10.0.0.1"]  # the name now points inside the network
    setup.health_change()
    setup.pump()
    assert receiver.received == []
    [delivery] = setup.deliveries(made["id"])[1]["items"]
    assert delivery["state"] == "failed" and delivery["reason"] == "ssrf.refused"


def test_deliveries_are_listed_newest_first_per_subscription(setup, receiver):
    _, mine = setup.subscribe(receiver.url, events=["connection.health_changed"])
    _, other = setup.subscribe(receiver.url, events=["sync.failed"])
    setup.health_change("needs_reauth")
    setup.pump()
    setup.ports.business.put("connections", CONNECTION, {
        "tenant": TENANT, "provider": "github", "kind": "app", "status": "active"})
    setup.health_change("disconnected")
    setup.pump()
    items = setup.deliveries(mine["id"])[1]["items"]
    assert len(items) == 2 and items[0]["created_at"] >= items[1]["created_at"]
    assert setup.deliveries(other["id"])[1]["items"] == []
