"""Entry-point factories shared by every ``functions/<name>/main.py``.

An HTTPS function's ``serve`` maps keyway errors to problem+json; a Pub/Sub function's
``receive`` applies the handler contract of :class:`shared.ports.MessageBus`:

* return → the message is acknowledged;
* ``PermanentError`` (bad message, policy refusal) → logged with its stable key, acknowledged;
* anything else → raised, so Pub/Sub redelivers with backoff and, after the subscription's
  max attempts, dead-letters it (replayable with ``keyway bus replay``).

A message type with no handler yet is treated as retryable (``message.unhandled_type``) so it
ends in the dead-letter topic instead of being dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from shared import bootstrap, messages
from shared.acting import acting_as
from shared.errors import KeywayError, NotImplementedYet, PermanentError, RetryableError
from shared.http import problem_from_error
from shared.log import configure, get_logger
from shared.ports import Ports

log = get_logger("keyway.entry")
EventHandler = Callable[[Ports, messages.Inbound], None]
HttpHandler = Callable[[Ports, Any], Any]


class UnhandledMessage(RetryableError):
    key, title = "message.unhandled_type", "No handler for this message type"


def _ports() -> Ports:
    ports = bootstrap.ports()
    configure()
    return ports


def event_function(component: str, handlers: Mapping[str, EventHandler]) -> Callable[[Any], None]:
    """Build ``receive(cloud_event)`` for a Pub/Sub-triggered ``component``."""

    def receive(cloud_event: Any) -> None:
        fields: dict[str, Any] = {"component": component, "event_id": cloud_event["id"]}
        try:
            inbound = messages.decode_cloud_event(component, cloud_event)
            fields.update(message_id=inbound.message_id, type=inbound.type, topic=inbound.topic)
            handler = handlers.get(inbound.type)
            if handler is None:
                raise UnhandledMessage(f"{component} has no handler for {inbound.type}")
            with acting_as(component):
                handler(_ports(), inbound)
        except PermanentError as e:
            log.warning(e.key, extra={"fields": {**fields, "detail": e.detail}})
            return
        except KeywayError as e:
            log.error(e.key, extra={"fields": {**fields, "detail": e.detail}})
            raise
        log.info("message.handled", extra={"fields": fields})

    return receive


def http_function(component: str, handler: HttpHandler | None = None) -> Callable[[Any], Any]:
    """Build ``serve(request)`` for an HTTPS ``component``; without a handler every path is 501."""

    def serve(request: Any) -> Any:
        try:
            if handler is None:
                raise NotImplementedYet(f"{component} is not available yet")
            with acting_as(component):
                return handler(_ports(), request)
        except KeywayError as e:
            level = log.error if e.status >= 500 and e.status != 501 else log.info
            level(e.key, extra={"fields": {"component": component, "path": request.path}})
            return problem_from_error(e)

    return serve
