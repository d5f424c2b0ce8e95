"""The declared composite indexes (shared.indexes) are exactly the ones keyway's queries need:
each query below runs in-process on the embedded store, every shape it needs is declared, every
declared index is needed, and Terraform creates each one in its database."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from shared.actions.model import COLLECTION as ACTIONS
from shared.api import data, reads
from shared.audit import verify
from shared.auth.principal import Principal
from shared.bootstrap import build
from shared.clock import isoformat
from shared.config import Config
from shared.crypto.replay import ReplayGuard
from shared.index_rules import BUSINESS, VAULT, serves
from shared.indexes import INDEXES, filter_sets
from shared.messages import Inbound
from shared.scheduler.tick import on_tick
from tests.indexguard import Recorder
from tests.unit.test_infra import _map_of, load


class RecordingStore:
    """A document store that records the index each query needs, then runs it."""

    def __init__(self, store: Any, database: str, recorder: Recorder) -> None:
        self._store, self._database, self._recorder = store, database, recorder

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def query(self, collection, where=(), order_by=(), limit=None):
        self._recorder.record(self._database, collection, where, order_by, "this test")
        return self._store.query(collection, where, order_by, limit)


@pytest.fixture
def recorded(tmp_path):
    recorder = Recorder()
    ports = build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path)}))
    ports = dataclasses.replace(
        ports, business=RecordingStore(ports.business, BUSINESS, recorder),
        vault=RecordingStore(ports.vault, VAULT, recorder))
    return ports, recorder


def _ctx(ports: Any, args: dict[str, str]) -> Any:
    principal = Principal("t-1", "u-1", "admin", frozenset({"data:read", "actions:write"}))
    return SimpleNamespace(principal=principal, request=SimpleNamespace(args=args), ports=ports)


def _run_every_query(ports: Any) -> None:
    now = isoformat(datetime.now(UTC))
    ports.business.put("connections", "c-1", {"tenant": "t-1", "provider": "github",
                                              "status": "disconnected", "purge_at": now})
    on_tick(ports, Inbound("refresh-ticks", "refresh.tick", 1, "cloud-scheduler", {}, "m-1"))
    ReplayGuard(ports.business, ports.clock).purge_expired()
    verify(ports.business, ports.secrets, "vault-github")
    cursor = reads._next_cursor([SimpleNamespace(id="a-1", data={"created_at": now})], None, set())
    for given in filter_sets(reads.ACTION_FILTERS):
        for more in ({}, {"cursor": cursor}):
            reads.list_actions(_ctx(ports, {**{name: "x" for name in given}, **more}))
    for resource in data.RESOURCES:
        for given in filter_sets(data.RECORD_FILTERS):
            for more in ({}, {"updated_since": now}, {"cursor": data._encode("r"),
                                                       "updated_since": now}):
                args = {**{name: "x" for name in given}, **more}
                data.list_records(_ctx(ports, args), resource)


def test_every_query_keyway_runs_has_its_index_declared(recorded):
    ports, recorder = recorded
    _run_every_query(ports)
    assert recorder.queries > 100  # the queries above really ran through the recorder
    assert recorder.missing() == []


def test_every_declared_index_serves_a_query_keyway_runs(recorded):
    ports, recorder = recorded
    _run_every_query(ports)
    unused = [ix.describe() for ix in INDEXES
              if not any(serves(ix, need) for need in recorder.needs)]
    assert unused == []


def test_the_abandoned_actions_sweep_is_reported_without_its_index(recorded):
    ports, recorder = recorded
    _run_every_query(ports)
    declared = [ix for ix in INDEXES if ix.fields != (("status", "ASCENDING"),
                                                      ("created_at", "ASCENDING"))]
    missing = recorder.missing(declared)
    assert [(need.collection, need.fields) for need, _ in missing] == [
        (ACTIONS, (("status", "ASCENDING"), ("created_at", "ASCENDING")))]


def test_terraform_creates_every_declared_index_in_its_database():
    model = load()
    resource = model["resources"]["google_firestore_index"]["composite"]
    assert resource["database"] == "${google_firestore_database.db[each.value.database].name}"
    assert resource["query_scope"] == "COLLECTION"
    created = _map_of(model, resource["for_each"]).values()
    as_declared = {(i["database"], i["collection"],
                    tuple((f["field_path"], f["order"]) for f in i["fields"][:-1]))
                   for i in created}
    assert as_declared == {(ix.database, ix.collection, ix.fields) for ix in INDEXES}
    for i in created:  # the document name last, in the direction of the field before it
        assert i["fields"][-1] == {"field_path": "__name__", "order": i["fields"][-2]["order"]}


def test_each_database_stays_within_firestores_composite_index_limits():
    per_database: dict[str, int] = {}
    for ix in INDEXES:
        per_database[ix.database] = per_database.get(ix.database, 0) + 1
    assert max(per_database.values()) <= 200  # Firestore's limit per database
    assert len({(ix.database, ix.collection, ix.fields) for ix in INDEXES}) == len(INDEXES)
    assert min(len(ix.fields) for ix in INDEXES) >= 2  # a composite index has two fields or more
