"""Bitbucket's delete webhook end to end: a pull request comment deleted at the simulator is
delivered to the repository's hook as ``pullrequest:comment_deleted`` (signed with
``X-Hub-Signature`` under the hook's secret), keyway's webhook-bitbucket acknowledges it and
ingest turns the comment into a tombstone (reason ``deleted``) visible through the data API's
``include_deleted`` view, with no sync. With the delivery dropped, the next incremental sync's
``comment_count`` signal tombstones the comment instead. A delivery signed under another secret
is refused and changes nothing."""

from __future__ import annotations

import json

import pytest

from keyway.simulators import BitbucketSimulator
from keyway.simulators.bitbucket_hooks import signature
from shared.clock import parse_iso
from shared.fetch.bitbucket.plan import PLAN as BITBUCKET_PLAN
from tests.integration.test_bitbucket_webhooks import Hooks
from tests.integration.test_reconcile import (
    CONNECTION,
    TENANT,
    Setup,
    assert_tombstones_and_views,
    live,
    sync,
)
from tests.unit.test_simulator_hooks import Receiver


@pytest.fixture
def bitbucket(leak_guard, local_stack):
    sim = BitbucketSimulator(on_issue=leak_guard.track).start()
    sim.seed_activity("acme", repos=2, prs=8, issues=4, comments=40)
    token = sim.mint_token(scopes=("account", "pullrequest", "issue")).access_token
    local_stack.ports.business.put("connections", CONNECTION, {
        "tenant": TENANT, "provider": "bitbucket", "kind": "app", "status": "active"})
    receiver = Receiver()
    yield Setup(sim, BITBUCKET_PLAN, sim.api_url, token), receiver
    receiver.stop()
    sim.stop()


def _pr_comment(ports) -> tuple[dict, str]:
    repos = {r["id"]: r["full_name"] for r in live(ports, "repositories")}
    comment = next(c for c in live(ports, "comments") if ":pr:" in c["parent"])
    return comment, f"{repos[comment['repository']]}#{comment['external_id']}"


def _forward(hooks: Hooks, receiver: Receiver) -> list:
    """Hand what the simulator delivered to keyway's webhook-bitbucket, as sent."""
    answers = []
    for _, headers, body in receiver.got:
        answers.append(hooks.post(body, {k: v for k, v in headers.items()
                                         if k.lower() not in ("host", "content-length")}))
    receiver.got.clear()
    return answers


def test_a_deleted_pr_comment_reaches_keyway_and_is_tombstoned_without_a_sync(local_stack,
                                                                             bitbucket):
    setup, receiver = bitbucket
    ports = local_stack.ports
    sync(ports, setup)
    hooks = Hooks(local_stack)
    comment, key = _pr_comment(ports)
    full_name = key.rsplit("#", 1)[0]
    secret = hooks.secret.decode()  # the secret keyway verifies Bitbucket deliveries with
    setup.sim.hooks.add(full_name, receiver.url + "/hook", secret=secret)
    others = [c for c in live(ports, "comments") if c["id"] != comment["id"]]
    assert setup.sim.delete("comment", key)
    assert [d.status_code for d in setup.sim.hooks.log.records()] == [202]
    _, headers, body = receiver.got[0]
    payload = json.loads(body)
    assert headers["X-Event-Key"] == "pullrequest:comment_deleted"
    assert set(payload) == {"actor", "pullrequest", "comment", "repository"}
    assert (payload["comment"]["id"], payload["comment"]["deleted"]) == (
        int(comment["external_id"]), True)
    assert headers["X-Hub-Signature"] == signature(secret, body)
    assert [a.status_code for a in _forward(hooks, receiver)] == [202]
    assert hooks.ingest() == 1
    assert_tombstones_and_views(local_stack, [comment], others)


def test_a_dropped_delete_delivery_is_caught_by_the_next_syncs_comment_count(local_stack,
                                                                            bitbucket):
    setup, receiver = bitbucket
    ports = local_stack.ports
    sync(ports, setup)
    comment, key = _pr_comment(ports)
    setup.sim.hooks.add(key.rsplit("#", 1)[0], receiver.url + "/hook", secret="s" * 32)
    setup.sim.hooks.log.drop_next(1)
    assert setup.sim.delete("comment", key)
    assert [d.dropped for d in setup.sim.hooks.log.records()] == [True]
    assert receiver.got == []
    assert ports.business.get("comments", comment["id"])["deleted"] is False
    result = sync(ports, setup)
    assert result.stats.deleted == 1
    assert_tombstones_and_views(local_stack, [comment], [])


def test_a_delivery_signed_under_another_secret_is_refused(local_stack, bitbucket):
    setup, receiver = bitbucket
    ports = local_stack.ports
    sync(ports, setup)
    hooks = Hooks(local_stack)
    comment, key = _pr_comment(ports)
    setup.sim.hooks.add(key.rsplit("#", 1)[0], receiver.url + "/hook", secret="w" * 32)
    assert setup.sim.delete("comment", key)
    assert [a.status_code for a in _forward(hooks, receiver)] == [401]
    assert hooks.ingest() == 0
    assert ports.business.get("comments", comment["id"])["deleted"] is False


def test_an_edited_pr_comment_is_delivered_as_comment_updated(local_stack, bitbucket):
    setup, receiver = bitbucket
    ports = local_stack.ports
    sync(ports, setup)
    hooks = Hooks(local_stack)
    for repo in live(ports, "repositories"):
        setup.sim.hooks.add(repo["full_name"], receiver.url + "/hook",
                            secret=hooks.secret.decode())
    touched = setup.sim.touch("comment", 1)
    assert len(receiver.got) == 1
    _, headers, body = receiver.got[0]
    assert headers["X-Event-Key"] == "pullrequest:comment_updated"
    assert json.loads(body)["comment"]["id"] == int(touched[0].rsplit("#", 1)[1])
    assert [a.status_code for a in _forward(hooks, receiver)] == [202]
    assert hooks.ingest() == 1
    stored = next(c for c in live(ports, "comments")
                  if c["external_id"] == touched[0].rsplit("#", 1)[1])
    assert parse_iso(stored["updated_at"]) == parse_iso(
        json.loads(body)["comment"]["updated_on"])  # the edit, ingested without a sync
