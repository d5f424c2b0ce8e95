"""keyway's own webhooks at a provider: where they point, what a create request carries, and
the ``webhook_registrations`` records that remember them (business store, no secret).

The provider table says which templates, scopes and events (``webhook_registration``); this
module holds what a table cannot say — the request body and where a listed hook keeps its URL
— as one small profile per provider.

A record per (connection, repository), id ``<connection>:<repository record id>``::

    tenant, provider, connection, repository, external_id
    target       the hook templates' path parameters ({"owner", "repo"} / {"id"})
    url          <public_url>/webhook-<provider>/c/<connection>
    hook_id      the provider's hook id (None until created)
    status       registering | active | unavailable | removed | remove_failed
    reason       stable key of the last refusal or failure (None when fine)
    adopted      True when an existing hook with our URL was taken over instead of created
    retry_at     when an ``unavailable`` repository is tried again
    created_at, updated_at

A ``site`` registration (Jira's dynamic webhooks, :mod:`shared.webhooks.dynamic`) keeps one
record per connection instead, id ``<connection>:site`` (``repository`` is ``"site"``,
``external_id`` the site's cloud id, ``target`` empty, ``url`` the app-level
``<public_url>/webhook-<provider>/``, ``hook_id`` None), with::

    hook_ids     the provider's ids of the connection's webhook (one; a list as Jira has it)
    jql          the jqlFilter it was registered with ("project in (<ids>)")
    expires_at   when the provider stops delivering unless it is refreshed first
    renewed_at   the last successful refresh
    retired_ids  ids of a replaced webhook whose deletion failed (deleted again later)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from shared.clock import isoformat
from shared.ports import DocumentStore, Filter, Ports
from shared.providers.schema import ProviderSpec

COLLECTION = "webhook_registrations"
LIVE = ("registering", "active")  # a hook may exist at the provider
SITE = "site"  # the ``repository`` of a site registration's one record
RETRY_AFTER = timedelta(days=1)  # an ``unavailable`` registration is tried again after it
UNREACHABLE = "webhooks.hook_unreachable"  # the hook's own endpoints answer 404


@dataclass
class Counts:
    """What one registration pass did (logged with ``webhooks.registration``)."""

    registered: int = 0
    adopted: int = 0
    unavailable: int = 0
    failed: int = 0
    renewed: int = 0


@dataclass(frozen=True)
class HookProfile:
    """``body(url, secret, events)`` of a create request; ``url_of(hook)`` of a listed hook."""

    body: Callable[[str, str, tuple[str, ...]], dict[str, Any]]
    url_of: Callable[[Mapping[str, Any]], Any]


def _github_body(url: str, secret: str, events: tuple[str, ...]) -> dict[str, Any]:
    return {"name": "web", "active": True, "events": list(events),
            "config": {"url": url, "content_type": "json", "secret": secret,
                       "insecure_ssl": "0"}}


def _gitlab_body(url: str, secret: str, events: tuple[str, ...]) -> dict[str, Any]:
    # push_events defaults to true at GitLab: keyway never wants pushes
    return {"url": url, "token": secret, "push_events": False,
            "enable_ssl_verification": True, **dict.fromkeys(events, True)}


PROFILES: dict[str, HookProfile] = {
    "github": HookProfile(_github_body, lambda hook: (hook.get("config") or {}).get("url")),
    "gitlab": HookProfile(_gitlab_body, lambda hook: hook.get("url")),
}


def callback_url(public_url: str, provider: str, connection: str) -> str:
    """Where the provider delivers a connection's events (``webhook-P``'s per-connection path)."""
    return f"{public_url.rstrip('/')}/webhook-{provider}/c/{connection}"


def app_url(public_url: str, provider: str) -> str:
    """``webhook-P``'s app-level path, where a ``site`` registration's webhooks point."""
    return f"{public_url.rstrip('/')}/webhook-{provider}/"


def uses_connection_secret(spec: ProviderSpec) -> bool:
    """Whether ``spec`` registers hooks signed with a per-connection secret
    (``webhook-secret-<connection>``): ``repo``/``project`` hooks do; a ``site``
    registration's webhooks are signed by the provider with the OAuth client secret."""
    reg = spec.webhook_registration
    return reg is not None and reg.kind != "site"


def find(hooks: Any, provider: str, url: str) -> dict[str, Any] | None:
    """The hook in a listed page whose URL is ``url`` (None if none is)."""
    url_of = PROFILES[provider].url_of
    if not isinstance(hooks, list):
        return None
    return next((h for h in hooks if isinstance(h, dict) and url_of(h) == url
                 and isinstance(h.get("id"), int | str)), None)


def doc_id(connection: str, repository: str) -> str:
    return f"{connection}:{repository}"


def mark_unreachable(ports: Ports, connection: str, repository: str, hook_id: str) -> bool:
    """An ``active`` registration whose hook (``hook_id``) answered 404 becomes ``unavailable``
    (reason ``webhooks.hook_unreachable``, tried again after :data:`RETRY_AFTER`, when a
    registration pass creates or adopts it anew); False when the record moved on meanwhile."""
    key = doc_id(connection, repository)

    def write(tx: Any) -> bool:
        doc = tx.get(COLLECTION, key)
        if doc is None or doc.get("status") != "active" or str(doc.get("hook_id")) != hook_id:
            return False
        now = ports.clock.now()
        tx.put(COLLECTION, key, {**doc, "status": "unavailable", "reason": UNREACHABLE,
                                 "retry_at": isoformat(now + RETRY_AFTER),
                                 "updated_at": isoformat(now)})
        return True

    return bool(ports.business.transaction(write))


def for_connection(store: DocumentStore, connection: str) -> dict[str, dict[str, Any]]:
    """The connection's records by repository record id."""
    snaps = store.query(COLLECTION, [Filter("connection", "==", connection)])
    return {s.data["repository"]: s.data for s in snaps}


def save(ports: Ports, record: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """Write ``record`` with ``changes`` (and ``updated_at``); returns what was written."""
    now = isoformat(ports.clock.now())
    doc = {"reason": None, "retry_at": None, "adopted": False, **record, **changes,
           "updated_at": now}
    doc.setdefault("created_at", now)
    ports.business.put(COLLECTION, doc_id(doc["connection"], doc["repository"]), doc)
    return doc
