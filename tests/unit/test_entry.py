"""The Pub/Sub handler contract at the function boundary: policy first, then the handler;
permanent errors are acknowledged with a stable log key, everything else is redelivered."""

from __future__ import annotations

import base64
import json
import logging

import pytest
from cloudevents.http import CloudEvent

from shared import bootstrap, messages
from shared.entry import UnhandledMessage, event_function, http_function
from shared.errors import InvalidInput, RetryableError


@pytest.fixture(autouse=True)
def local_state(tmp_path, monkeypatch):
    monkeypatch.setenv("KEYWAY_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("KEYWAY_BACKEND", raising=False)
    bootstrap.config.cache_clear()
    yield
    bootstrap._cached.cache_clear()
    bootstrap.config.cache_clear()


def pubsub_event(topic: str, sender: str, type_: str, body: dict, *, raw: str | None = None):
    data, attributes = messages.encode(sender, type_, body)
    message = {"data": raw if raw is not None else base64.b64encode(data).decode(),
               "attributes": attributes, "messageId": "m-1"}
    return CloudEvent({"type": "google.cloud.pubsub.topic.v1.messagePublished",
                       "source": f"//pubsub.googleapis.com/projects/keyway-local/topics/{topic}",
                       "id": "e-1"}, {"message": message})


def test_an_allowed_message_reaches_its_handler():
    seen = []
    receive = event_function("scheduler", {"refresh.tick": lambda ports, m: seen.append(m)})
    receive(pubsub_event("refresh-ticks", "cloud-scheduler", "refresh.tick", {"tick_time": "x"}))
    assert [(m.type, m.sender, m.body) for m in seen] == [
        ("refresh.tick", "cloud-scheduler", {"tick_time": "x"})]


def test_a_forged_sender_is_acknowledged_unhandled_with_a_stable_key(caplog):
    seen = []
    receive = event_function("vault-github", {"sync.requested": lambda p, m: seen.append(m)})
    with caplog.at_level(logging.WARNING):
        receive(pubsub_event("sync-requests-github", "webhook-github", "sync.requested", {}))
    assert seen == []
    assert "policy.delivery_refused" in caplog.messages


def test_a_message_on_another_components_topic_is_refused(caplog):
    seen = []
    receive = event_function("fetch-github", {"fetch.job": lambda p, m: seen.append(m)})
    with caplog.at_level(logging.WARNING):
        receive(pubsub_event("fetch-jobs-gitlab", "vault-gitlab", "fetch.job", {}))
    assert seen == [] and "policy.delivery_refused" in caplog.messages


def test_malformed_data_is_acknowledged_with_a_stable_key(caplog):
    receive = event_function("scheduler", {"refresh.tick": lambda p, m: None})
    with caplog.at_level(logging.WARNING):
        receive(pubsub_event("refresh-ticks", "cloud-scheduler", "refresh.tick", {}, raw="%%%"))
    assert "message.malformed" in caplog.messages


def test_a_retryable_failure_is_raised_so_pubsub_redelivers():
    def flaky(ports, message):
        raise RetryableError("store down")

    receive = event_function("scheduler", {"refresh.tick": flaky})
    with pytest.raises(RetryableError):
        receive(pubsub_event("refresh-ticks", "cloud-scheduler", "refresh.tick", {}))


def test_a_permanent_failure_is_acknowledged(caplog):
    def bad(ports, message):
        raise InvalidInput("nope", key="scheduler.bad_tick")

    receive = event_function("scheduler", {"refresh.tick": bad})
    with caplog.at_level(logging.WARNING):
        assert receive(pubsub_event("refresh-ticks", "cloud-scheduler", "refresh.tick", {})) is None
    assert "scheduler.bad_tick" in caplog.messages


def test_an_allowed_type_without_a_handler_is_kept_for_the_dead_letter_topic():
    receive = event_function("scheduler", {})
    with pytest.raises(UnhandledMessage) as caught:
        receive(pubsub_event("refresh-ticks", "cloud-scheduler", "refresh.tick", {}))
    assert caught.value.retryable


def test_a_type_the_policy_table_does_not_name_is_refused(caplog):
    seen = []
    receive = event_function("scheduler", {"refresh.tock": lambda p, m: seen.append(m)})
    with caplog.at_level(logging.WARNING):
        receive(pubsub_event("refresh-ticks", "cloud-scheduler", "refresh.tock", {}))
    assert seen == [] and "policy.delivery_refused" in caplog.messages


def test_an_unbuilt_https_function_answers_501_problem_json():
    import flask

    serve = http_function("api")
    with flask.Flask("t").test_request_context("/api/v1/connections"):
        response = serve(flask.request)
    assert response.status_code == 501
    assert response.mimetype == "application/problem+json"
    body = json.loads(response.get_data())
    assert body["status"] == 501 and body["code"] == "not_implemented"
