"""A tenant's webhook subscriptions: where keyway sends which events, and their secrets.

``notification_subscriptions/<id>`` holds ``tenant``, ``url``, ``events``, ``created_at`` and
``created_by`` — never the secret. The signing secret (``kwsec_`` + 43 URL-safe characters,
256 random bits) is the Secret Manager secret ``notify-secret-<id>`` (:func:`secret_name`),
written by the api through the secrets port when the subscription is made, shown once in that
answer, read by ``notify`` for every delivery and deleted with the subscription.

A URL must pass the same SSRF guard as provider hosts (:func:`shared.providers.ssrf.
check_base_url`): https only, no credentials, query or fragment, every address public —
loopback (and http to it) only in local mode. It is checked here, at registration, and again
by the egress door at every delivery.
"""

from __future__ import annotations

import secrets as random
from typing import Any

from shared.clock import isoformat
from shared.errors import Conflict, InvalidInput, NotFound
from shared.notify.events import TYPES
from shared.ports import Filter, Ports
from shared.providers import ssrf

COLLECTION = "notification_subscriptions"
SECRET_PREFIX = "notify-secret-"  # noqa: S105 - a name prefix, not a value
MAX_PER_TENANT = 20
MAX_URL = 2048
VIEW_KEYS = ("url", "events", "created_at", "created_by")


def secret_name(subscription: str) -> str:
    return f"{SECRET_PREFIX}{subscription}"


def _events(value: Any) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise InvalidInput("events must be a non-empty list of event types",
                           key="subscription.invalid_events")
    unknown = sorted({v for v in value if v not in TYPES})
    if unknown:
        raise InvalidInput(f"unknown event type {unknown[0][:64]!r}; known: "
                           + ", ".join(TYPES), key="subscription.unknown_event")
    return sorted(set(value))


def _url(value: Any, local_mode: bool) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_URL:
        raise InvalidInput("url must be an https URL of at most 2048 characters",
                           key="subscription.invalid_url")
    return ssrf.check_base_url(value, local_mode=local_mode)


def create(ports: Ports, tenant: str, user: str, body: dict[str, Any], *,
           local_mode: bool) -> dict[str, Any]:
    """Validate, store the secret, then the subscription; the view with the secret (once)."""
    events, url = _events(body.get("events")), _url(body.get("url"), local_mode)
    if len(ports.business.query(COLLECTION, [Filter("tenant", "==", tenant)],
                                limit=MAX_PER_TENANT)) >= MAX_PER_TENANT:
        raise Conflict(f"a tenant has at most {MAX_PER_TENANT} subscriptions",
                       key="subscription.limit")
    subscription = "sub_" + random.token_hex(12)
    secret = "kwsec_" + random.token_urlsafe(32)
    ports.secrets.add_version(secret_name(subscription), secret.encode())
    doc = {"tenant": tenant, "url": url, "events": events,
           "created_at": isoformat(ports.clock.now()), "created_by": user}
    ports.business.put(COLLECTION, subscription, doc)
    return {**view(subscription, doc), "secret": secret}


def view(subscription: str, doc: dict[str, Any]) -> dict[str, Any]:
    return {"id": subscription, **{k: doc.get(k) for k in VIEW_KEYS}}


def own(ports: Ports, tenant: str, subscription: str) -> dict[str, Any]:
    """The tenant's subscription; another tenant's answers ``NotFound`` like a missing one."""
    doc = ports.business.get(COLLECTION, subscription)
    if doc is None or doc.get("tenant") != tenant:
        raise NotFound("no such subscription")
    return doc


def listing(ports: Ports, tenant: str) -> list[dict[str, Any]]:
    snaps = ports.business.query(COLLECTION, [Filter("tenant", "==", tenant)])
    return sorted((view(s.id, s.data) for s in snaps), key=lambda v: v["created_at"] or "")


def delete(ports: Ports, tenant: str, subscription: str) -> None:
    """Delete the tenant's subscription, then its secret: nothing more is sent to it."""
    own(ports, tenant, subscription)
    ports.business.delete(COLLECTION, subscription)
    try:
        ports.secrets.delete(secret_name(subscription))
    except NotFound:
        pass


def matching(ports: Ports, tenant: str, type_: str) -> list[tuple[str, dict[str, Any]]]:
    """The tenant's subscriptions to ``type_``, oldest first."""
    snaps = ports.business.query(COLLECTION, [Filter("tenant", "==", tenant)])
    found = [(s.id, s.data) for s in snaps if type_ in (s.data.get("events") or [])]
    return sorted(found, key=lambda item: item[1].get("created_at") or "")
