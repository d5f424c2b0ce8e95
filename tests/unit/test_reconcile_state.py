"""When a repository's full id sweep is due, and whether the rate budget can afford it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from shared.bootstrap import build
from shared.config import Config
from shared.fetch import reconcile, reconcile_state

WEEK = timedelta(days=7)
NOW = "2030-01-01T00:00:00.000000Z"


@pytest.fixture
def business(tmp_path: Path):
    return build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path)})).business


def test_jitter_is_stable_and_spreads_repositories() -> None:
    values = [reconcile_state.jitter(f"t:github:repo:{n}") for n in range(200)]
    assert values == [reconcile_state.jitter(f"t:github:repo:{n}") for n in range(200)]
    assert all(0 <= v < 1 for v in values)
    # spread over the period: every tenth of it holds some of the 200 first sweeps
    assert {int(v * 10) for v in values} == set(range(10))


def test_a_repository_first_seen_is_not_due_until_its_jittered_time(business) -> None:
    repo = "t:github:repo:1"
    assert reconcile_state.is_due(business, repo, NOW, WEEK, "conn-1") is False
    state = business.get(reconcile_state.COLLECTION, repo)
    assert NOW <= state["due_at"] < "2030-01-08T00:00:00.000000Z"
    assert state["connection"] == "conn-1"
    assert reconcile_state.is_due(business, repo, NOW, WEEK, "conn-1") is False
    assert reconcile_state.is_due(business, repo, state["due_at"], WEEK, "conn-1") is True
    reconcile_state.mark_due(business, "t:github:repo:2", NOW, "conn-1")
    assert reconcile_state.is_due(business, "t:github:repo:2", NOW, WEEK, "conn-1") is True


class Budget:
    def __init__(self, remaining: int | None, in_flight: int = 0, reserve: int = 100) -> None:
        self.view = {"remaining": remaining, "in_flight": in_flight, "reserve": reserve}

    def snapshot(self) -> dict:
        return self.view


def test_only_spare_capacity_pays_for_a_sweep() -> None:
    assert reconcile.spare(Budget(150)) == 50
    assert reconcile.spare(Budget(150, in_flight=4)) == 46
    assert reconcile.affordable(Budget(150), 25) is True
    assert reconcile.affordable(Budget(150), 26) is False  # half the spare is left alone
    assert reconcile.affordable(Budget(90), 1) is False  # inside the fetch reserve
    assert reconcile.affordable(Budget(None), 1000) is True  # never observed: nothing known
