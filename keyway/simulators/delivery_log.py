"""A provider's log of webhook delivery attempts, and the knob that drops deliveries
(provider-neutral; :mod:`.github_deliveries` and :mod:`.jira_hooks` serve it in their shapes).

Every attempt a simulator makes to deliver a webhook goes through :meth:`DeliveryLog.send`:
it POSTs over real HTTP (no redirects, as the providers do) unless the drop knob says this
attempt is lost, and records the attempt either way — a dropped one as the provider logs a
failed attempt (``status_code`` 503, ``Invalid HTTP Response: 503``, nothing reached the
receiver). The knob: :meth:`DeliveryLog.drop_next` (the next ``n`` attempts) and
:meth:`DeliveryLog.drop_fraction` (each attempt with probability ``fraction`` from a seeded
``random.Random``, so a test's drops are the same on every run).

A record keeps what the providers' logs show: the delivery's own ``id`` (increasing), the
``guid`` the receiver saw as the delivery id (GitHub's ``X-GitHub-Delivery``, Jira's
``X-Atlassian-Webhook-Identifier``; a redelivery keeps it), the hook it was for, event,
action, status, when, whether it was a redelivery, the request's headers and payload and the
response's. The ``X-Hub-Signature-256``/``Authorization`` headers are kept out of the record
(GitHub shows request headers in its log; a test never needs the signature back).
"""

from __future__ import annotations

import itertools
import json
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from keyway.simulators.hooks import post

DROPPED_STATUS = 503
_PRIVATE_HEADERS = frozenset({"authorization", "x-hub-signature-256", "x-hub-signature"})


@dataclass
class Delivery:
    """One delivery attempt as the provider logged it."""

    id: int
    guid: str
    hook: str  # which hook: "app", a repository hook id, a Jira app
    url: str
    event: str
    action: str | None
    status_code: int
    status: str
    delivered_at: float
    duration: float
    redelivery: bool
    payload: dict[str, Any]
    request_headers: dict[str, str]
    response_headers: dict[str, str] | None
    response_body: str | None
    extra: dict[str, Any] = field(default_factory=dict)  # installation_id, repository_id, …
    answer: requests.Response | None = field(default=None, repr=False)  # None: dropped

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def dropped(self) -> bool:
        return self.response_headers is None


class DeliveryLog:
    """Delivery attempts, newest last; thread-safe. ``clock`` is epoch seconds."""

    def __init__(self, clock: Callable[[], float], first_id: int = 1) -> None:
        self.clock = clock
        self._ids = itertools.count(first_id)
        self._records: list[Delivery] = []
        self._drop_next = 0
        self._fraction = 0.0
        self._random = random.Random(0)
        self._lock = threading.Lock()

    # ---- the knob ----------------------------------------------------------------------------
    def drop_next(self, count: int) -> None:
        """The next ``count`` attempts are lost (logged as failed; nothing is sent)."""
        with self._lock:
            self._drop_next = count

    def drop_fraction(self, fraction: float, seed: int = 0) -> None:
        """Lose each attempt with probability ``fraction`` (seeded: the same drops each run)."""
        with self._lock:
            self._fraction, self._random = fraction, random.Random(seed)

    def _drops(self) -> bool:
        with self._lock:
            if self._drop_next > 0:
                self._drop_next -= 1
                return True
            return self._fraction > 0 and self._random.random() < self._fraction

    # ---- attempts ----------------------------------------------------------------------------
    def send(self, *, hook: str, url: str, guid: str, event: str, action: str | None,
             payload: dict[str, Any], body: bytes, headers: dict[str, str],
             redelivery: bool = False, **extra: Any) -> Delivery:
        """Attempt one delivery of ``body`` to ``url`` and log it (see the module docstring)."""
        started, answer = self.clock(), None
        if self._drops():
            status_code, status, answer_headers, answer_body = (
                DROPPED_STATUS, f"Invalid HTTP Response: {DROPPED_STATUS}", None, None)
        else:
            try:
                answer = post(url, body, headers)
                status_code, answer_headers = answer.status_code, dict(answer.headers)
                answer_body = answer.text[:4096]
                status = "OK" if answer.ok else f"Invalid HTTP Response: {status_code}"
            except requests.RequestException:
                status_code, status, answer_headers, answer_body = 0, "failed to connect", {}, ""
        shown = {k: v for k, v in headers.items() if k.lower() not in _PRIVATE_HEADERS}
        record = Delivery(0, guid, hook, url, event, action, status_code, status, started,
                          max(self.clock() - started, 0.0), redelivery,
                          json.loads(json.dumps(payload)), shown, answer_headers, answer_body,
                          dict(extra), answer)
        with self._lock:
            record.id = next(self._ids)
            self._records.append(record)
        return record

    def records(self, hook: str | None = None) -> list[Delivery]:
        """Every attempt (of ``hook``), oldest first."""
        with self._lock:
            return [r for r in self._records if hook is None or r.hook == hook]

    def get(self, delivery_id: int) -> Delivery | None:
        with self._lock:
            return next((r for r in self._records if r.id == delivery_id), None)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
