"""Bitbucket Cloud repository webhooks as the simulator delivers them.

A hook is registered on a repository as its admin does (Repository settings → Webhooks, or
``POST /2.0/repositories/{workspace}/{repo_slug}/hooks``): a URL, the event keys it
subscribes to and an optional secret (:meth:`BitbucketHooks.add`). When a subscribed event
happens the simulator POSTs its payload to every active hook of the repository, with the
headers Bitbucket documents ("Event payloads", section "HTTP headers"): ``X-Event-Key``
(``pullrequest:comment_deleted``…), ``X-Hook-UUID``, ``X-Request-UUID`` (one per delivery),
``X-Attempt-Number`` (1), ``User-Agent: Bitbucket-Webhooks/2.0``, ``Content-Type:
application/json``; with a secret, ``X-Hub-Signature: sha256=<hex HMAC-SHA256 of the body>``
("Manage webhooks", section "Secure webhooks"). Without a secret nothing is signed.

Events delivered: ``pullrequest:comment_updated`` (a comment edited by the ``touch`` knob) and
``pullrequest:comment_deleted`` (the ``delete`` knob), each ``{"actor", "pullrequest",
"comment", "repository"}`` (a deleted comment as it was, ``deleted: true``). Not delivered:
``pullrequest:comment_created`` (the simulator's own comment POST sends nothing yet) and every
other event. Bitbucket sends no event for a deleted issue, issue comment or pull request, so
neither does the simulator. Every attempt is logged in
a :class:`~.delivery_log.DeliveryLog` (``log``), whose knob drops deliveries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from typing import Any

from keyway.simulators.delivery_log import Delivery, DeliveryLog
from keyway.simulators.hooks import Hook, HookStore

EVENTS = ("pullrequest:comment_updated", "pullrequest:comment_deleted")


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class BitbucketHooks:
    """The repositories' hooks (by lower-cased full name) and their delivery log."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.store = HookStore(1)
        self.log = DeliveryLog(clock)
        self.clock = clock

    def add(self, full_name: str, url: str, events: tuple[str, ...] = EVENTS,
            secret: str | None = None) -> Hook:
        """Register a hook on ``full_name``; its ``uuid`` (braced) is in ``options``."""
        unknown = set(events) - set(EVENTS)
        if unknown:
            raise ValueError(f"events the simulator does not send: {sorted(unknown)}")
        return self.store.add(full_name.lower(), url, secret or "", tuple(events), self.clock(),
                              uuid="{" + str(uuid.uuid4()) + "}")

    def deliver(self, full_name: str, event: str, payload: dict[str, Any]) -> list[Delivery]:
        """Send ``event`` to every active hook of ``full_name`` subscribed to it."""
        body = json.dumps(payload).encode()
        sent = []
        for hook in self.store.list(full_name.lower()):
            if not hook.active or event not in hook.events:
                continue
            request = str(uuid.uuid4())
            headers = {"X-Event-Key": event, "X-Hook-UUID": hook.options["uuid"],
                       "X-Request-UUID": request, "X-Attempt-Number": "1",
                       "User-Agent": "Bitbucket-Webhooks/2.0",
                       "Content-Type": "application/json"}
            if hook.secret:
                headers["X-Hub-Signature"] = signature(hook.secret, body)
            sent.append(self.log.send(hook=hook.options["uuid"], url=hook.url, guid=request,
                                      event=event, action=None, payload=payload, body=body,
                                      headers=headers))
        return sent
