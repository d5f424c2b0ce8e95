"""Action ids are per tenant: the same ``action_id`` in two tenants is two independent
actions, one tenant can neither squat nor probe another's ids, and tenant ids with ``:``,
``/`` or ``%`` never make two actions share a document (``shared.actions.model.doc_id``)."""

from __future__ import annotations

import pytest

from keyway.simulators import GitHubSimulator
from shared.actions.model import doc_id
from shared.errors import InvalidInput
from tests.integration.test_actions import TENANT, Setup


@pytest.fixture
def two_tenants(local_stack, leak_guard):
    """The same GitHub simulator connected by two tenants, each with its own member (the
    second tenant id has a ``:`` and a ``%``; identity ids cannot hold a ``/`` yet)."""
    sim = GitHubSimulator(on_issue=leak_guard.track).start()
    ours = Setup(local_stack, sim, "github")
    theirs = Setup(local_stack, sim, "github", tenant="acme:eu%2F1", connection="conn-2",
                   owner="globex")
    yield ours, theirs
    sim.stop()


def test_the_same_action_id_in_two_tenants_is_two_independent_actions(two_tenants):
    ours, theirs = two_tenants
    status, mine = ours.request(action_id="shared-key-1")
    assert status == 202
    ours.run()
    status, other = theirs.request(action_id="shared-key-1")  # not a 409: not our id
    assert status == 202 and other["connection"] == "conn-2" and other["status"] == "pending"
    theirs.run()
    _, mine_now = ours.status("shared-key-1")
    _, other_now = theirs.status("shared-key-1")
    assert mine_now["connection"] == "conn-1" and other_now["connection"] == "conn-2"
    assert mine_now["status"] == other_now["status"] == "done"
    assert mine_now["provider_comment_id"] != other_now["provider_comment_id"]
    assert len(ours.comments()) == 1 and len(theirs.comments()) == 1


def test_another_tenants_action_id_reads_as_404_like_a_never_used_one(two_tenants):
    ours, theirs = two_tenants
    ours.request(action_id="only-ours-1")
    probe = ours.stack.token(theirs.tenant, "member-1", "member")
    answers = [ours.stack.call("GET", f"/api/v1/actions/{i}", probe)
               for i in ("only-ours-1", "never-used-1")]
    assert [a.status_code for a in answers] == [404, 404]
    assert answers[0].get_data() == answers[1].get_data()
    assert answers[0].headers["Content-Type"] == answers[1].headers["Content-Type"]


def test_a_tenants_retry_still_finds_its_own_action(two_tenants):
    ours, theirs = two_tenants
    theirs.request(action_id="retry-2")
    status, again = theirs.request(action_id="retry-2")
    assert status == 200 and again["connection"] == "conn-2"
    assert ours.status("retry-2")[0] == 404


@pytest.mark.parametrize("a, b", [
    (("a:b", "c"), ("a", "b:c")),
    (("a/b", "c"), ("a", "b/c")),
    (("a%3Ab", "c"), ("a:b", "c")),
    (("_t", "x"), ("%5Ft", "x")),
])
def test_action_document_ids_never_collide(a, b):
    assert doc_id(*a) != doc_id(*b)


def test_action_document_ids_are_store_safe():
    key = doc_id("acme:eu/1%", "act-1")
    assert "/" not in key and key.count(":") == 1 and not key.startswith("_")
    assert doc_id(TENANT, "act-1") == "t-1:act-1"
    with pytest.raises(InvalidInput):
        doc_id("", "act-1")
