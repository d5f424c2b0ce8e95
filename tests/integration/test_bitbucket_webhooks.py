"""Bitbucket webhooks through the real webhook-bitbucket and ingest entry points: every
documented event signed with X-Hub-Signature is acknowledged, published once and ingested into
the fetcher's records; an older event and a redelivery change nothing; every rejection answers
problem+json with one stable key and stores nothing; the acknowledgement opens no connection."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import pytest

from shared.providers import registry
from shared.records import bitbucket as bb_records
from shared.records.model import Context, record_id
from tests.integration.test_webhooks import _WATCH, LazyBody, github_signature, webhook_keys

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bitbucket" / "webhooks"
REPO = "{673a6070-3421-46c9-9d48-90745f7bfe8e}"
MONA = "{d301aafa-d676-4ee0-88be-962be7417567}"
HOOK = "{4b7f0c1e-63b4-4b62-9b5a-2a3bd8e0f4aa}"
ORDER = ["pullrequest.created", "pullrequest.updated", "pullrequest.comment_created",
         "pullrequest.comment_updated", "pullrequest.approved", "pullrequest.unapproved",
         "pullrequest.comment_deleted", "pullrequest.fulfilled", "pullrequest.rejected",
         "issue.created", "issue.updated", "issue.comment_created"]


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def rid(kind: str, key: str) -> str:
    return record_id("acme", "bitbucket", kind, key)


class Hooks:
    def __init__(self, stack) -> None:
        self.stack, self.ports = stack, stack.ports
        self.secret = stack.leak_guard.track(self.ports.secrets.access("bitbucket-webhook-secret"))

    def post(self, body: bytes | None, headers: dict, path: str = "/webhook-bitbucket/",
             **kwargs):
        watch: list[str] = []
        _WATCH.append(watch)
        try:
            response = self.stack.client.open(path, method="POST", data=body, headers={
                k: v for k, v in headers.items() if v is not None}, **kwargs)
        finally:
            _WATCH.remove(watch)
        self.stack.leak_guard.check_response(response, f"POST {path}")
        assert watch == [], f"the webhook path opened a connection: {watch}"
        return response

    def send(self, body: bytes, event: str = "pullrequest:created", *, request: str = "r-1",
             hook: str | None = HOOK, secret: bytes | None = None, **extra):
        signature = self.stack.leak_guard.track(github_signature(secret or self.secret, body))
        return self.post(body, {"X-Event-Key": event, "X-Request-UUID": request,
                                "X-Hook-UUID": hook, "X-Attempt-Number": "1",
                                "X-Hub-Signature": signature,
                                "User-Agent": "Bitbucket-Webhooks/2.0",
                                "Content-Type": "application/json", **extra})

    def published(self) -> list:
        from shared import policy

        return self.ports.bus.peek(policy.subscription_name("events-bitbucket"), 50)

    def ingest(self) -> int:
        from shared import messages, policy
        from shared.entry import event_function
        from shared.routing import handlers_for
        from tests.unit.test_entry import pubsub_event

        receive = event_function("ingest", handlers_for("ingest"))
        got: list = []
        while self.ports.bus.pull(policy.subscription_name("events-bitbucket"), got.append,
                                  max_messages=50):
            pass
        for m in got:
            inbound = messages.decode("events-bitbucket", m.data, m.attributes, m.message_id)
            receive(pubsub_event(inbound.topic, inbound.sender, inbound.type, inbound.body))
        return len(got)

    def deliveries(self) -> list:
        return self.ports.business.query("webhook_deliveries")


@pytest.fixture
def hooks(local_stack) -> Hooks:
    ports = local_stack.ports
    ports.business.put("connections", "conn-bb", {
        "tenant": "acme", "provider": "bitbucket", "kind": "app", "status": "active"})
    repository = json.loads(fixture("issue.created"))["repository"]
    record = bb_records.repository(repository, Context(
        "acme", "bitbucket", "conn-bb", observed_at="2015-01-01T00:00:00.000000Z"))
    ports.business.put("repositories", record["id"], record)
    return Hooks(local_stack)


def test_every_documented_event_is_acknowledged_published_once_and_ingested(hooks):
    for n, name in enumerate(ORDER):
        response = hooks.send(fixture(name), name.replace(".", ":", 1), request=f"r-{n}")
        assert (response.status_code, response.json) == (202, {"status": "accepted"}), name
    assert len(hooks.published()) == len(ORDER)
    event = json.loads(hooks.published()[0].data)
    assert event["headers"] == {"hook_uuid": HOOK, "attempt": "1"}
    assert hooks.ingest() == len(ORDER)
    store = hooks.ports.business
    merged = store.get("pull_requests", rid("pull_requests", f"{REPO}#1"))
    assert (merged["state"], merged["title"]) == ("merged", "Title of pull request (updated)")
    assert store.get("pull_requests", rid("pull_requests", f"{REPO}#3"))["state"] == "closed"
    comment = store.get("comments", rid("comments", "17"))
    assert (comment["body"], comment["path"]) == ("Comment text, edited", "path/to/file")
    assert store.get("comments", rid("comments", "16"))["deleted"] is True
    assert store.get("reviews", rid("reviews", f"{REPO}#1:{MONA}"))["deleted"] is True
    issue = store.get("issues", rid("issues", f"{REPO}#1"))
    assert issue["state"] == "closed"
    assert store.get("comments", rid("comments", "issue:5"))["parent"] == issue["id"]


def test_an_older_event_and_redeliveries_leave_the_records_unchanged(hooks):
    hooks.send(fixture("pullrequest.updated"), "pullrequest:updated", request="r-new")
    hooks.ingest()
    key = rid("pull_requests", f"{REPO}#1")
    before = hooks.ports.business.get("pull_requests", key)
    hooks.send(fixture("pullrequest.created"), request="r-old")  # older: loses
    again = hooks.send(fixture("pullrequest.updated"), "pullrequest:updated", request="r-new")
    assert again.json == {"status": "duplicate"}  # the same delivery: not published again
    hooks.ingest()
    assert hooks.ports.business.get("pull_requests", key) == before


def test_a_replayed_delivery_is_acknowledged_but_published_once(hooks, caplog):
    body = fixture("issue.created")
    request = str(uuid.uuid4())
    assert hooks.send(body, "issue:created", request=request).status_code == 202
    caplog.clear()
    with caplog.at_level(logging.INFO):
        replayed = hooks.send(body, "issue:created", request=request)
    assert (replayed.status_code, replayed.json) == (202, {"status": "duplicate"})
    assert webhook_keys(caplog) == ["webhook.bitbucket.duplicate"]
    other_hook = hooks.send(body, "issue:created", request=request, hook="{another-hook}")
    assert other_hook.json == {"status": "accepted"}  # deduped per hook: another hook's copy
    assert len(hooks.published()) == 2
    assert len({d.id for d in hooks.deliveries()}) == 2


def test_during_a_rotation_the_current_and_previous_secret_verify_and_no_other(hooks, caplog):
    old = hooks.secret
    new = hooks.stack.leak_guard.track(b"rotated-bitbucket-secret-2")
    secrets = hooks.ports.secrets
    secrets.add_version("bitbucket-webhook-secret-previous", old)
    secrets.add_version("bitbucket-webhook-secret", new)
    body = fixture("issue.created")
    assert hooks.send(body, "issue:created", request="a", secret=new).status_code == 202
    assert hooks.send(body, "issue:created", request="b", secret=old).status_code == 202
    stranger = hooks.stack.leak_guard.track(b"neither-current-nor-previous-bb")
    caplog.clear()
    with caplog.at_level(logging.INFO):
        refused = hooks.send(body, "issue:created", request="c", secret=stranger)
    assert refused.status_code == 401
    assert webhook_keys(caplog) == ["webhook.bitbucket.invalid_signature"]


PR = fixture("pullrequest.created")
REJECTIONS = {
    "no signature": (lambda h: h.send(PR, **{"X-Hub-Signature": None}), 401,
                     "webhook.bitbucket.missing_signature"),
    "wrong signature": (lambda h: h.post(PR, {"X-Event-Key": "pullrequest:created",
                                             "X-Request-UUID": "r-1",
                                             "X-Hub-Signature": "sha256=" + "0" * 64}), 401,
                        "webhook.bitbucket.invalid_signature"),
    "GitHub's sha1 header form": (lambda h: h.post(PR, {
        "X-Event-Key": "pullrequest:created", "X-Request-UUID": "r-1",
        "X-Hub-Signature": "sha1=" + "0" * 40}), 401, "webhook.bitbucket.invalid_signature"),
    "signature over another body": (lambda h: h.post(PR, {
        "X-Event-Key": "pullrequest:created", "X-Request-UUID": "r-1",
        "X-Hub-Signature": h.stack.leak_guard.track(github_signature(h.secret, PR + b" "))}),
        401, "webhook.bitbucket.invalid_signature"),
    "a rotated-out secret": (lambda h: h.send(PR, secret=b"an-old-bitbucket-secret"), 401,
                             "webhook.bitbucket.invalid_signature"),
    "valid signature over invalid JSON": (lambda h: h.send(b'{"pullrequest": {'), 400,
                                          "webhook.bitbucket.invalid_json"),
    "valid signature over a JSON array": (lambda h: h.send(b"[]"), 400,
                                          "webhook.bitbucket.invalid_json"),
    "unknown connection": (lambda h: h.post(PR, {"X-Hub-Signature": "sha256=00"},
                                            path="/webhook-bitbucket/c/nobody"), 404,
                           "webhook.bitbucket.unknown_connection"),
}


@pytest.mark.parametrize("case", list(REJECTIONS))
def test_every_rejection_logs_one_stable_key_and_stores_nothing(hooks, caplog, case):
    send, status, key = REJECTIONS[case]
    with caplog.at_level(logging.INFO):
        response = send(hooks)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json["code"] == key
    assert webhook_keys(caplog) == [key]
    assert hooks.deliveries() == [] and hooks.published() == []


def test_an_oversized_body_is_refused_reading_nothing_past_the_cap(hooks, caplog):
    cap = registry.get("bitbucket").webhook.max_body_bytes
    declared = LazyBody(cap + 1)
    with caplog.at_level(logging.INFO):
        response = hooks.post(None, {"X-Hub-Signature": "sha256=00"}, input_stream=declared)
    assert (response.status_code, response.json["code"]) == (413, "webhook.bitbucket.too_large")
    assert declared.read_bytes == 0
    assert webhook_keys(caplog) == ["webhook.bitbucket.too_large"]
    assert hooks.deliveries() == [] and hooks.published() == []
