"""A connection's health: derived from facts, never "fine" while broken, each change recorded
once with its cause and time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared import health
from shared.bootstrap import build
from shared.clock import isoformat
from shared.config import Config
from shared.fetch import status

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)


def at(minutes: float) -> str:
    return isoformat(NOW + timedelta(minutes=minutes))


ACTIVE = {"tenant": "t-1", "status": "active"}
DONE = {"state": "done", "last_success_at": at(-10)}


@pytest.mark.parametrize(("connection", "sync", "expected"), [
    (ACTIVE, None, ("connecting", None)),
    (ACTIVE, DONE, ("active", None)),
    (ACTIVE, {"state": "running", "lease": {"owner": "o", "until": at(3)}}, ("syncing", None)),
    (ACTIVE, {**DONE, "state": "running", "lease": {"owner": "o", "until": at(-1)}},
     ("degraded", "sync.stalled")),
    (ACTIVE, {**DONE, "state": "failed", "reason": "provider.unavailable"},
     ("degraded", "sync.failed: provider.unavailable")),
    (ACTIVE, {"state": "failed", "reason": "provider.unavailable"},
     ("degraded", "sync.failed: provider.unavailable")),
    (ACTIVE, {**DONE, "state": "retrying", "reason": "provider.unavailable", "retry_at": at(2)},
     ("degraded", "sync.retrying: provider.unavailable")),
    (ACTIVE, {**DONE, "state": "continuing"}, ("syncing", None)),
    (ACTIVE, {**DONE, "state": "waiting", "retry_at": at(5)}, ("active", None)),
    (ACTIVE, {**DONE, "state": "waiting", "retry_at": at(90)}, ("degraded", "sync.rate_limited")),
    (ACTIVE, {**DONE, "missing": [{"reason": "reviews.unavailable: permission"}]},
     ("degraded", "reviews.unavailable: permission")),
    ({**ACTIVE, "status": "needs_reauth", "status_reason": "vault.undecryptable"}, DONE,
     ("needs_reauth", "vault.undecryptable")),
    ({**ACTIVE, "status": "needs_reauth", "status_reason": "provider.token_rejected"},
     {**DONE, "state": "running", "lease": {"owner": "o", "until": at(3)}},
     ("needs_reauth", "provider.token_rejected")),
    ({**ACTIVE, "status": "disconnecting"}, DONE, ("disconnected", "connection.disconnected")),
])
def test_health_follows_the_facts_in_order(connection, sync, expected):
    got = health.derive(connection, sync, NOW)
    assert (got.state, got.reason) == expected


def test_a_live_run_is_shown_but_not_recorded_as_a_change():
    sync = {**DONE, "state": "running", "lease": {"owner": "o", "until": at(3)}}
    assert health.derive(ACTIVE, sync, NOW).state == "syncing"
    assert health.derive(ACTIVE, sync, NOW, live=False).state == "active"


@pytest.fixture
def ports(tmp_path):
    return build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path)}))


def events(ports, connection: str) -> list[tuple]:
    found = [s.data for s in ports.business.query(health.EVENTS)
             if s.data["connection"] == connection]
    return sorted((e["at"], e["from"], e["to"], e["reason"]) for e in found)


def test_each_change_is_written_once_with_its_cause(ports):
    ports.business.put("connections", "c-1", {"tenant": "t-1", "provider": "github",
                                              "status": "active"})
    assert health.observe(ports, "c-1")[1].state == "connecting"
    assert health.observe(ports, "c-1") is None  # the same state again: nothing written
    owner = status.begin(ports, "t-1", "c-1")
    status.end(ports, "c-1", owner, "done")
    owner = status.begin(ports, "t-1", "c-1")
    status.end(ports, "c-1", owner, "failed", reason="provider.unavailable")
    status.end(ports, "c-1", status.begin(ports, "t-1", "c-1"), "failed",
               reason="provider.unavailable")  # a second failure: no new change
    health.mark(ports, "t-1", "c-1", "needs_reauth", "provider.token_rejected")
    health.mark(ports, "t-1", "c-1", "disconnected")
    health.mark(ports, "t-1", "c-1", "active")  # a disconnected connection stays so
    steps = [(e[1], e[2], e[3]) for e in events(ports, "c-1")]
    assert sorted(steps, key=lambda s: str(s[0])) == sorted([
        (None, "connecting", None),
        ("connecting", "active", None),
        ("active", "degraded", "sync.failed: provider.unavailable"),
        ("degraded", "needs_reauth", "provider.token_rejected"),
        ("needs_reauth", "disconnected", "connection.disconnected"),
    ], key=lambda s: str(s[0]))
    doc = ports.business.get("connections", "c-1")
    assert doc["status"] == "disconnected"
    assert doc["health"]["state"] == "disconnected" and doc["health"]["since"]


def test_another_tenants_connection_is_not_marked(ports):
    ports.business.put("connections", "c-2", {"tenant": "t-2", "status": "active"})
    health.mark(ports, "t-1", "c-2", "needs_reauth", "provider.token_rejected")
    assert ports.business.get("connections", "c-2")["status"] == "active"
