"""The Bitbucket simulator's repository hooks (:mod:`keyway.simulators.bitbucket_hooks`):
a subscribed event is delivered with Bitbucket's headers, signed only when the hook has a
secret; an unsubscribed or inactive hook gets nothing; an event the simulator does not send
cannot be subscribed to; a dropped delivery reaches no one and is logged as failed."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from keyway.simulators.bitbucket_hooks import BitbucketHooks
from tests.unit.test_simulator_hooks import Receiver

EVENT = "pullrequest:comment_deleted"


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


def test_a_subscribed_hook_gets_the_event_signed_with_its_secret(receiver) -> None:
    hooks = BitbucketHooks(lambda: 1000.0)
    signed = hooks.add("Acme/Repo", receiver.url + "/a", secret="k" * 32)
    hooks.add("acme/repo", receiver.url + "/b")  # no secret
    hooks.add("acme/repo", receiver.url + "/c", events=("pullrequest:comment_updated",))
    hooks.add("acme/other", receiver.url + "/d")
    sent = hooks.deliver("ACME/repo", EVENT, {"comment": {"id": 7, "deleted": True}})
    assert [d.status_code for d in sent] == [202, 202]
    by_path = {path: (headers, body) for path, headers, body in receiver.got}
    assert set(by_path) == {"/a", "/b"}
    headers, body = by_path["/a"]
    assert headers["X-Event-Key"] == EVENT and headers["X-Attempt-Number"] == "1"
    assert headers["X-Hook-UUID"] == signed.options["uuid"]
    assert headers["User-Agent"] == "Bitbucket-Webhooks/2.0"
    expected = hmac.new(b"k" * 32, body, hashlib.sha256).hexdigest()
    assert headers["X-Hub-Signature"] == f"sha256={expected}"
    assert "X-Hub-Signature" not in by_path["/b"][0]
    assert json.loads(body) == {"comment": {"id": 7, "deleted": True}}
    assert by_path["/a"][0]["X-Request-UUID"] != by_path["/b"][0]["X-Request-UUID"]
    assert all("X-Hub-Signature" not in d.request_headers for d in sent)  # not logged


def test_inactive_hooks_unknown_events_and_dropped_deliveries(receiver) -> None:
    hooks = BitbucketHooks(lambda: 1000.0)
    with pytest.raises(ValueError):
        hooks.add("acme/repo", receiver.url, events=("pullrequest:comment_created",))
    hook = hooks.add("acme/repo", receiver.url + "/a")
    hook.active = False
    assert hooks.deliver("acme/repo", EVENT, {}) == []
    hook.active = True
    hooks.log.drop_next(1)
    dropped = hooks.deliver("acme/repo", EVENT, {})
    assert [d.dropped for d in dropped] == [True] and receiver.got == []
    assert [d.ok for d in hooks.deliver("acme/repo", EVENT, {})] == [True]
