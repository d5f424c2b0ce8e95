"""The MessageBus contract: every adapter must pass every test here.

``embedded`` is :class:`SqliteMessageBus` on a temporary file with a fake clock (each idle poll
advances it one second, so backoff and lease expiry cost no real time); ``emulator`` is
:class:`PubSubMessageBus` on the official Pub/Sub emulator with fresh names per test, polled in
real time with a deadline (the emulator applies its own backoff). What only the embedded
adapter implements itself is tested in ``tests/unit/test_sqlite_bus.py``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared import bus_ops
from shared.adapters.embedded.sqlite_bus import SqliteMessageBus
from shared.adapters.gcp.pubsub_bus import PubSubMessageBus
from shared.errors import InvalidInput, NotFound, RetryableError
from shared.ports import Message, MessageBus, SubscriptionSpec
from tests.support import POLL_TIMEOUT_S, BusHarness, Crash, FakeClock, always_retry, recorder


@pytest.fixture(params=["embedded", pytest.param("emulator", marks=pytest.mark.emulator)])
def h(request: pytest.FixtureRequest, tmp_path: Path, unique: str) -> Iterator[BusHarness]:
    if request.param == "embedded":
        clock = FakeClock()
        yield BusHarness(SqliteMessageBus(tmp_path / "bus" / "bus.db", clock), unique,
                         lambda: clock.advance(1.0))
        return
    request.getfixturevalue("emulator_env")
    bus = PubSubMessageBus(f"kw-test-{unique}")
    yield BusHarness(bus, unique, lambda: time.sleep(0.1))
    bus.close()


def dead_lettered(h: BusHarness, spec: SubscriptionSpec) -> list[Message]:
    """Poll with an always-failing handler until ``spec``'s dead-letter hold has a message."""
    seen, handler = recorder(always_retry)
    letters: list[Message] = []

    def arrived() -> bool:
        letters[:] = bus_ops.list_dead_letters(h.bus, spec)
        return bool(letters)

    h.poll(spec.name, handler, arrived)
    assert [m.delivery_attempt for m in seen] == [1, 2, 3, 4, 5]
    return letters


# ---- delivery -----------------------------------------------------------------------------
def test_implements_the_port(h: BusHarness) -> None:
    assert isinstance(h.bus, MessageBus)


def test_publish_then_pull_delivers_data_attributes_and_ordering_key(h: BusHarness) -> None:
    spec = h.spec()
    attrs = {"type": "repo.synced", "trace": "t-1"}
    message_id = h.bus.publish(spec.topic, b"\x00payload\xff", attrs, ordering_key="acct-1")
    seen, handler = recorder()
    h.poll(spec.name, handler, lambda: bool(seen))
    [message] = seen
    assert (message.data, dict(message.attributes)) == (b"\x00payload\xff", attrs)
    assert (message.ordering_key, message.message_id) == ("acct-1", message_id)
    assert (message.topic, message.delivery_attempt) == (spec.topic, 1)
    assert message.publish_time.tzinfo is not None


def test_returned_message_is_final_but_a_crashed_one_comes_back(h: BusHarness) -> None:
    """Ack is final; a handler that never finished (lease/ack deadline ran out) is redelivered."""
    spec = h.spec()
    h.bus.publish(spec.topic, b"ok")
    h.bus.publish(spec.topic, b"crash")
    crashed: list[bool] = []

    def crash_once(message: Message) -> None:
        if message.data == b"crash" and not crashed:
            crashed.append(True)
            raise Crash()

    seen, handler = recorder(crash_once)
    deadline = time.monotonic() + POLL_TIMEOUT_S
    while not crashed or b"ok" not in [m.data for m in seen]:
        assert time.monotonic() < deadline
        try:
            h.bus.pull(spec.name, handler)
        except Crash:
            pass
    h.poll(spec.name, handler, lambda: [m.data for m in seen].count(b"crash") == 2)
    assert [m.data for m in seen].count(b"ok") == 1  # not redelivered across the ack deadline
    assert seen[-1].delivery_attempt >= 2


def test_retryable_failure_is_redelivered_with_increasing_attempt(h: BusHarness) -> None:
    spec = h.spec()
    h.bus.publish(spec.topic, b"flaky", {"k": "v"})

    def fail_twice(message: Message) -> None:
        if message.delivery_attempt < 3:
            raise RetryableError("try again")

    seen, handler = recorder(fail_twice)
    h.poll(spec.name, handler, lambda: len(seen) == 3)
    assert [m.delivery_attempt for m in seen] == [1, 2, 3]
    assert {(m.data, m.message_id) for m in seen} == {(b"flaky", seen[0].message_id)}
    h.quiet(spec.name, handler, polls=5)
    assert len(seen) == 3
    assert bus_ops.list_dead_letters(h.bus, spec) == []


def test_always_failing_message_is_dead_lettered_intact(h: BusHarness) -> None:
    spec = h.spec()
    attrs = {"type": "poison", "n": "1"}
    h.bus.publish(spec.topic, b"poison", attrs)
    [letter] = dead_lettered(h, spec)
    assert letter.data == b"poison"
    assert bus_ops.original_attributes(letter.attributes) == attrs
    assert bus_ops.dead_letter_source(letter) == (spec.name, 5)
    assert letter.topic == spec.dead_letter_topic
    seen, handler = recorder()
    h.quiet(spec.name, handler)
    assert seen == []  # gone from the main subscription
    assert len(bus_ops.list_dead_letters(h.bus, spec)) == 1  # peeking left it in place


def test_permanent_error_acks_without_dead_lettering(
    h: BusHarness, caplog: pytest.LogCaptureFixture
) -> None:
    spec = h.spec()
    message_id = h.bus.publish(spec.topic, b"secret-payload")

    def reject(message: Message) -> None:
        raise InvalidInput("malformed")

    seen, handler = recorder(reject)
    h.poll(spec.name, handler, lambda: bool(seen))
    h.quiet(spec.name, handler, polls=5)
    assert len(seen) == 1
    assert bus_ops.list_dead_letters(h.bus, spec) == []
    [record] = [r for r in caplog.records if r.getMessage() == "bus.permanent_failure"]
    fields: dict[str, Any] = record.fields  # type: ignore[attr-defined]
    assert (fields["message_id"], fields["topic"]) == (message_id, spec.topic)
    assert fields["error_key"] == "input.invalid"
    assert "secret-payload" not in repr(fields)


def test_fifty_messages_are_each_delivered_and_none_lost(h: BusHarness) -> None:
    spec = h.spec()
    sent = {f"m{i}".encode() for i in range(50)}
    for data in sorted(sent):
        h.bus.publish(spec.topic, data)

    def fail_some_first_time(message: Message) -> None:
        if message.delivery_attempt == 1 and int(message.data[1:]) % 7 == 0:
            raise RetryableError("transient")

    seen, handler = recorder(fail_some_first_time)
    acked = lambda: {m.data for m in seen if m.delivery_attempt > 1 or int(m.data[1:]) % 7}  # noqa: E731
    h.poll(spec.name, handler, lambda: acked() == sent)
    delivered = len(seen)
    assert delivered >= 50 + 8  # the 8 multiples of 7 in 0..49 are seen at least twice
    h.quiet(spec.name, handler, polls=5)
    assert len(seen) == delivered  # everything was acked
    assert bus_ops.list_dead_letters(h.bus, spec) == []


def test_replay_puts_a_dead_letter_back_on_its_topic(h: BusHarness) -> None:
    spec = h.spec()
    attrs = {"type": "retry-me"}
    h.bus.publish(spec.topic, b"again", attrs, ordering_key="acct-9")
    dead_lettered(h, spec)
    assert bus_ops.replay_dead_letters(h.bus, spec) == 1
    seen, handler = recorder()
    h.poll(spec.name, handler, lambda: bool(seen))
    [message] = seen
    assert (message.data, dict(message.attributes)) == (b"again", attrs)
    assert (message.delivery_attempt, message.ordering_key) == (1, "acct-9")
    h.quiet(spec.name, handler, polls=5)
    assert bus_ops.list_dead_letters(h.bus, spec) == []


def test_ordering_key_order_is_preserved(h: BusHarness) -> None:
    spec = h.spec()
    for i in range(10):
        h.bus.publish(spec.topic, f"{i}".encode(), ordering_key="acct-1")
    seen, handler = recorder()
    h.poll(spec.name, handler, lambda: len(seen) == 10)
    assert [int(m.data) for m in seen] == list(range(10))


def test_peek_leaves_messages_deliverable(h: BusHarness) -> None:
    spec = h.spec()
    h.bus.publish(spec.topic, b"look")
    peeked: list[Message] = []
    deadline = time.monotonic() + POLL_TIMEOUT_S
    while not peeked:
        assert time.monotonic() < deadline
        peeked = h.bus.peek(spec.name)
    seen, handler = recorder()
    h.poll(spec.name, handler, lambda: bool(seen))
    assert [m.data for m in peeked] == [m.data for m in seen] == [b"look"]


# ---- errors -------------------------------------------------------------------------------
def test_missing_topic_and_subscription_are_not_found(h: BusHarness) -> None:
    spec = h.spec()
    with pytest.raises(InvalidInput):
        h.bus.publish(spec.topic, b"")  # Pub/Sub refuses a message with no data and no attributes
    with pytest.raises(NotFound):
        h.bus.publish(f"nothing-{h.suffix}", b"x")
    with pytest.raises(NotFound):
        h.bus.pull(f"nobody-{h.suffix}", lambda m: None)


@pytest.mark.parametrize("overrides", [
    {"max_attempts": 4}, {"max_attempts": 101}, {"ack_deadline": 5},
    {"min_backoff": 2.0, "max_backoff": 1.0}, {"name": "1-starts-with-a-digit"},
])
def test_specs_pub_sub_would_reject_are_rejected_everywhere(
    h: BusHarness, overrides: dict[str, Any]
) -> None:
    with pytest.raises(InvalidInput):
        h.spec(**overrides)


def test_ensure_is_idempotent(h: BusHarness) -> None:
    spec = h.spec()
    h.bus.ensure_subscription(spec)
    h.bus.ensure_topic(spec.topic)
    h.bus.publish(spec.topic, b"once")
    seen, handler = recorder()
    h.poll(spec.name, handler, lambda: bool(seen))
    assert len(seen) == 1
