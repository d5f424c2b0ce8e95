"""The scheduler: due connections get one sync request; stale, early, spent or failing ones
are handled without spending anything."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared import policy
from shared.bootstrap import build
from shared.clock import isoformat, parse_iso
from shared.config import Config
from shared.errors import InvalidInput
from shared.fetch.budget import TokenBudget, budget_key
from shared.messages import Inbound
from shared.scheduler.tick import on_tick
from shared.topology import subscription_specs


@pytest.fixture
def ports(tmp_path):
    ports = build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path)}))
    for spec in subscription_specs():
        ports.bus.ensure_subscription(spec)
    return ports


def tick(body: dict) -> Inbound:
    return Inbound("refresh-ticks", "refresh.tick", 1, "cloud-scheduler", body, "m-1")


def connection(ports, cid: str, due_in: float, **extra) -> None:
    due = datetime.now(UTC) + timedelta(seconds=due_in)
    ports.business.put("connections", cid, {"tenant": "t-1", "provider": "github",
                                            "status": "active", "next_sync_at": isoformat(due),
                                            "interval_seconds": 600, **extra})


def requests_sent(ports) -> list[str]:
    got: list = []
    while ports.bus.pull(policy.subscription_name("sync-requests-github"), got.append):
        pass
    return [m.attributes["type"] for m in got]


def test_cloud_schedulers_fixed_body_ticks_now(ports):
    connection(ports, "c-1", -5)
    connection(ports, "c-2", +300)
    on_tick(ports, tick({}))
    assert requests_sent(ports) == ["sync.requested"]
    next_due = parse_iso(ports.business.get("connections", "c-1")["next_sync_at"])
    assert timedelta(seconds=590) < next_due - datetime.now(UTC) <= timedelta(seconds=661)


def test_a_redelivered_tick_requests_nothing_more(ports):
    connection(ports, "c-1", -5)
    on_tick(ports, tick({}))
    on_tick(ports, tick({}))
    assert requests_sent(ports) == ["sync.requested"]


def test_a_stale_tick_does_nothing(ports):
    connection(ports, "c-1", -5)
    on_tick(ports, tick({"tick_time": isoformat(datetime.now(UTC) - timedelta(hours=1))}))
    assert requests_sent(ports) == []


def test_a_malformed_tick_is_a_permanent_error(ports):
    with pytest.raises(InvalidInput):
        on_tick(ports, tick({"tick_time": "tomorrow-ish"}))


def test_a_spent_graphql_budget_also_waits_for_its_reset(ports):
    connection(ports, "c-1", -5)
    reset = datetime.now(UTC) + timedelta(minutes=20)
    core = TokenBudget(ports.business, ports.clock, budget_key("github", "c-1"))
    core.observe(limit=5000, remaining=4000, reset_at=reset - timedelta(minutes=10))
    core.for_resource("graphql").observe(limit=5000, remaining=3, reset_at=reset)
    on_tick(ports, tick({}))
    assert requests_sent(ports) == []
    assert parse_iso(ports.business.get("connections", "c-1")["next_sync_at"]) >= reset - \
        timedelta(seconds=1)


def test_failures_back_off(ports):
    connection(ports, "c-1", -5)
    ports.business.put("sync_status", "c-1", {"consecutive_failures": 3})
    on_tick(ports, tick({}))
    next_due = parse_iso(ports.business.get("connections", "c-1")["next_sync_at"])
    assert next_due - datetime.now(UTC) > timedelta(seconds=600 * 8 - 5)


def test_a_spent_budget_waits_for_its_reset_instead_of_asking(ports):
    connection(ports, "c-1", -5)
    reset = datetime.now(UTC) + timedelta(minutes=30)
    TokenBudget(ports.business, ports.clock, budget_key("github", "c-1")).observe(
        limit=5000, remaining=0, reset_at=reset)
    on_tick(ports, tick({}))
    assert requests_sent(ports) == []
    assert parse_iso(ports.business.get("connections", "c-1")["next_sync_at"]) >= reset - \
        timedelta(seconds=1)
