"""Webhooks through the real entry points, as ``make run`` mounts them: a signed delivery is
acknowledged with 202, published once and ingested into records; every rejection answers with
problem+json, logs one stable key and stores nothing; no secret or signature leaks; and the
acknowledgement path opens no network connection (no provider API is called inline)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from shared import messages, policy
from shared.entry import event_function
from shared.providers import registry
from shared.records import github as gh_records
from shared.records import gitlab as gl_records
from shared.records.model import Context, record_id
from shared.routing import handlers_for
from tests.unit.test_entry import pubsub_event

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GITHUB_ORDER = [
    "pull_request.opened", "issues.opened", "issue_comment.created", "label.created",
    "pull_request_review.submitted", "pull_request_review_comment.created",
    "issue_comment.deleted", "pull_request_review_comment.deleted", "label.deleted",
    "issues.deleted", "installation.created", "installation_repositories.added",
    "installation_repositories.removed", "installation.deleted",
]
GITLAB_ORDER = ["merge_request.open", "issue.open", "note.merge_request", "note.issue",
                "note.commit"]
GITLAB_EVENTS = {"merge_request": "Merge Request Hook", "issue": "Issue Hook",
                 "note": "Note Hook"}

# ---- network watch: an audit hook records connections while a request is acknowledged ------
_WATCH: list[list[str]] = []


def _audit(event: str, args: tuple) -> None:
    if _WATCH and event in ("socket.connect", "socket.getaddrinfo"):
        _WATCH[-1].append(event)


sys.addaudithook(_audit)


def fixture(provider: str, name: str) -> bytes:
    return (FIXTURES / provider / "webhooks" / f"{name}.json").read_bytes()


def github_signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def standard_signature(secret: bytes, message_id: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(digest.digest()).decode()


class LazyBody:
    """A request body of ``size`` bytes produced only when read; counts what was read."""

    def __init__(self, size: int) -> None:
        self.size, self.pos, self.read_bytes = size, 0, 0

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = self.size if whence == 2 else offset
        return self.pos

    def read(self, n: int = -1) -> bytes:
        n = self.size - self.pos if n < 0 else min(n, self.size - self.pos)
        self.pos += n
        self.read_bytes += n
        return b"{" * n


class Hooks:
    """The local stack plus the webhook secrets (tracked by the leak guard)."""

    def __init__(self, stack) -> None:
        self.stack, self.ports = stack, stack.ports
        self.github = stack.leak_guard.track(self.ports.secrets.access("github-webhook-secret"))
        self.gitlab = stack.leak_guard.track(self.ports.secrets.access("gitlab-webhook-secret"))

    def track(self, value: str) -> str:
        return self.stack.leak_guard.track(value)

    def post(self, path: str, body: bytes | None, headers: dict[str, str], **kwargs):
        watch: list[str] = []
        _WATCH.append(watch)
        try:
            response = self.stack.client.open(path, method="POST", data=body,
                                              headers=headers, **kwargs)
        finally:
            _WATCH.remove(watch)
        self.stack.leak_guard.check_response(response, f"POST {path}")
        assert watch == [], f"the webhook path opened a connection: {watch}"
        return response

    def github_post(self, body: bytes, *, event: str = "pull_request", delivery: str = "d-1",
                    secret: bytes | None = None, path: str = "/webhook-github/", **extra):
        signature = self.track(github_signature(secret or self.github, body))
        headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery,
                   "X-Hub-Signature-256": signature, "Content-Type": "application/json",
                   "X-GitHub-Hook-ID": "292430182", **extra}
        return self.post(path, body, {k: v for k, v in headers.items() if v is not None})

    def gitlab_post(self, body: bytes, *, token: bytes | None = None, uuid: str = "u-1",
                    **extra):
        headers = {"X-Gitlab-Event": "Merge Request Hook", "X-Gitlab-Event-UUID": uuid,
                   "X-Gitlab-Token": (token or self.gitlab).decode(),
                   "Content-Type": "application/json", **extra}
        return self.post("/webhook-gitlab/", body,
                         {k: v for k, v in headers.items() if v is not None})

    def published(self, provider: str) -> list:
        return self.ports.bus.peek(policy.subscription_name(f"events-{provider}"), 50)

    def deliveries(self) -> list:
        return self.ports.business.query("webhook_deliveries")

    def ingest(self, provider: str) -> int:
        """Hand everything waiting on ``events-<provider>`` to ingest's entry point."""
        receive = event_function("ingest", handlers_for("ingest"))
        got: list = []
        while self.ports.bus.pull(policy.subscription_name(f"events-{provider}"), got.append,
                                  max_messages=50):
            pass
        for m in got:
            inbound = messages.decode(f"events-{provider}", m.data, m.attributes, m.message_id)
            receive(pubsub_event(inbound.topic, inbound.sender, inbound.type, inbound.body))
        return len(got)


@pytest.fixture
def hooks(local_stack) -> Hooks:
    ports = local_stack.ports
    for provider, connection, extra in (("github", "conn-gh", {"installation_id": 957387}),
                                        ("gitlab", "conn-gl", {})):
        ports.business.put("connections", connection, {
            "tenant": "acme", "provider": provider, "kind": "app", "status": "active", **extra})
    ctx = Context("acme", "github", "conn-gh", observed_at="2019-01-01T00:00:00.000000Z")
    repo = json.loads(fixture("github", "issues.opened"))["repository"]
    for raw in (repo, {"id": 186853007, "name": "Space", "full_name": "Codertocat/Space"}):
        record = gh_records.repository(raw, ctx)
        ports.business.put("repositories", record["id"], record)
    gl_ctx = Context("acme", "gitlab", "conn-gl", observed_at="2019-01-01T00:00:00.000000Z")
    for project in (14, 5):
        record = gl_records.repository({"id": project, "path": "p", "path_with_namespace": "g/p",
                                        "namespace": {"id": 9, "full_path": "g"}}, gl_ctx)
        ports.business.put("repositories", record["id"], record)
    return Hooks(local_stack)


def webhook_keys(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("webhook.")]


# ---- the accepted path ----------------------------------------------------------------------
def test_every_recorded_github_event_is_acknowledged_published_once_and_ingested(
        hooks, record_property):
    started = time.perf_counter()
    for n, name in enumerate(GITHUB_ORDER):
        response = hooks.github_post(fixture("github", name), event=name.split(".")[0],
                                     delivery=f"d-{n}")
        assert (response.status_code, response.json) == (202, {"status": "accepted"}), name
    record_property("github_ack_seconds_per_event",
                    (time.perf_counter() - started) / len(GITHUB_ORDER))
    assert len(hooks.published("github")) == len(GITHUB_ORDER)
    assert hooks.ingest("github") == len(GITHUB_ORDER)
    store = hooks.ports.business
    pr = store.get("pull_requests", record_id("acme", "github", "pull_requests", "186853002#2"))
    assert pr["title"] == "Update the README with new information."
    assert store.get("reviews", record_id("acme", "github", "reviews", "237895671"))["state"] \
        == "commented"
    tombstoned = {kind: [s.data["deleted"] for s in store.query(kind)]
                  for kind in ("issues", "comments", "labels")}
    assert tombstoned == {"issues": [True], "comments": [True, True], "labels": [True]}
    space = store.get("repositories", record_id("acme", "github", "repositories", "186853007"))
    assert space["deleted"] is True


def test_every_recorded_gitlab_event_is_acknowledged_and_ingested(hooks, record_property):
    started = time.perf_counter()
    for n, name in enumerate(GITLAB_ORDER):
        event = GITLAB_EVENTS[name.split(".")[0]]
        response = hooks.gitlab_post(fixture("gitlab", name), uuid=f"u-{n}",
                                     **{"X-Gitlab-Event": event})
        assert response.status_code == 202, name
    record_property("gitlab_ack_seconds_per_event",
                    (time.perf_counter() - started) / len(GITLAB_ORDER))
    assert hooks.ingest("gitlab") == len(GITLAB_ORDER)
    counts = {kind: len(hooks.ports.business.query(kind))
              for kind in ("pull_requests", "issues", "comments", "labels")}
    assert counts == {"pull_requests": 1, "issues": 1, "comments": 2, "labels": 2}


def test_an_event_too_large_for_the_bus_is_published_without_payload_and_synced(hooks):
    big = json.loads(fixture("github", "pull_request.opened"))
    big["pull_request"]["body"] = "x" * (messages.MAX_BODY_BYTES + 1)
    assert hooks.github_post(json.dumps(big).encode()).status_code == 202
    (message,) = hooks.published("github")
    event = json.loads(message.data)
    assert event["payload_omitted"] is True and event["payload"] is None
    assert event["subject"] == {"repository": 186853002}
    hooks.ingest("github")
    assert hooks.ports.business.query("pull_requests") == []
    (sync,) = hooks.ports.bus.peek(policy.subscription_name("sync-requests-github"))
    assert json.loads(sync.data)["connection"] == "conn-gh"


def test_the_network_watch_would_catch_a_connection():
    watch: list[str] = []
    _WATCH.append(watch)
    try:
        with socket.socket() as probe:
            probe.settimeout(1)
            probe.connect_ex(("127.0.0.1", 9))
    finally:
        _WATCH.remove(watch)
    assert watch == ["socket.connect"]


def test_a_replayed_delivery_is_acknowledged_but_published_once(hooks, caplog):
    body = fixture("github", "pull_request.opened")
    first = hooks.github_post(body, delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    caplog.clear()
    with caplog.at_level(logging.INFO):
        again = hooks.github_post(body, delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json == {"status": "duplicate"}
    assert len(hooks.published("github")) == 1
    assert webhook_keys(caplog) == ["webhook.github.duplicate"]


def test_a_redelivered_and_an_older_event_leave_the_records_unchanged(hooks):
    newer = json.loads(fixture("github", "pull_request.opened"))
    newer["pull_request"].update(title="Renamed", updated_at="2019-06-01T00:00:00Z")
    hooks.github_post(json.dumps(newer).encode(), delivery="new")
    hooks.ingest("github")
    key = record_id("acme", "github", "pull_requests", "186853002#2")
    before = hooks.ports.business.get("pull_requests", key)
    hooks.github_post(fixture("github", "pull_request.opened"), delivery="old")
    hooks.ingest("github")
    for _ in range(2):  # Pub/Sub redelivers the newer event twice more
        hooks.ports.bus.publish("events-github", *_reencode(newer))
    hooks.ingest("github")
    assert hooks.ports.business.get("pull_requests", key) == before


def _reencode(payload: dict) -> tuple[bytes, dict]:
    return messages.encode("webhook-github", "webhook.event", {
        "provider": "github", "event": "pull_request", "delivery": "new", "connection": None,
        "received_at": "2030-01-01T00:00:00.000000Z", "headers": {}, "payload": payload})


def test_during_a_rotation_the_current_and_the_previous_secret_verify(hooks, caplog):
    new = hooks.stack.leak_guard.track(b"rotated-webhook-secret-2")
    hooks.ports.secrets.add_version("github-webhook-secret-previous", hooks.github)
    hooks.ports.secrets.add_version("github-webhook-secret", new)
    body = fixture("github", "label.created")
    assert hooks.github_post(body, event="label", delivery="a", secret=new).status_code == 202
    assert hooks.github_post(body, event="label", delivery="b",
                             secret=hooks.github).status_code == 202
    stranger = hooks.stack.leak_guard.track(b"neither-current-nor-previous")
    caplog.clear()
    with caplog.at_level(logging.INFO):
        refused = hooks.github_post(body, event="label", delivery="c", secret=stranger)
    assert refused.status_code == 401
    assert webhook_keys(caplog) == ["webhook.github.invalid_signature"]


def test_a_per_connection_hook_verifies_with_that_connections_secret(hooks):
    own = hooks.stack.leak_guard.track(b"per-connection-secret-1")
    hooks.ports.secrets.add_version("webhook-secret-conn-gh", own)
    body = fixture("github", "pull_request.opened")
    accepted = hooks.github_post(body, secret=own, path="/webhook-github/c/conn-gh")
    assert accepted.status_code == 202
    (message,) = hooks.published("github")
    assert json.loads(message.data)["connection"] == "conn-gh"
    app_signed = hooks.github_post(body, delivery="d-2", path="/webhook-github/c/conn-gh")
    assert app_signed.status_code == 401


def test_a_gitlab_signed_delivery_is_accepted_and_deduped_on_its_webhook_id(hooks):
    body = fixture("gitlab", "merge_request.open")
    stamp = str(int(time.time()))
    signature = hooks.track(standard_signature(hooks.gitlab, "msg_2", stamp, body))
    signed = {"webhook-id": "msg_2", "webhook-timestamp": stamp,
              "webhook-signature": signature, "X-Gitlab-Token": None}
    assert hooks.gitlab_post(body, uuid="u-a", **signed).status_code == 202
    assert hooks.gitlab_post(body, uuid="u-b", **signed).json == {"status": "duplicate"}
    assert [d.id for d in hooks.deliveries()] == ["gitlab:msg_2"]


# ---- every rejection: one stable key, problem+json, nothing stored ---------------------------
def _stale_signed(hooks: Hooks, body: bytes) -> dict:
    stamp = str(int(time.time()) - 600)
    return {"webhook-id": "msg_1", "webhook-timestamp": stamp, "X-Gitlab-Token": None,
            "webhook-signature": hooks.track(standard_signature(hooks.gitlab, "msg_1", stamp,
                                                                body))}


PR = fixture("github", "pull_request.opened")
MR = fixture("gitlab", "merge_request.open")
REJECTIONS: dict[str, tuple[Callable[[Hooks], object], int, str]] = {
    "no signature": (lambda h: h.github_post(PR, **{"X-Hub-Signature-256": None}), 401,
                     "webhook.github.missing_signature"),
    "wrong signature": (lambda h: h.post("/webhook-github/", PR, {
        "X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "d-1",
        "X-Hub-Signature-256": "sha256=" + "0" * 64}), 401,
        "webhook.github.invalid_signature"),
    "signature over a different body": (lambda h: h.post("/webhook-github/", PR, {
        "X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "d-1",
        "X-Hub-Signature-256": h.track(github_signature(h.github, PR + b"\n"))}), 401,
        "webhook.github.invalid_signature"),
    "a secret that is neither current nor previous": (
        lambda h: h.github_post(PR, secret=b"an-old-rotated-out-secret"), 401,
        "webhook.github.invalid_signature"),
    "valid signature over invalid JSON": (lambda h: h.github_post(b'{"action": "op'), 400,
                                          "webhook.github.invalid_json"),
    "valid signature over a JSON array": (lambda h: h.github_post(b"[1, 2]"), 400,
                                          "webhook.github.invalid_json"),
    "unknown connection": (lambda h: h.github_post(PR, path="/webhook-github/c/nobody"), 404,
                           "webhook.github.unknown_connection"),
    "no gitlab token": (lambda h: h.gitlab_post(MR, **{"X-Gitlab-Token": None}), 401,
                        "webhook.gitlab.missing_signature"),
    "wrong gitlab token": (lambda h: h.gitlab_post(MR, token=b"not-the-gitlab-token"), 401,
                           "webhook.gitlab.invalid_signature"),
    "gitlab signed format with a stale timestamp": (
        lambda h: h.gitlab_post(MR, **_stale_signed(h, MR)), 401,
        "webhook.gitlab.stale_timestamp"),
    "gitlab signed format with a wrong signature": (lambda h: h.gitlab_post(MR, **{
        "webhook-id": "msg_1", "webhook-timestamp": str(int(time.time())),
        "webhook-signature": "v1,AAAA", "X-Gitlab-Token": None}), 401,
        "webhook.gitlab.invalid_signature"),
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
    assert hooks.deliveries() == [] and hooks.published("github") == []
    assert hooks.published("gitlab") == []


def test_an_oversized_body_is_refused_with_nothing_read_beyond_the_cap(hooks, caplog):
    cap = registry.get("github").webhook.max_body_bytes
    declared = LazyBody(cap + 1)
    with caplog.at_level(logging.INFO):
        response = hooks.post("/webhook-github/", None, {"X-Hub-Signature-256": "sha256=00"},
                              input_stream=declared)
    assert (response.status_code, response.json["code"]) == (413, "webhook.github.too_large")
    assert declared.read_bytes == 0
    streamed = LazyBody(cap + 5 * 1024 * 1024)
    response = hooks.post("/webhook-github/", None, {"Transfer-Encoding": "chunked",
                                                     "X-Hub-Signature-256": "sha256=00"},
                          input_stream=streamed,
                          environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 413
    assert streamed.read_bytes == cap + 1
    assert webhook_keys(caplog) == ["webhook.github.too_large"] * 2
    assert hooks.deliveries() == [] and hooks.published("github") == []


def test_other_methods_and_paths_are_refused(hooks):
    assert hooks.stack.call("GET", "/webhook-github/").status_code == 405
    assert hooks.post("/webhook-github/elsewhere", b"{}", {}).status_code == 404
