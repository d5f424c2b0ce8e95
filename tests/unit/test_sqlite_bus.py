"""What :class:`SqliteMessageBus` implements itself (Pub/Sub does it server-side): exponential
capped backoff, ordering-key holds, lease expiry, the durable private WAL file, concurrent
pullers. The behaviour both bus adapters share is in ``tests/contract/test_bus_contract.py``.
"""

from __future__ import annotations

import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from shared import bus_ops
from shared.adapters.embedded.sqlite_bus import SqliteMessageBus
from shared.errors import RetryableError
from shared.ports import Message, SubscriptionSpec
from tests.support import BusHarness, Crash, FakeClock, always_retry, recorder


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def local(tmp_path: Path, unique: str, clock: FakeClock) -> BusHarness:
    return BusHarness(SqliteMessageBus(tmp_path / "state" / "bus.db", clock), unique,
                      lambda: clock.advance(1.0))


def test_embedded_backoff_is_exponential_and_capped(local: BusHarness, clock: FakeClock) -> None:
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


def test_embedded_ordering_holds_later_messages_while_one_retries(local: BusHarness) -> None:
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


def test_embedded_crash_at_last_attempt_dead_letters_after_the_lease(local: BusHarness) -> None:
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


def test_embedded_restart_redelivers_what_a_dead_puller_held_at_once(local: BusHarness) -> None:
    """A runner that starts after a crash ends the dead process's leases: its message comes
    back without waiting for the ack deadline, attempt counted, and its key is not held."""
    spec = local.spec()
    local.bus.publish(spec.topic, b"in-flight", ordering_key="conn-1")
    local.bus.publish(spec.topic, b"next", ordering_key="conn-1")

    def crash(message: Message) -> None:
        raise Crash()

    with pytest.raises(Crash):
        local.bus.pull(spec.name, crash, max_messages=1)
    assert local.bus.pull(spec.name, recorder(always_retry)[1]) == 0  # leased, key held
    assert local.bus.expire_leases() == 1
    seen, handler = recorder(lambda m: None)
    assert local.bus.pull(spec.name, handler) == 1
    assert local.bus.pull(spec.name, handler) == 1
    assert [(m.data, m.delivery_attempt) for m in seen] == [(b"in-flight", 2), (b"next", 1)]
    assert local.bus.expire_leases() == 0


def test_embedded_late_ack_after_lease_expiry_changes_nothing(
    local: BusHarness, clock: FakeClock
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


def test_embedded_concurrent_pullers_share_the_work(local: BusHarness) -> None:
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
