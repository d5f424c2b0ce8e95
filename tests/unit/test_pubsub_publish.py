"""The Pub/Sub adapter's publish against a publisher that fails as the client library does: an
ordered publish that failed pauses its key until ``resume_publish``; every attempt is bounded;
what is left after one more try is a keyway error, which an HTTP function answers 503 with
``Retry-After`` (the emulator test, ``tests/integration/test_pubsub_outage.py``, stops a real
emulator)."""

from __future__ import annotations

from concurrent.futures import Future

import pytest
from google.api_core import exceptions as gexc
from google.cloud.pubsub_v1.publisher import exceptions as pub_exc

from shared import messages
from shared.adapters.gcp.pubsub_bus import PubSubMessageBus
from shared.errors import NotFound, UnavailableError
from shared.http import problem_from_error


class Publisher:
    """The publisher's publish / resume_publish / topic_path, failing ``failures`` times; a key
    whose publish failed stays paused (refused) until it is resumed, as the library's is."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures, self.paused, self.calls, self.resumed = list(failures), set(), [], []

    def topic_path(self, project: str, topic: str) -> str:
        return f"projects/{project}/topics/{topic}"

    def publish(self, path: str, data: bytes, ordering_key: str = "", **kwargs) -> Future:
        self.calls.append((ordering_key, kwargs.get("retry", "default"), kwargs.get("timeout")))
        future: Future = Future()
        if ordering_key in self.paused:
            future.set_exception(pub_exc.PublishToPausedOrderingKeyException(ordering_key))
        elif self.failures:
            future.set_exception(self.failures.pop(0))
            if ordering_key:
                self.paused.add(ordering_key)
        else:
            future.set_result(f"id-{len(self.calls)}")
        return future

    def resume_publish(self, path: str, ordering_key: str) -> None:
        if ordering_key not in self.paused:
            raise RuntimeError("Ordering key is not paused.")
        self.paused.discard(ordering_key)
        self.resumed.append(ordering_key)


def bus(publisher: Publisher) -> PubSubMessageBus:
    return PubSubMessageBus("p", publisher=publisher, subscriber=object())


def test_a_failed_ordered_publish_resumes_its_key_and_is_tried_once_more() -> None:
    publisher = Publisher(gexc.ServiceUnavailable("down"))
    assert bus(publisher).publish("t", b"x", ordering_key="conn-1") == "id-2"
    assert publisher.resumed == ["conn-1"]
    assert all(retry is None and timeout for _, retry, timeout in publisher.calls)  # bounded


def test_a_second_failure_is_unavailable_and_leaves_the_key_accepting() -> None:
    publisher = Publisher(gexc.ServiceUnavailable("down"), gexc.ServiceUnavailable("down"))
    with pytest.raises(UnavailableError):
        bus(publisher).publish("t", b"x", ordering_key="conn-1")
    assert publisher.paused == set()  # resumed after each failure
    assert bus(publisher).publish("t", b"y", ordering_key="conn-1") == "id-3"


def test_the_clients_own_refusal_becomes_a_retryable_error_not_a_500() -> None:
    publisher = Publisher(AssertionError("Publish after stop() or publish error."),
                          RuntimeError("Cannot publish on a stopped sequencer."))
    with pytest.raises(UnavailableError):
        bus(publisher).publish("t", b"x")
    assert len(publisher.calls) == 2


def test_a_missing_topic_is_not_tried_again() -> None:
    publisher = Publisher(gexc.NotFound("no topic"))
    with pytest.raises(NotFound):
        bus(publisher).publish("t", b"x", ordering_key="conn-1")
    assert len(publisher.calls) == 1 and publisher.paused == set()


class TopicGone:
    def publish(self, *args, **kwargs) -> str:
        raise NotFound("pubsub.publish: not found")


def test_a_missing_topic_reaches_callers_as_retryable_and_http_as_503_with_retry_after() -> None:
    with pytest.raises(UnavailableError) as caught:
        messages.publish(TopicGone(), "api", "sync-requests-github", "sync.requested",
                         {"tenant": "t", "connection": "c"}, ordering_key="c")
    assert caught.value.key == "bus.topic_missing"
    response = problem_from_error(caught.value)
    assert (response.status_code, response.headers["Retry-After"]) == (503, "30")
    assert "Retry-After" not in problem_from_error(NotFound("no such connection")).headers


class Api:
    """The generated publisher API's ``publish``: fails ``failures`` times, then answers."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures, self.calls = list(failures), []

    def publish(self, *, topic: str, messages: list, retry: object, timeout: float):
        self.calls.append((topic, [(m.data, dict(m.attributes)) for m in messages], retry,
                           timeout))
        if self.failures:
            raise self.failures.pop(0)
        return type("Response", (), {"message_ids": [f"rpc-{len(self.calls)}"]})()


def test_an_unordered_message_is_one_bounded_rpc_and_an_ordered_one_uses_the_client() -> None:
    api, publisher = Api(), Publisher()
    direct = PubSubMessageBus("p", publisher=publisher, subscriber=object(), api=api)
    assert direct.publish("t", b"x", {"a": "1"}) == "rpc-1"
    assert api.calls == [("projects/p/topics/t", [(b"x", {"a": "1"})], None, 10.0)]
    assert direct.publish("t", b"y", ordering_key="conn-1") == "id-1"  # the sequencer's path
    assert len(api.calls) == 1 and publisher.calls[0][0] == "conn-1"


def test_an_unordered_rpc_that_fails_is_tried_once_more_then_unavailable() -> None:
    api = Api(gexc.ServiceUnavailable("down"))
    direct = PubSubMessageBus("p", publisher=Publisher(), subscriber=object(), api=api)
    assert direct.publish("t", b"x") == "rpc-2"
    api = Api(gexc.ServiceUnavailable("down"), gexc.DeadlineExceeded("slow"))
    direct = PubSubMessageBus("p", publisher=Publisher(), subscriber=object(), api=api)
    with pytest.raises(UnavailableError):
        direct.publish("t", b"x")
    missing = Api(gexc.NotFound("no topic"))
    with pytest.raises(NotFound):
        PubSubMessageBus("p", publisher=Publisher(), subscriber=object(),
                         api=missing).publish("t", b"x")
    assert len(missing.calls) == 1  # a missing topic is not tried again
