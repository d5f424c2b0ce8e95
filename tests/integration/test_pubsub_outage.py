"""The bus goes away under the HTTP functions (emulator backend): the Pub/Sub emulator this test
started is stopped by its process, and a webhook delivery and an API "sync now" are answered
503 with ``Retry-After`` — never 404, never a 500 — with nothing kept that would refuse the
retry; once it is back, the same webhook delivery and a publish with the same ordering key go
through."""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import UTC, datetime

import pytest

from keyway import emulators as emu
from shared import policy
from shared.clock import isoformat
from shared.errors import UnavailableError
from shared.topology import subscription_specs
from tests.integration.conftest import _reset_caches, build_stack
from tests.integration.test_webhooks import github_signature

pytestmark = pytest.mark.emulator
CONNECTION = "conn-1"


@pytest.fixture
def own_pubsub(tmp_path, emulator_hosts):
    """A Pub/Sub emulator of this test's own (the session's Firestore emulator is shared)."""
    try:
        started = emu.start_one("pubsub", tmp_path / "pubsub")
    except emu.EmulatorUnavailable as e:
        pytest.skip(f"emulator unavailable: {e}")
    holder = {"emulator": started}
    yield holder
    holder["emulator"].stop()


@pytest.fixture
def stack(tmp_path, monkeypatch, leak_guard, emulator_hosts, own_pubsub, unique_project):
    env = {"KEYWAY_BACKEND": "emulator", "KEYWAY_PROJECT": unique_project,
           "FIRESTORE_EMULATOR_HOST": emulator_hosts["FIRESTORE_EMULATOR_HOST"],
           "PUBSUB_EMULATOR_HOST": own_pubsub["emulator"].host}
    built = build_stack(tmp_path, monkeypatch, leak_guard, backend_env=env)
    built.ports.business.put("connections", CONNECTION, {
        "tenant": "t-1", "provider": "github", "status": "active",
        "next_sync_at": isoformat(datetime.now(UTC)), "interval_seconds": 900})
    yield built
    _reset_caches()


def webhook(stack, delivery: str):
    body = json.dumps({"action": "opened", "number": 1}).encode()
    secret = stack.leak_guard.track(stack.ports.secrets.access("github-webhook-secret"))
    signature = stack.leak_guard.track(github_signature(secret, body))
    return stack.client.post("/webhook-github/", data=body, headers={
        "X-GitHub-Event": "pull_request", "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": signature, "Content-Type": "application/json"})


def sync_now(stack, token: str):
    return stack.call("POST", f"/api/v1/connections/{CONNECTION}/sync", token)


def unavailable(response) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert int(response.headers["Retry-After"]) > 0


def waiting(stack, topic: str) -> list:
    got: list = []
    stack.ports.bus.pull(policy.subscription_name(topic), got.append, max_messages=10)
    return got


def test_a_bus_outage_answers_503_with_retry_after_and_the_same_key_publishes_after(
        stack, own_pubsub):
    token = stack.token("t-1", "u-1", "admin")
    assert sync_now(stack, token).status_code == 202  # the bus is up: published
    assert len(waiting(stack, "sync-requests-github")) == 1
    emulator = own_pubsub["emulator"]
    os.killpg(emulator.process.pid, signal.SIGKILL)  # the emulator this test started
    emulator.process.wait(timeout=30)
    began = time.monotonic()
    unavailable(webhook(stack, "d-outage"))
    unavailable(sync_now(stack, token))  # ordering key conn-1: failed, and resumed
    with pytest.raises(UnavailableError):
        stack.ports.bus.publish("sync-requests-github", b"{}", {"type": "x"},
                                ordering_key=CONNECTION)
    assert time.monotonic() - began < 60  # bounded: no caller is held while it retries
    host, port = emulator.host.rsplit(":", 1)
    own_pubsub["emulator"] = emu.start_one("pubsub", emulator.log_path.parent, int(port))
    for spec in subscription_specs():  # the emulator keeps nothing across a restart
        stack.ports.bus.ensure_subscription(spec)
    assert sync_now(stack, token).status_code == 202  # the same ordering key goes through
    accepted = webhook(stack, "d-outage")  # the provider's retry is not taken for a duplicate
    assert (accepted.status_code, accepted.json["status"]) == (202, "accepted")
    assert len(waiting(stack, "sync-requests-github")) == 1
    assert len(waiting(stack, "events-github")) == 1
