"""Helpers shared by every :class:`~shared.ports.MessageBus`: validation, the handler contract,
and the operator tools for dead letters.

Dead letters. ``ensure_subscription`` also creates, on the subscription's dead-letter topic, a
holding subscription named ``<dead_letter_topic>-hold`` (:func:`hold_subscription`) so dead
letters are retained (a topic without subscriptions keeps nothing, on Pub/Sub and on the
embedded bus alike). :func:`list_dead_letters` peeks at it; :func:`replay_dead_letters` moves its
messages back onto the subscription's topic.

A dead letter carries the original payload and attributes plus bookkeeping attributes naming
the source subscription and the number of delivery attempts: ``keyway_*`` on the embedded bus,
``CloudPubSubDeadLetterSource*`` on Pub/Sub. :func:`dead_letter_source` reads either.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from shared.errors import InvalidInput, PermanentError, RetryableError
from shared.log import get_logger
from shared.ports import Handler, Message, MessageBus, SubscriptionSpec

log = get_logger(__name__)

#: Attributes the embedded bus adds to a dead letter.
DEAD_LETTER_SOURCE = "keyway_dead_letter_source_subscription"
DEAD_LETTER_ATTEMPTS = "keyway_delivery_attempts"
#: The same facts as Pub/Sub names them when it forwards a dead letter.
_PUBSUB_SOURCE = "CloudPubSubDeadLetterSourceSubscription"
_PUBSUB_ATTEMPTS = "CloudPubSubDeadLetterSourceDeliveryCount"
#: Attribute prefixes reserved for bus bookkeeping; replay strips them.
_BOOKKEEPING_PREFIXES = ("keyway_", "CloudPubSubDeadLetter")
#: Keyword names of ``PublisherClient.publish``: as attribute keys they would be misread.
_RESERVED_ATTRIBUTES = frozenset({"topic", "data", "ordering_key", "retry", "timeout"})

# Pub/Sub's rule for topic and subscription ids, enforced on every adapter so a name that works
# locally also works in production.
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}")


def hold_subscription(dead_letter_topic: str) -> str:
    """Name of the subscription that retains the dead letters of ``dead_letter_topic``."""
    return f"{dead_letter_topic}-hold"


def validate_name(kind: str, name: str) -> None:
    """Topic/subscription ids: 3-255 chars, start with a letter, not ``goog…`` (Pub/Sub rules)."""
    if not _NAME.fullmatch(name) or name.lower().startswith("goog"):
        raise InvalidInput(f"invalid {kind} name {name!r}")


def validate_spec(spec: SubscriptionSpec) -> None:
    """Reject specs Pub/Sub would reject, on every adapter.

    Pub/Sub limits: ``max_attempts`` 5..100, ``ack_deadline`` 10..600 s, backoffs 0..600 s with
    ``min_backoff <= max_backoff``. Values are validated, never clamped, so a spec means the
    same thing everywhere.
    """
    for kind, name in (("subscription", spec.name), ("topic", spec.topic),
                       ("topic", spec.dead_letter_topic)):
        validate_name(kind, name)
    validate_name("subscription", hold_subscription(spec.dead_letter_topic))
    if spec.dead_letter_topic == spec.topic:
        raise InvalidInput("dead_letter_topic must differ from topic")
    if not 5 <= spec.max_attempts <= 100:
        raise InvalidInput("max_attempts must be between 5 and 100 (Pub/Sub's range)")
    if not 10 <= spec.ack_deadline <= 600:
        raise InvalidInput("ack_deadline must be between 10 and 600 seconds")
    if not 0 <= spec.min_backoff <= spec.max_backoff <= 600:
        raise InvalidInput("need 0 <= min_backoff <= max_backoff <= 600 seconds")


def validate_message(data: bytes, attributes: Mapping[str, str] | None) -> dict[str, str]:
    """A ``dict`` copy of ``attributes``; rejects what Pub/Sub (or its client) cannot carry."""
    result = dict(attributes or {})
    if not data and not result:
        raise InvalidInput("a message needs data or attributes")
    for key, value in result.items():
        if not isinstance(key, str) or not isinstance(value, str) or not key:
            raise InvalidInput("message attributes must be non-empty str keys with str values")
        if key in _RESERVED_ATTRIBUTES or key.lower().startswith("goog"):
            raise InvalidInput(f"message attribute name {key!r} is reserved")
    return result


def dispatch(handler: Handler, message: Message, subscription: str) -> bool:
    """Run ``handler`` under the bus contract. ``True``: acknowledge; ``False``: redeliver.

    ``PermanentError`` is logged under ``bus.permanent_failure`` (ids only, never the payload)
    and acknowledged; any other ``Exception`` means "redeliver". ``BaseException`` (a crash,
    ``KeyboardInterrupt``) propagates: the message stays leased and comes back when the lease
    (ack deadline) runs out.
    """
    fields = {"subscription": subscription, "topic": message.topic,
              "message_id": message.message_id, "delivery_attempt": message.delivery_attempt}
    try:
        handler(message)
    except PermanentError as e:
        log.warning("bus.permanent_failure", extra={"fields": {**fields, "error_key": e.key}})
        return True
    except Exception as e:  # noqa: BLE001 - the contract: anything else is retried
        key = getattr(e, "key", type(e).__name__)
        log.warning("bus.handler_failed", extra={"fields": {**fields, "error_key": key}})
        return False
    return True


def original_attributes(attributes: Mapping[str, str]) -> dict[str, str]:
    """``attributes`` without the bus's dead-letter bookkeeping."""
    return {k: v for k, v in attributes.items() if not k.startswith(_BOOKKEEPING_PREFIXES)}


def dead_letter_source(message: Message) -> tuple[str | None, int | None]:
    """``(source subscription, delivery attempts)`` of a dead letter, on any adapter."""
    attrs = message.attributes
    source = attrs.get(DEAD_LETTER_SOURCE) or attrs.get(_PUBSUB_SOURCE)
    attempts = attrs.get(DEAD_LETTER_ATTEMPTS) or attrs.get(_PUBSUB_ATTEMPTS)
    return source, int(attempts) if attempts else None


def list_dead_letters(bus: MessageBus, spec: SubscriptionSpec,
                      max_messages: int = 10) -> list[Message]:
    """Dead letters waiting on ``spec``'s dead-letter topic, left in place (``peek``)."""
    return bus.peek(hold_subscription(spec.dead_letter_topic), max_messages)


def replay_dead_letters(bus: MessageBus, spec: SubscriptionSpec, max_messages: int = 10) -> int:
    """Move up to ``max_messages`` dead letters back onto ``spec.topic``; returns how many.

    Each dead letter is republished (payload, original attributes, ordering key) and only then
    acknowledged on the hold subscription. At-least-once: a crash between the two republishes
    it again on the next replay, so handlers must tolerate duplicates (dedupe on a business key
    carried in the payload or attributes; the republished message gets a new message id).
    Dead letters of every subscription sharing the dead-letter topic go to ``spec.topic``, so
    give each subscription its own dead-letter topic. A dead letter that cannot be republished
    stays on the hold subscription (even a ``PermanentError`` such as a missing topic is
    turned into a retry here: replay never drops a dead letter).
    """
    replayed = 0

    def republish(message: Message) -> None:
        nonlocal replayed
        try:
            bus.publish(spec.topic, message.data, original_attributes(message.attributes),
                        message.ordering_key)
        except PermanentError as e:
            raise RetryableError(f"replay to {spec.topic!r} failed: {e.key}") from e
        replayed += 1
        log.info("bus.dead_letter_replayed", extra={"fields": {
            "topic": spec.topic, "dead_letter_message_id": message.message_id}})

    bus.pull(hold_subscription(spec.dead_letter_topic), republish, max_messages)
    return replayed
