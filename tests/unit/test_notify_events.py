"""Each fact the product is told about becomes exactly one event, from where it is recorded;
an event whose publish fails is kept in the outbox and published by the scheduler's sweep."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from shared import messages
from shared.acting import acting_as
from shared.actions import ledger
from shared.actions.model import doc_id
from shared.bootstrap import build
from shared.config import Config
from shared.fetch import status
from shared.ids import identity_id as personal_id
from shared.notify import events
from shared.ports import SubscriptionSpec
from shared.vault import handlers as vault_handlers

TENANT, CONNECTION = "t-1", "c-1"


class StepClock:
    """The system clock moved on by hand."""

    def __init__(self, clock) -> None:
        self.base, self.offset = clock, timedelta()

    def now(self):
        return self.base.now() + self.offset

    def monotonic(self) -> float:
        return self.base.monotonic()

    def sleep(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@pytest.fixture
def ports(tmp_path):
    ports = build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path)}))
    ports.clock = StepClock(ports.clock)
    ports.bus.ensure_subscription(SubscriptionSpec(
        name="notifications-seen", topic="notifications",
        dead_letter_topic="notifications-dead-letter", min_backoff=0.0, max_backoff=0.0))
    ports.business.put("connections", CONNECTION, {"tenant": TENANT, "provider": "github",
                                                   "status": "active"})
    return ports


def published(ports) -> list[tuple[str, dict, str]]:
    got: list = []
    ports.bus.pull("notifications-seen", got.append, max_messages=100)
    out = []
    for m in got:
        inbound = messages.decode("notifications", m.data, m.attributes, m.message_id)
        out.append((inbound.body["event"]["type"], inbound.body["event"], inbound.sender))
    return out


def of_type(ports, type_: str) -> list[dict]:
    return [event for kind, event, _ in published(ports) if kind == type_]


def test_a_finished_sync_is_notified_with_its_counts_and_duration(ports):
    with acting_as("fetch-github"):
        owner = status.begin(ports, TENANT, CONNECTION)
        ports.clock.sleep(2.5)
        status.end(ports, CONNECTION, owner, "done", stats={"requests": 7, "written": 40})
    [event] = of_type(ports, "sync.completed")
    assert event["tenant"] == TENANT and event["data"]["counts"] == {"requests": 7,
                                                                     "written": 40}
    # The step clock moves on top of the real one, so the real time the test took is added.
    assert 2.5 <= event["data"]["duration_seconds"] < 3.5


def test_a_failed_sync_is_notified_with_its_reason_and_a_continuation_is_not(ports):
    with acting_as("fetch-github"):
        status.end(ports, CONNECTION, status.begin(ports, TENANT, CONNECTION), "continuing")
        assert of_type(ports, "sync.completed") == []
        status.end(ports, CONNECTION, status.begin(ports, TENANT, CONNECTION), "failed",
                   reason="provider.unavailable")
    [event] = of_type(ports, "sync.failed")
    assert event["data"]["reason"] == "provider.unavailable"
    assert event["data"]["consecutive_failures"] == 1


def test_an_action_is_notified_once_when_it_ends(ports):
    now = ports.clock.now()
    for action_id in ("a-1", "a-2"):
        ports.business.put("actions", doc_id(TENANT, action_id), {
            "tenant": TENANT, "status": "pending", "connection": CONNECTION, "user": "bob",
            "provider": "github", "kind": "comment"})
    with acting_as("act-github"):
        assert ledger.finish(ports, "a-1", TENANT, now, {"provider_comment_id": "99"})
        assert not ledger.finish(ports, "a-1", TENANT, now, {"provider_comment_id": "99"})
        assert ledger.fail(ports, "a-2", TENANT, now, "forbidden")
    kinds = {(kind, e["data"]["action"], sender) for kind, e, sender in published(ports)}
    assert kinds == {("action.completed", "a-1", "act-github"),
                     ("action.failed", "a-2", "act-github")}


def test_the_vault_refusing_an_action_and_an_identity_notifies_each_once(ports):
    identity = personal_id("github", TENANT, "bob")
    ports.business.put("identities", identity, {"tenant": TENANT, "provider": "github",
                                                "user": "bob", "status": "active"})
    ports.business.put("actions", doc_id(TENANT, "a-3"), {"tenant": TENANT, "status": "pending"})
    with acting_as("vault-github"):
        for _ in range(2):  # a redelivered request repeats its work: one event each
            vault_handlers._fail_action(ports, TENANT, "a-3", "needs_reauth")
            vault_handlers._set_identity_status(ports, "github", TENANT, "bob", "needs_reauth",
                                                "vault.needs_reauth")
    events_seen = sorted((kind, sender) for kind, _, sender in published(ports))
    assert events_seen == [("action.failed", "vault-github"),
                           ("identity.needs_reauth", "vault-github")]


def test_an_event_that_could_not_be_published_is_swept_by_the_scheduler(ports):
    ports.business.put("actions", doc_id(TENANT, "a-4"), {"tenant": TENANT, "status": "pending"})
    ledger.fail(ports, "a-4", TENANT, ports.clock.now(), "forbidden")  # no acting component
    assert published(ports) == []
    [pending] = ports.business.query(events.COLLECTION)
    assert pending.data["state"] == "pending"
    assert events.sweep(ports) == 0  # too fresh: its first publish may still be under way
    ports.clock.sleep(events.SWEEP_AFTER.total_seconds() + 1)
    assert events.sweep(ports) == 1
    [(kind, event, sender)] = published(ports)
    assert (kind, sender) == ("action.failed", "scheduler") and event["id"] == pending.id
    assert events.sweep(ports) == 0
    assert ports.business.get(events.COLLECTION, pending.id)["state"] == "published"


def test_an_unknown_type_is_not_recorded(ports):
    assert events.emit(ports, TENANT, "tokens.leaked", "k", {}) is None
    assert ports.business.query(events.COLLECTION) == []


def test_no_event_carries_a_secret_field(ports):
    with acting_as("fetch-github"):
        status.end(ports, CONNECTION, status.begin(ports, TENANT, CONNECTION), "done",
                   stats={"requests": 1})
    for _, event, _ in published(ports):
        text = json.dumps(event).lower()
        assert "token" not in text and "secret" not in text
