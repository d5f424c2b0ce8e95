"""Inter-component messages: a JSON body plus ``type``/``version``/``sender`` attributes.

Publishing goes through :func:`publish`, which checks the component policy table first.
Receiving goes through :func:`decode_cloud_event`, which turns the CloudEvent that Pub/Sub
(through Eventarc, the emulator's push, or the local runner) delivers into an
:class:`Inbound` and checks the (receiver, topic, sender) triple against the same table.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared import policy
from shared.errors import InvalidInput, NotFound, UnavailableError
from shared.ports import MessageBus

ATTR_TYPE, ATTR_VERSION, ATTR_SENDER = "type", "version", "sender"
_TOPIC_SOURCE = re.compile(r"^//pubsub\.googleapis\.com/projects/[^/]+/topics/([^/]+)$")
MAX_BODY_BYTES = 1_000_000


@dataclass(frozen=True)
class Inbound:
    topic: str
    type: str
    version: int
    sender: str
    body: dict[str, Any]
    message_id: str


def encode(sender: str, type_: str, body: Mapping[str, Any],
           version: int = 1) -> tuple[bytes, dict[str, str]]:
    data = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    return data, {ATTR_TYPE: type_, ATTR_VERSION: str(version), ATTR_SENDER: sender}


def publish(bus: MessageBus, sender: str, topic: str, type_: str, body: Mapping[str, Any],
            *, version: int = 1, ordering_key: str | None = None) -> str:
    """Publish ``body`` as ``sender`` after the policy table allows it (``PolicyViolation``)."""
    data, attributes = encode(sender, type_, body, version)
    return publish_encoded(bus, topic, data, attributes, ordering_key=ordering_key)


def publish_encoded(bus: MessageBus, topic: str, data: bytes, attributes: Mapping[str, str],
                    *, ordering_key: str | None = None) -> str:
    """Publish what :func:`encode` made (for a caller that needed its size first), after the
    policy table allows the sender and type its attributes name (``PolicyViolation``). A bus
    that cannot take the message raises a retryable error (a missing topic too: it is
    retried, and an HTTP caller is answered 503, not 404)."""
    policy.check_publish(attributes[ATTR_SENDER], topic, attributes[ATTR_TYPE])
    try:
        return bus.publish(topic, data, attributes, ordering_key=ordering_key)
    except NotFound as e:  # a missing topic is ours to fix, never the caller's 404
        raise UnavailableError(f"topic {topic} is missing", key="bus.topic_missing") from e


def decode(topic: str, data: bytes, attributes: Mapping[str, str], message_id: str) -> Inbound:
    """Parse a message body and attributes; malformed input raises ``InvalidInput``."""
    if len(data) > MAX_BODY_BYTES:
        raise InvalidInput("message body too large", key="message.too_large")
    try:
        body = json.loads(data)
        version = int(attributes.get(ATTR_VERSION, ""))
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("message is not JSON with an integer version",
                           key="message.malformed") from None
    type_, sender = attributes.get(ATTR_TYPE), attributes.get(ATTR_SENDER)
    if not isinstance(body, dict) or not type_ or not sender:
        raise InvalidInput("message lacks a JSON object body, type or sender",
                           key="message.malformed")
    return Inbound(topic, type_, version, sender, body, message_id)


def decode_cloud_event(receiver: str, event: Any) -> Inbound:
    """Turn a Pub/Sub CloudEvent into an :class:`Inbound` the policy table allows."""
    match = _TOPIC_SOURCE.match(str(event["source"]))
    message = (event.data or {}).get("message") if isinstance(event.data, dict) else None
    if not match or not isinstance(message, dict):
        raise InvalidInput("not a Pub/Sub CloudEvent", key="message.not_pubsub")
    try:
        data = base64.b64decode(message.get("data") or "", validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("message data is not base64", key="message.malformed") from None
    inbound = decode(match.group(1), data, message.get("attributes") or {},
                     str(message.get("messageId") or event["id"]))
    policy.check_delivery(receiver, inbound.topic, inbound.sender, inbound.type)
    return inbound
