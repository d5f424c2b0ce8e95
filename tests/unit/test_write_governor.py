"""The write governor follows Firestore's 500/50/5 rule on a fake clock: at most 500 writes
a second to a collection at first, +50 % every 5 minutes of traffic, back to 500 after
5 idle minutes; only on the gcp backend."""

from __future__ import annotations

import pytest

from shared.adapters.embedded.sqlite_store import SqliteDocumentStore
from shared.adapters.governor import GovernedStore, WriteGovernor, governed
from shared.config import Config
from shared.errors import InvalidInput
from shared.ports import ConditionalWrite
from tests.support import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def send(governor: WriteGovernor, clock: FakeClock, collection: str, total: int,
         batch: int = 500) -> float:
    """Seconds (fake) it takes to send ``total`` writes in batches."""
    start = clock.monotonic()
    for _ in range(total // batch):
        governor.admit(collection, batch)
    return clock.monotonic() - start


def test_a_new_collection_gets_at_most_500_writes_a_second(clock) -> None:
    governor = WriteGovernor(clock)
    seconds = send(governor, clock, "comments", 30_000)
    assert seconds == pytest.approx(59.0)  # the first batch goes at once, 59 more wait 1 s each
    assert 30_000 / (seconds + 1) <= 500


def test_the_rate_grows_by_half_every_five_minutes_of_traffic(clock) -> None:
    governor = WriteGovernor(clock)
    rates = []
    for _ in range(4):
        rates.append(governor.rate("issues"))
        elapsed = 0.0
        while elapsed < 300:  # five minutes of sustained writes at the allowed rate
            before = clock.monotonic()
            governor.admit("issues", 100)
            clock.advance(0.001)
            elapsed += clock.monotonic() - before
    assert rates == [500, 750, 1125, 1687.5]


def test_five_idle_minutes_start_the_ramp_over(clock) -> None:
    governor = WriteGovernor(clock)
    for _ in range(6):  # a write a minute: traffic, not idle
        governor.admit("issues", 500)
        clock.advance(60)
    assert governor.rate("issues") == 750
    clock.advance(300)  # idle for five minutes
    assert governor.rate("issues") == 500


def test_collections_ramp_apart(clock) -> None:
    governor = WriteGovernor(clock)
    send(governor, clock, "comments", 5000)
    assert send(governor, clock, "labels", 500) == 0.0  # not behind the comments


def test_a_governed_store_paces_batches_and_writes_them(tmp_path, clock) -> None:
    store = GovernedStore(SqliteDocumentStore(tmp_path / "s.db"), WriteGovernor(clock, 100))
    for n in range(3):
        batch = [ConditionalWrite("prs", f"{n}-{i}", {"i": i}, None) for i in range(100)]
        assert store.write_batch(batch) == []
    assert clock.monotonic() == pytest.approx(2.0)
    assert store.get("prs", "2-99") == {"i": 99}
    with pytest.raises(InvalidInput):  # too large: refused at once, not after a wait
        store.write_batch([ConditionalWrite("prs", f"x{i}", {}, None) for i in range(501)])
    assert clock.monotonic() == pytest.approx(2.0)


def test_only_the_gcp_backend_is_governed(tmp_path, clock) -> None:
    store = SqliteDocumentStore(tmp_path / "s.db")
    assert governed(store, "embedded", 500, clock) is store
    assert governed(store, "emulator", 500, clock) is store
    assert governed(store, "gcp", 0, clock) is store  # KEYWAY_WRITE_RAMP_START=0: off
    on = governed(store, "gcp", 500, clock)
    assert isinstance(on, GovernedStore) and on.governor.start == 500
    assert governed(store, "gcp", 500, clock).governor is on.governor  # one per process


def test_the_ramp_start_is_configured_and_checked() -> None:
    assert Config.from_env({}).write_ramp_start == 500
    assert Config.from_env({"KEYWAY_WRITE_RAMP_START": "0"}).write_ramp_start == 0
    with pytest.raises(Exception, match="KEYWAY_WRITE_RAMP_START"):
        Config.from_env({"KEYWAY_WRITE_RAMP_START": "-1"})
