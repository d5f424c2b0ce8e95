"""The index guard (tests/indexguard.py) records keyway's queries for the whole session and fails
the run when one needs an index nobody declared."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from shared.bootstrap import build
from shared.config import Config
from shared.index_rules import ASC, DESC, index, required
from shared.indexes import INDEXES
from shared.messages import Inbound
from shared.ports import Filter, Order
from shared.scheduler.tick import on_tick
from tests import indexguard
from tests.indexguard import Recorder, database_of, report


@pytest.fixture(params=["embedded", pytest.param("emulator", marks=pytest.mark.emulator)])
def ports(request, tmp_path):
    ports = build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path)}))
    if request.param == "emulator":
        request.getfixturevalue("emulator_env")
        from shared.adapters.gcp.firestore_store import FirestoreDocumentStore

        project = request.getfixturevalue("unique_project")
        ports = dataclasses.replace(ports, business=FirestoreDocumentStore(project, "(default)"),
                                    vault=FirestoreDocumentStore(project, "vault"))
    return ports


def test_the_session_records_the_queries_keyways_code_runs(ports, index_guard):
    before = index_guard.queries
    on_tick(ports, Inbound("refresh-ticks", "refresh.tick", 1, "cloud-scheduler", {}, "m-1"))
    assert index_guard.queries > before
    due = required("connections", [Filter("status", "==", "active"),
                                   Filter("next_sync_at", "<=", "x")], [Order("next_sync_at")])
    assert due in index_guard.needs
    assert index_guard.needs[due].startswith("shared/scheduler/tick.py:")


def test_each_store_is_recorded_under_its_own_database(ports):
    assert (database_of(ports.business), database_of(ports.vault)) == ("(default)", "vault")


def test_a_query_a_test_runs_itself_is_not_recorded(tmp_path, index_guard):
    ports = build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path)}))
    shape = ([Filter("kind", "==", "a")], [Order("rank", descending=True)])
    ports.business.query("guard_probe", *shape)
    assert required("guard_probe", *shape) not in index_guard.needs


def test_a_query_needing_an_undeclared_index_is_reported_with_its_fields_and_caller():
    recorder = Recorder()
    recorder.record("(default)", "actions", [Filter("tenant", "==", "t"),
                                             Filter("kind", "==", "comment")],
                    [Order("created_at", descending=True)], "shared/somewhere.py:12")
    recorder.record("(default)", "connections", [Filter("tenant", "==", "t")], [], "x.py:1")
    missing = recorder.missing(INDEXES)
    assert [(need.collection, need.fields) for need, _ in missing] == [
        ("actions", (("kind", ASC), ("tenant", ASC), ("created_at", DESC)))]
    text = report(missing)
    assert "(default)/actions (kind ascending, tenant ascending, created_at descending)" in text
    assert "shared/somewhere.py:12" in text
    declared = [*INDEXES, index("actions", "tenant", "kind", "-created_at")]
    assert recorder.missing(declared) == []


def test_the_session_fails_when_an_index_is_missing(monkeypatch, capsys):
    recorder = Recorder()
    recorder.record("vault", "app_tokens", [Filter("provider", "==", "github")],
                    [Order("updated_at")], "shared/vault/x.py:3")
    monkeypatch.setattr(indexguard, "SESSION", recorder)
    plugins = SimpleNamespace(get_plugin=lambda name: None)
    session = SimpleNamespace(config=SimpleNamespace(pluginmanager=plugins), exitstatus=0)
    indexguard.pytest_sessionfinish(session, 0)
    assert session.exitstatus == 1
    assert "vault/app_tokens (provider ascending, updated_at ascending)" in capsys.readouterr().err


def test_the_session_passes_when_every_needed_index_is_declared(monkeypatch):
    recorder = Recorder()
    recorder.record("(default)", "connections", [Filter("status", "==", "active"),
                                                 Filter("next_sync_at", "<=", "x")],
                    [Order("next_sync_at")], "shared/scheduler/tick.py:55")
    monkeypatch.setattr(indexguard, "SESSION", recorder)
    session = SimpleNamespace(config=None, exitstatus=0)
    indexguard.pytest_sessionfinish(session, 0)
    assert session.exitstatus == 0
