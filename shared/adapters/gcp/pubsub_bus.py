"""Pub/Sub message bus: the GCP :class:`~shared.ports.MessageBus` (official ``pubsub_v1``).

Redelivery, backoff and dead-lettering are Pub/Sub's own: every subscription is created with a
``retry_policy`` (``min_backoff``/``max_backoff``), a ``dead_letter_policy`` (``max_attempts``,
which Pub/Sub requires to be 5..100 — :func:`shared.bus_ops.validate_spec` rejects anything
else on every adapter) and ``ack_deadline_seconds``. :meth:`PubSubMessageBus.pull` only applies
the handler contract: ack on return or ``PermanentError``, nack (ack deadline 0) on any other
exception, and nothing on a crash (the ack deadline runs out and Pub/Sub redelivers).
``Message.delivery_attempt`` is Pub/Sub's delivery attempt (1 where Pub/Sub reports none).
Pub/Sub dedupes nothing for us: a message may arrive twice, handlers are idempotent.

Dead letters: ``ensure_subscription`` also creates ``<dead_letter_topic>-hold`` so Pub/Sub has
somewhere to keep them; Pub/Sub adds ``CloudPubSubDeadLetterSource*`` attributes.

Publishing: a message without an ordering key is one ``Publish`` RPC made on the caller's
thread through the generated API client (no batch, commit thread or future per message — what
a webhook acknowledgement waits for). An ordered message goes through the publisher client
(ordering keys need its sequencer). Either way each attempt is one RPC bounded by
``_PUBLISH_TIMEOUT_S`` (with ordering enabled
the client would retry a transient failure forever, holding the caller — a webhook sender, an
API client — for as long). A failed attempt pauses its ordering key in the client, so the
adapter calls ``resume_publish(topic, ordering_key)``, as the library documents, and tries once
more; a second failure is raised as a keyway error (unavailable → ``UnavailableError``, which
HTTP functions answer with 503 and ``Retry-After``), its key resumed again so the next publish
of that key is accepted. A missing topic or a refused message is not tried again.

Ordering: the publisher has message ordering enabled; subscriptions get
``enable_message_ordering`` unless ``ordered_subscriptions=False``. Its default is on, except
when ``PUBSUB_EMULATOR_HOST`` is set: the emulator cannot dead-letter from an ordered
subscription (its ``OrderedMessageBacklog`` throws a NullPointerException on every later pull
of that subscription), and losing dead letters locally is worse than losing order.

Emulator notes: ids are 3-255 characters starting with a letter; the emulator forwards dead
letters lazily, during a pull of the source subscription, and applies its own backoff (about 2 s).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from google.cloud.pubsub_v1.publisher import client as publisher_client
from google.protobuf import duration_pb2

from shared.adapters.gcp._errors import boundary
from shared.bus_ops import (
    dispatch,
    hold_subscription,
    validate_message,
    validate_name,
    validate_spec,
)
from shared.errors import UnavailableError
from shared.ports import Handler, Message, SubscriptionSpec

# ``return_immediately`` is deprecated but it is what a synchronous, non-blocking pull needs.
warnings.filterwarnings(
    "ignore", message="The return_immediately flag is deprecated", category=DeprecationWarning
)

_PUBLISH_TIMEOUT_S = 10.0
_PULL_TIMEOUT_S = 30.0


class PubSubMessageBus:
    """Pub/Sub in ``project``. Clients are created here unless injected."""

    def __init__(
        self,
        project: str,
        *,
        publisher: Any = None,
        subscriber: Any = None,
        api: Any = None,
        ordered_subscriptions: bool | None = None,
    ) -> None:
        self._project = project
        self._publisher = publisher or pubsub_v1.PublisherClient(
            batch_settings=pubsub_v1.types.BatchSettings(max_messages=1),
            publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True),
        )
        # Unordered messages skip the client's batching machinery (a batch, a commit thread
        # and a future per message at max_messages=1): one Publish RPC from the caller's
        # thread, through the generated client the publisher client extends (what its
        # deprecated ``api`` property returns), or an injected stand-in.
        self._api = api if api is not None else (
            None if publisher is not None
            else super(publisher_client.Client, self._publisher))
        self._subscriber = subscriber or pubsub_v1.SubscriberClient()
        if ordered_subscriptions is None:
            ordered_subscriptions = not os.environ.get("PUBSUB_EMULATOR_HOST")
        self._ordered = ordered_subscriptions
        self._topics: dict[str, str] = {}  # subscription name -> topic name

    def close(self) -> None:
        """Release the gRPC channels (the bus is unusable afterwards)."""
        self._subscriber.close()
        self._publisher.stop()

    # -- topology -------------------------------------------------------------------------------
    def ensure_topic(self, topic: str) -> None:
        validate_name("topic", topic)
        with boundary("pubsub.ensure_topic"):
            try:
                self._publisher.create_topic(name=self._topic_path(topic))
            except gexc.AlreadyExists:
                pass

    def ensure_subscription(self, spec: SubscriptionSpec) -> None:
        """Create topic, dead-letter topic, ``<dlt>-hold`` and the subscription if missing.

        An existing subscription is left as it is (create is not update).
        """
        validate_spec(spec)
        self.ensure_topic(spec.topic)
        self.ensure_topic(spec.dead_letter_topic)
        dead_letter_path = self._topic_path(spec.dead_letter_topic)
        self._create_subscription({
            "name": self._sub_path(hold_subscription(spec.dead_letter_topic)),
            "topic": dead_letter_path,
        })
        request: dict[str, Any] = {
            "name": self._sub_path(spec.name),
            "topic": self._topic_path(spec.topic),
            "ack_deadline_seconds": spec.ack_deadline,
            "enable_message_ordering": self._ordered,
            "dead_letter_policy": {
                "dead_letter_topic": dead_letter_path,
                "max_delivery_attempts": spec.max_attempts,
            },
            "retry_policy": {
                "minimum_backoff": _duration(spec.min_backoff),
                "maximum_backoff": _duration(spec.max_backoff),
            },
        }
        if spec.push_endpoint:
            request["push_config"] = {"push_endpoint": spec.push_endpoint}
        self._create_subscription(request)

    def _create_subscription(self, request: dict[str, Any]) -> None:
        with boundary("pubsub.ensure_subscription"):
            try:
                self._subscriber.create_subscription(request=request)
            except gexc.AlreadyExists:
                pass

    # -- publish --------------------------------------------------------------------------------
    def publish(
        self,
        topic: str,
        data: bytes,
        attributes: Mapping[str, str] | None = None,
        ordering_key: str | None = None,
    ) -> str:
        """One message; a failed attempt is tried once more (see the module docstring)."""
        attrs = validate_message(data, attributes)
        path = self._topic_path(topic)
        once = self._publish_once if ordering_key or self._api is None else self._publish_rpc
        with boundary("pubsub.publish"):
            try:
                return once(path, bytes(data), attrs, ordering_key)
            except (gexc.NotFound, gexc.PermissionDenied, gexc.InvalidArgument):
                raise  # trying again cannot help
            except (gexc.GoogleAPIError, UnavailableError, OSError):
                pass
            return once(path, bytes(data), attrs, ordering_key)

    def _publish_rpc(self, path: str, data: bytes, attrs: Mapping[str, str],
                     ordering_key: str | None) -> str:
        """One attempt of an unordered message: one ``Publish`` RPC on the caller's thread,
        bounded in time (``retry=None``); the message id once Pub/Sub has it."""
        response = self._api.publish(
            topic=path, messages=[pubsub_v1.types.PubsubMessage(data=data, attributes=attrs)],
            retry=None, timeout=_PUBLISH_TIMEOUT_S)
        return str(response.message_ids[0])

    def _publish_once(self, path: str, data: bytes, attrs: Mapping[str, str],
                      ordering_key: str | None) -> str:
        """One attempt, bounded in time (``retry=None``: the client would otherwise retry an
        ordered publish forever). A failure pauses ``ordering_key`` in the client, which then
        refuses every later message of that key: it is resumed before raising."""
        try:
            future = self._publisher.publish(path, data, ordering_key=ordering_key or "",
                                             retry=None, timeout=_PUBLISH_TIMEOUT_S, **attrs)
            return future.result(timeout=_PUBLISH_TIMEOUT_S + 5)
        except BaseException as e:
            if ordering_key:
                self._resume(path, ordering_key)
            if isinstance(e, gexc.GoogleAPIError | ConnectionError | OSError):
                raise  # translated by boundary()
            if isinstance(e, Exception):  # the client's own refusals: paused key, stale batch
                raise UnavailableError(f"pubsub.publish: {type(e).__name__}") from e
            raise

    def _resume(self, path: str, ordering_key: str) -> None:
        """``resume_publish``, as the client library documents after an ordered publish error;
        a key that is not paused (the error did not pause it) needs nothing."""
        with suppress(RuntimeError, ValueError):
            self._publisher.resume_publish(path, ordering_key)

    # -- pull -----------------------------------------------------------------------------------
    def pull(self, subscription: str, handler: Handler, max_messages: int = 10) -> int:
        """Handle up to ``max_messages`` available messages (does not wait for more).

        After a failure, later messages of the batch with the same ordering key are nacked
        unseen, so a key's messages are never handled out of order.
        """
        path = self._sub_path(subscription)
        received = self._pull(path, max_messages)
        topic = self._topic_of(subscription) if received else ""
        delivered = handed = 0  # handed: taken from the batch (settled, or cut short by a crash)
        failed_keys: set[str] = set()
        try:
            for item in received:
                handed += 1
                key = item.message.ordering_key
                if key and key in failed_keys:
                    self._nack(path, [item.ack_id])
                    continue
                delivered += 1
                if dispatch(handler, _message(item, topic), subscription):
                    self._ack(path, [item.ack_id])
                else:
                    failed_keys.add(key)
                    self._nack(path, [item.ack_id])
        finally:
            unseen = [item.ack_id for item in received[handed:]]
            if unseen:  # after a crash: hand back at once what the handler never saw
                self._nack(path, unseen)
        return delivered

    def peek(self, subscription: str, max_messages: int = 10) -> list[Message]:
        """Pull then nack (deadline 0): the messages stay deliverable.

        On a subscription with a dead-letter policy a peek counts as a delivery attempt, so
        peek at ``-hold`` subscriptions (which have none), not at working subscriptions.
        """
        path = self._sub_path(subscription)
        received = self._pull(path, max_messages)
        if not received:
            return []
        self._nack(path, [item.ack_id for item in received])
        topic = self._topic_of(subscription)
        return [_message(item, topic) for item in received]

    def _pull(self, path: str, max_messages: int) -> list[Any]:
        with boundary("pubsub.pull"):
            response = self._subscriber.pull(
                request={"subscription": path, "max_messages": max_messages,
                         "return_immediately": True},
                timeout=_PULL_TIMEOUT_S,
            )
        return list(response.received_messages)

    def _ack(self, path: str, ack_ids: list[str]) -> None:
        with boundary("pubsub.ack"):
            self._subscriber.acknowledge(subscription=path, ack_ids=ack_ids)

    def _nack(self, path: str, ack_ids: list[str]) -> None:
        with boundary("pubsub.nack"):
            self._subscriber.modify_ack_deadline(
                subscription=path, ack_ids=ack_ids, ack_deadline_seconds=0)

    # -- names ----------------------------------------------------------------------------------
    def _topic_of(self, subscription: str) -> str:
        if subscription not in self._topics:
            with boundary("pubsub.get_subscription"):
                sub = self._subscriber.get_subscription(subscription=self._sub_path(subscription))
            self._topics[subscription] = sub.topic.rsplit("/", 1)[-1]
        return self._topics[subscription]

    def _topic_path(self, topic: str) -> str:
        return self._publisher.topic_path(self._project, topic)

    def _sub_path(self, subscription: str) -> str:
        return self._subscriber.subscription_path(self._project, subscription)


def _duration(seconds: float) -> duration_pb2.Duration:
    whole = int(seconds)
    return duration_pb2.Duration(seconds=whole, nanos=int(round((seconds - whole) * 1e9)))


def _message(item: Any, topic: str) -> Message:
    message = item.message
    return Message(
        topic=topic,
        data=bytes(message.data),
        attributes=dict(message.attributes),
        message_id=message.message_id,
        publish_time=datetime.fromtimestamp(message.publish_time.timestamp(), UTC),
        delivery_attempt=max(1, item.delivery_attempt),
        ordering_key=message.ordering_key or None,
    )
