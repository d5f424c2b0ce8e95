"""The MessageBus contract: every adapter must pass every test here.

``embedded`` is :class:`SqliteMessageBus` on a temporary file with a fake clock (each idle poll
advances it one second, so backoff and lease expiry cost no real time); ``emulator`` is
:class:`PubSubMessageBus` on the official Pub/Sub emulator with fresh names per test, polled in
real time with a deadline (the emulator applies its own backoff). Tests named
``test_embedded_*`` cover what only the embedded adapter implements itself.
"""

from __future__ import annotations

import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared import bus_ops
from shared.adapters.embedded.sqlite_bus import SqliteMessageBus
from shared.adapters.gcp.pubsub_bus import PubSubMessageBus
from shared.errors import InvalidInput, NotFound, RetryableError
from shared.ports import Message, MessageBus, SubscriptionSpec

POLL_TIMEOUT_S = 30.0
# pytest re-enables DeprecationWarning per test, undoing the adapter's own narrow filter.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The return_immediately flag is deprecated:DeprecationWarning")


class FakeClock:
    """A :class:`Clock` that only moves when told to."""

    def __init__(self) -> None:
        self._now = datetime(2030, 1, 1, tzinfo=UTC)
        self._mono = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds


class Crash(BaseException):
    """Stands in for the process dying mid-handler: no adapter may catch it."""


@dataclass
class Harness:
    bus: Any
    suffix: str
    idle: Callable[[], None]  # let time pass between polls

    def spec(self, tag: str = "s", **overrides: Any) -> SubscriptionSpec:
        spec = SubscriptionSpec(
            name=f"sub-{tag}-{self.suffix}", topic=f"top-{tag}-{self.suffix}",
            dead_letter_topic=f"dlt-{tag}-{self.suffix}", max_attempts=5,
            min_backoff=0.0, max_backoff=1.0, ack_deadline=10)
        spec = replace(spec, **overrides)
        self.bus.ensure_subscription(spec)
        return spec

    def poll(self, subscription: str, handler: Callable[[Message], None],
             until: Callable[[], bool], timeout: float = POLL_TIMEOUT_S) -> None:
        """Pull until ``until()`` holds (checked before each pull), or fail at the deadline."""
        deadline = time.monotonic() + timeout
        while not until():
            assert time.monotonic() < deadline, "condition not reached before the deadline"
            if self.bus.pull(subscription, handler) == 0:
                self.idle()

    def quiet(self, subscription: str, handler: Callable[[Message], None],
              polls: int = 15) -> None:
        """Pull ``polls`` times, letting time pass in between (to show nothing else arrives)."""
        for _ in range(polls):
            self.bus.pull(subscription, handler)
            self.idle()


@pytest.fixture(params=["embedded", pytest.param("emulator", marks=pytest.mark.emulator)])
def h(request: pytest.FixtureRequest, tmp_path: Path, unique: str) -> Iterator[Harness]:
    if request.param == "embedded":
        clock = FakeClock()
        yield Harness(SqliteMessageBus(tmp_path / "bus" / "bus.db", clock), unique,
                      lambda: clock.advance(1.0))
        return
    request.getfixturevalue("emulator_env")
    bus = PubSubMessageBus(f"kw-test-{unique}")
    yield Harness(bus, unique, lambda: time.sleep(0.1))
    bus.close()


def recorder(fail: Callable[[Message], None] = lambda m: None) -> tuple[list[Message], Any]:
    """A handler that records every delivery, then calls ``fail`` (which may raise)."""
    seen: list[Message] = []

    def handler(message: Message) -> None:
        seen.append(message)
        fail(message)

    return seen, handler


def always_retry(message: Message) -> None:
    raise RetryableError("downstream unavailable")


def dead_lettered(h: Harness, spec: SubscriptionSpec) -> list[Message]:
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
def test_implements_the_port(h: Harness) -> None:
    assert isinstance(h.bus, MessageBus)


def test_publish_then_pull_delivers_data_attributes_and_ordering_key(h: Harness) -> None:
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


def test_returned_message_is_final_but_a_crashed_one_comes_back(h: Harness) -> None:
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


def test_retryable_failure_is_redelivered_with_increasing_attempt(h: Harness) -> None:
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


def test_always_failing_message_is_dead_lettered_intact(h: Harness) -> None:
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
    h: Harness, caplog: pytest.LogCaptureFixture
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


def test_fifty_messages_are_each_delivered_and_none_lost(h: Harness) -> None:
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


def test_replay_puts_a_dead_letter_back_on_its_topic(h: Harness) -> None:
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


def test_ordering_key_order_is_preserved(h: Harness) -> None:
    spec = h.spec()
    for i in range(10):
        h.bus.publish(spec.topic, f"{i}".encode(), ordering_key="acct-1")
    seen, handler = recorder()
    h.poll(spec.name, handler, lambda: len(seen) == 10)
    assert [int(m.data) for m in seen] == list(range(10))


def test_peek_leaves_messages_deliverable(h: Harness) -> None:
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
def test_missing_topic_and_subscription_are_not_found(h: Harness) -> None:
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
    h: Harness, overrides: dict[str, Any]
) -> None:
    with pytest.raises(InvalidInput):
        h.spec(**overrides)


def test_ensure_is_idempotent(h: Harness) -> None:
    spec = h.spec()
    h.bus.ensure_subscription(spec)
    h.bus.ensure_topic(spec.topic)
    h.bus.publish(spec.topic, b"once")
    seen, handler = recorder()
    h.poll(spec.name, handler, lambda: bool(seen))
    assert len(seen) == 1


# ---- embedded only: what the SQLite adapter implements itself -----------------------------
@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def local(tmp_path: Path, unique: str, clock: FakeClock) -> Harness:
    return Harness(SqliteMessageBus(tmp_path / "state" / "bus.db", clock), unique,
                   lambda: clock.advance(1.0))


def test_embedded_backoff_is_exponential_and_capped(local: Harness, clock: FakeClock) -> None:
    spec = local.spec(min_backoff=10.0, max_backoff=40.0, max_attempts=6)
    local.bus.publish(spec.topic, b"slow")
    seen, handler = recorder(always_retry)
    assert local.bus.pull(spec.name, handler) == 1
    waits = []
    for _ in range(5):
        waited = 0
        while local.bus.pull(spec.name, handler) == 0:
            assert local.bus.peek(spec.name) == []  # nothing is available while backing off
            clock.advance(1.0)
            waited += 1
        waits.append(waited)
    assert waits == [10, 20, 40, 40, 40]
    assert [m.delivery_attempt for m in seen] == [1, 2, 3, 4, 5, 6]
    [letter] = bus_ops.list_dead_letters(local.bus, spec)
    assert bus_ops.dead_letter_source(letter) == (spec.name, 6)


def test_embedded_ordering_holds_later_messages_while_one_retries(local: Harness) -> None:
    spec = local.spec()
    for i in range(5):
        local.bus.publish(spec.topic, f"{i}".encode(), ordering_key="acct-1")
    local.bus.publish(spec.topic, b"other", ordering_key="acct-2")

    def fail_two_once(message: Message) -> None:
        if message.data == b"2" and message.delivery_attempt == 1:
            raise RetryableError("not yet")

    seen, handler = recorder(fail_two_once)
    local.poll(spec.name, handler, lambda: len(seen) == 7)
    keyed = [m.data for m in seen if m.ordering_key == "acct-1"]
    assert keyed == [b"0", b"1", b"2", b"2", b"3", b"4"]
    assert b"other" in [m.data for m in seen[:3]]  # another key is not held back


def test_embedded_crash_at_last_attempt_dead_letters_after_the_lease(local: Harness) -> None:
    spec = local.spec()
    local.bus.publish(spec.topic, b"kills-its-puller", {"a": "b"})

    def crash_on_last(message: Message) -> None:
        if message.delivery_attempt == spec.max_attempts:
            raise Crash()
        raise RetryableError("again")

    seen, handler = recorder(crash_on_last)
    with pytest.raises(Crash):
        local.poll(spec.name, handler, lambda: False)
    local.quiet(spec.name, handler, polls=spec.ack_deadline + 1)
    assert len(seen) == spec.max_attempts
    [letter] = bus_ops.list_dead_letters(local.bus, spec)
    assert bus_ops.dead_letter_source(letter) == (spec.name, spec.max_attempts)


def test_embedded_late_ack_after_lease_expiry_changes_nothing(
    local: Harness, clock: FakeClock
) -> None:
    spec = local.spec()
    local.bus.publish(spec.topic, b"slow-handler")
    seen, fail = recorder(always_retry)

    def slow(message: Message) -> None:
        seen.append(message)
        if len(seen) == 1:  # while this handler runs its lease expires; a second puller fails it
            clock.advance(spec.ack_deadline + 1)
            assert local.bus.pull(spec.name, fail) == 1
        # returning now is a late ack: it must not delete the re-claimed, failed message

    local.bus.pull(spec.name, slow)
    local.poll(spec.name, slow, lambda: len(seen) == 3)
    assert [m.delivery_attempt for m in seen] == [1, 2, 3]


def test_embedded_store_is_durable_private_and_wal(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "new" / "dir" / "bus.db"
    bus = SqliteMessageBus(path, clock)
    spec = SubscriptionSpec("sub-durable", "top-durable", "dlt-durable")
    bus.ensure_subscription(spec)
    bus.publish(spec.topic, b"kept")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()
    seen, handler = recorder()
    assert SqliteMessageBus(path, clock).pull(spec.name, handler) == 1
    assert seen[0].data == b"kept"


def test_embedded_concurrent_pullers_share_the_work(local: Harness) -> None:
    spec = local.spec()
    for i in range(200):
        local.bus.publish(spec.topic, f"{i}".encode())
    seen, handler = recorder()
    lock = threading.Lock()

    def locked(message: Message) -> None:
        with lock:
            handler(message)

    def worker() -> None:
        while local.bus.pull(spec.name, locked, max_messages=5):
            pass

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(int(m.data) for m in seen) == list(range(200))  # each exactly once
