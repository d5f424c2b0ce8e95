"""OAuth ``state``: random, single-use, 10-minute, bound server-side to tenant, user, kind and
provider, and to the one browser that took the start step.

The state value is 256 random bits; only its SHA-256 is a document id (``oauth_states``), so
reading the store does not reveal live state values. The record holds the PKCE verifier, the
exact redirect URI and the provider's authorize URL without the state (PKCE challenge, client
id and scopes are not secret). :func:`bind` stores the SHA-256 of the start step's browser
secret (:mod:`shared.oauth.flowcookie`), once per state: a second binding is
:class:`AlreadyBound`. :func:`consume` deletes the record in the same transaction that reads
it, so a replayed state finds nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from shared import retention
from shared.clock import isoformat, parse_iso
from shared.errors import Conflict, InvalidInput
from shared.ports import Ports

COLLECTION = "oauth_states"
TTL = timedelta(minutes=10)


class InvalidState(InvalidInput):
    key, title = "oauth.invalid_state", "Unknown, expired or already used OAuth state"


class AlreadyBound(Conflict):
    key, title = "oauth.flow_already_bound", "This sign-in link was already opened elsewhere"


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
    provider_url: str = ""  # the provider's authorize URL, without the state
    binding: str | None = None  # SHA-256 (hex) of the browser secret the start step set
    reauthorize: bool = False  # replaces the token of the existing app connection ``connection``
    host: str | None = None  # the registered self-hosted host (its own OAuth client)

    def __repr__(self) -> str:
        return f"PendingFlow(provider={self.provider!r}, kind={self.kind!r})"


def _doc_id(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def create(ports: Ports, flow: PendingFlow) -> str:
    """Store ``flow`` (unbound) under a fresh state value and return that value."""
    state = secrets.token_urlsafe(32)
    now = ports.clock.now()
    ports.business.put(COLLECTION, _doc_id(state), {
        "tenant": flow.tenant, "user": flow.user, "kind": flow.kind, "provider": flow.provider,
        "redirect_uri": flow.redirect_uri, "verifier": flow.verifier, "base_url": flow.base_url,
        "connection": flow.connection, "github_app": flow.github_app,
        "register_webhooks": flow.register_webhooks, "provider_url": flow.provider_url,
        "binding": None, "reauthorize": flow.reauthorize, "host": flow.host,
        "created_at": isoformat(now),
        "expires_at": isoformat(now + TTL), **retention.purge_at(now + TTL),
    })
    return state


def consume(ports: Ports, state: str | None, provider: str) -> PendingFlow:
    """The flow for ``state``, deleted as it is read. Unknown, expired, replayed or another
    provider's state → :class:`InvalidState`."""
    _check_shape(state)
    doc_id = _doc_id(state or "")

    def take(tx) -> dict[str, Any] | None:
        doc = tx.get(COLLECTION, doc_id)
        if doc is not None:
            tx.delete(COLLECTION, doc_id)
        return doc

    return _flow(ports, ports.business.transaction(take), provider)


def peek(ports: Ports, state: str | None, provider: str) -> PendingFlow:
    """The live flow for ``state`` without using it up (the start step)."""
    _check_shape(state)
    return _flow(ports, ports.business.get(COLLECTION, _doc_id(state or "")), provider)


def bind(ports: Ports, state: str, provider: str, digest: str, presented: str | None) -> bool:
    """Bind the live flow for ``state`` to the browser secret whose SHA-256 is ``digest``.

    True when it was bound now; False when it already was bound to ``presented`` (the same
    browser taking the start step again). Bound to anything else → :class:`AlreadyBound`."""
    doc_id = _doc_id(state)

    def tie(tx) -> bool:
        doc = tx.get(COLLECTION, doc_id)
        _flow(ports, doc, provider)
        bound = doc.get("binding")
        if bound:
            if presented and hmac.compare_digest(bound, presented):
                return False
            raise AlreadyBound("a browser already took the start step of this flow")
        tx.put(COLLECTION, doc_id, {**doc, "binding": digest,
                                    "bound_at": isoformat(ports.clock.now())})
        return True

    return ports.business.transaction(tie)


def _check_shape(state: str | None) -> None:
    if not state or len(state) > 256:
        raise InvalidState("missing or malformed state")


def _flow(ports: Ports, doc: dict[str, Any] | None, provider: str) -> PendingFlow:
    if doc is None:
        raise InvalidState("unknown or already used state")
    if doc["provider"] != provider:
        raise InvalidState("state belongs to another provider")
    if parse_iso(doc["expires_at"]) < ports.clock.now():
        raise InvalidState("state expired")
    return PendingFlow(doc["tenant"], doc["user"], doc["kind"], doc["provider"],
                       doc["redirect_uri"], doc.get("verifier"), doc.get("base_url"),
                       doc.get("connection"), bool(doc.get("github_app")),
                       bool(doc.get("register_webhooks")), doc.get("provider_url") or "",
                       doc.get("binding"), bool(doc.get("reauthorize")), doc.get("host"))
