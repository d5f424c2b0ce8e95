"""``keyway migrate actions``: action documents stored under their old, tenant-less ids
(``actions/<action_id>``) move to their per-tenant ids in one transaction each, so the api,
``vault-P`` and ``act-P`` find them again; a document with no tenant, or whose new id is
already taken, is reported and left as it is; a second run changes nothing."""

from __future__ import annotations

import copy
import json

from keyway import migrate
from shared.actions.model import COLLECTION, doc_id
from tests.integration.test_cli import keyway


def _old_action(tenant: str | None = "t-1", user: str = "member-1") -> dict:
    doc = {"user": user, "provider": "github", "connection": "conn-1", "kind": "comment",
           "target": {"repository": "github:t-1:repo", "parent_kind": "issue", "number": 3},
           "fingerprint": "f" * 64, "status": "done", "created_at": "2026-12-01T10:00:00Z",
           "provider_comment_id": "77"}
    return doc if tenant is None else {"tenant": tenant, **doc}


def _everything(store) -> dict[str, dict]:
    return {snap.id: snap.data for snap in store.query(COLLECTION)}


def test_an_action_under_its_old_id_is_found_again_after_the_migration(local_stack):
    store = local_stack.ports.business
    store.put(COLLECTION, "act-1", _old_action())
    member = local_stack.token("t-1", "member-1", "member")
    assert local_stack.call("GET", "/api/v1/actions/act-1", member).status_code == 404
    outcomes = migrate.migrate_actions(store)
    assert outcomes == [migrate.Outcome("act-1", migrate.MOVED, "t-1:act-1")]
    found = local_stack.call("GET", "/api/v1/actions/act-1", member)
    assert found.status_code == 200
    assert found.json["status"] == "done" and found.json["provider_comment_id"] == "77"
    assert _everything(store) == {doc_id("t-1", "act-1"): _old_action()}


def test_a_second_run_changes_nothing(local_stack):
    store = local_stack.ports.business
    store.put(COLLECTION, "act-1", _old_action())
    store.put(COLLECTION, "act-2", _old_action(tenant="acme:eu%2F1"))
    store.put(COLLECTION, doc_id("t-1", "act-3"), _old_action())  # already per tenant
    assert {o.result for o in migrate.migrate_actions(store)} == {migrate.MOVED}
    after = copy.deepcopy(_everything(store))
    assert set(after) == {doc_id("t-1", "act-1"), doc_id("acme:eu%2F1", "act-2"),
                          doc_id("t-1", "act-3")}
    assert doc_id("acme:eu%2F1", "act-2") == "acme%3Aeu%252F1:act-2"  # escaped, one ':'
    assert migrate.migrate_actions(store) == []
    assert _everything(store) == after


def test_a_document_without_a_tenant_is_reported_and_left_as_it_is(local_stack):
    store = local_stack.ports.business
    for old_id, doc in (("act-1", _old_action(tenant=None)), ("act-2", _old_action(tenant=""))):
        store.put(COLLECTION, old_id, doc)
    before = copy.deepcopy(_everything(store))
    outcomes = migrate.migrate_actions(store)
    assert [(o.old_id, o.result) for o in outcomes] == [("act-1", migrate.NO_TENANT),
                                                       ("act-2", migrate.NO_TENANT)]
    assert _everything(store) == before


def test_a_new_id_already_taken_is_reported_and_both_documents_are_left(local_stack):
    """An action of the same id made in the same tenant since the upgrade owns the new id:
    the old document is not written over it, nor dropped."""
    store = local_stack.ports.business
    store.put(COLLECTION, "act-1", _old_action())
    newer = {**_old_action(user="member-2"), "status": "pending"}
    store.put(COLLECTION, doc_id("t-1", "act-1"), newer)
    before = copy.deepcopy(_everything(store))
    [outcome] = migrate.migrate_actions(store)
    assert (outcome.result, outcome.new_id) == (migrate.ID_TAKEN, doc_id("t-1", "act-1"))
    assert _everything(store) == before


def test_an_old_id_that_is_no_action_id_is_reported_and_left(local_stack):
    store = local_stack.ports.business
    store.put(COLLECTION, "not an id!", _old_action())
    before = copy.deepcopy(_everything(store))
    assert [o.result for o in migrate.migrate_actions(store)] == [migrate.NOT_AN_ACTION_ID]
    assert _everything(store) == before


def test_the_command_moves_reports_and_exits_1_while_anything_is_left(tmp_path, local_stack):
    state = local_stack.config.state_dir
    store = local_stack.ports.business
    store.put(COLLECTION, "act-1", _old_action())
    store.put(COLLECTION, "act-2", _old_action(tenant=None))
    first = keyway(state, "migrate", "actions")
    assert first.returncode == 1, first.stderr
    lines = first.stdout.splitlines()
    assert [json.loads(line) for line in lines[:-1]] == [
        {"action": "act-1", "outcome": "actions.moved"},
        {"action": "act-2", "outcome": "actions.no_tenant"}]
    assert lines[-1] == "actions: 1 moved, 1 left for an operator"
    assert store.get(COLLECTION, doc_id("t-1", "act-1")) == _old_action()
    store.delete(COLLECTION, "act-2")  # the operator deals with it
    again = keyway(state, "migrate", "actions")
    assert again.returncode == 0 and again.stdout == "actions: 0 moved, 0 left for an operator\n"
