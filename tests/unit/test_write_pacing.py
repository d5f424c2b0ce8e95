"""The write pacer grants slots within the provider's documented windows, sliding, per identity;
a provider's pause holds every slot until its time. The clock is injected, never slept on."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.actions.pacing import COLLECTION, WritePacer, pacing_key
from shared.adapters.embedded.sqlite_store import SqliteDocumentStore
from shared.providers import registry
from shared.providers.schema import WriteWindowSpec
from tests.support import FakeClock

GITHUB = registry.get("github").api.write_limits.windows


@pytest.fixture
def store(tmp_path):
    opened = SqliteDocumentStore(tmp_path / "business.db")
    yield opened
    opened.close()


def pacer(store, clock, user: str = "member-1", windows=GITHUB) -> WritePacer:
    return WritePacer(store, clock, pacing_key("github", "t-1", user), windows)


def test_eighty_slots_a_minute_then_the_next_frees_when_the_first_leaves(store):
    clock = FakeClock()
    first = clock.now()
    paced = pacer(store, clock)
    for _ in range(80):
        assert paced.take() is None
        clock.advance(0.5)
    assert paced.take() == first + timedelta(seconds=60)  # nothing granted
    clock.advance(60 - 40)  # the first grant leaves the minute
    assert paced.take() is None
    assert paced.take() == first + timedelta(seconds=60.5)


def test_the_hour_window_holds_even_when_every_minute_has_room(store):
    clock = FakeClock()
    paced = pacer(store, clock)
    start = clock.now()
    for n in range(500):
        if n and n % 50 == 0:
            clock.advance(61)
        assert paced.take() is None, n
    assert paced.take() == start + timedelta(hours=1)


def test_two_identities_do_not_share_slots(store):
    clock = FakeClock()
    mine, theirs = pacer(store, clock, "member-1"), pacer(store, clock, "member-2")
    for _ in range(80):
        assert mine.take() is None
    assert mine.take() is not None
    assert theirs.take() is None


def test_a_pause_holds_every_slot_until_its_time_and_never_shortens(store):
    clock = FakeClock()
    paced = pacer(store, clock)
    until = clock.now() + timedelta(seconds=90)
    paced.pause(until)
    paced.pause(clock.now() + timedelta(seconds=10))  # an earlier answer does not shorten it
    assert paced.take() == until
    assert paced.paused_until() == until
    clock.advance(90)
    assert paced.take() is None
    assert paced.paused_until() is None


def test_a_provider_without_published_limits_is_paced_only_by_its_answers(store):
    clock = FakeClock()
    paced = pacer(store, clock, windows=())
    assert all(paced.take() is None for _ in range(1000))
    assert store.get(COLLECTION, paced.key) is None  # nothing to count: nothing written
    paced.pause(clock.now() + timedelta(seconds=30))
    assert paced.take() == clock.now() + timedelta(seconds=30)


def test_a_shorter_custom_window_is_honoured(store):
    clock = FakeClock()
    paced = pacer(store, clock, windows=(WriteWindowSpec(2, 10),))
    assert paced.take() is None and paced.take() is None
    assert paced.take() == clock.now() + timedelta(seconds=10)


def test_the_pacing_key_is_made_of_names_only():
    assert pacing_key("github", "t:1", "a/b") == "github:t%3A1:a%2Fb"
