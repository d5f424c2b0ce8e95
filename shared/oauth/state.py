"""OAuth ``state``: random, single-use, 10-minute, bound server-side to tenant, user, kind and
provider.

The state value is 256 random bits; only its SHA-256 is a document id (``oauth_states``), so
reading the store does not reveal live state values. The record holds the PKCE verifier and
the exact redirect URI; :func:`consume` deletes it in the same transaction that reads it, so a
replayed state finds nothing.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from shared import retention
from shared.clock import isoformat, parse_iso
from shared.errors import InvalidInput
from shared.ports import Ports

COLLECTION = "oauth_states"
TTL = timedelta(minutes=10)


class InvalidState(InvalidInput):
    key, title = "oauth.invalid_state", "Unknown, expired or already used OAuth state"


@dataclass(frozen=True, repr=False)
class PendingFlow:
    tenant: str
    user: str
    kind: str  # "app" | "personal"
    provider: str
    redirect_uri: str
    verifier: str | None
    base_url: str | None
    connection: str | None
    github_app: bool = False  # an app flow that installs the GitHub App (kind stays "app")
    register_webhooks: bool = False  # the app token may register keyway's hooks
    host: str | None = None  # the registered self-hosted host (its own OAuth client)

    def __repr__(self) -> str:
        return f"PendingFlow(provider={self.provider!r}, kind={self.kind!r})"


def _doc_id(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def create(ports: Ports, flow: PendingFlow) -> str:
    """Store ``flow`` under a fresh state value and return that value."""
    state = secrets.token_urlsafe(32)
    now = ports.clock.now()
    ports.business.put(COLLECTION, _doc_id(state), {
        "tenant": flow.tenant, "user": flow.user, "kind": flow.kind, "provider": flow.provider,
        "redirect_uri": flow.redirect_uri, "verifier": flow.verifier, "base_url": flow.base_url,
        "connection": flow.connection, "github_app": flow.github_app,
        "register_webhooks": flow.register_webhooks, "host": flow.host,
        "created_at": isoformat(now),
        "expires_at": isoformat(now + TTL), **retention.purge_at(now + TTL),
    })
    return state


def consume(ports: Ports, state: str | None, provider: str) -> PendingFlow:
    """The flow for ``state``, deleted as it is read. Unknown, expired, replayed or another
    provider's state → :class:`InvalidState`."""
    if not state or len(state) > 256:
        raise InvalidState("missing or malformed state")
    doc_id = _doc_id(state)

    def take(tx) -> dict[str, Any] | None:
        doc = tx.get(COLLECTION, doc_id)
        if doc is not None:
            tx.delete(COLLECTION, doc_id)
        return doc

    doc = ports.business.transaction(take)
    if doc is None:
        raise InvalidState("unknown or already used state")
    if doc["provider"] != provider:
        raise InvalidState("state belongs to another provider")
    if parse_iso(doc["expires_at"]) < ports.clock.now():
        raise InvalidState("state expired")
    return PendingFlow(doc["tenant"], doc["user"], doc["kind"], doc["provider"],
                       doc["redirect_uri"], doc.get("verifier"), doc.get("base_url"),
                       doc.get("connection"), bool(doc.get("github_app")),
                       bool(doc.get("register_webhooks")), doc.get("host"))
