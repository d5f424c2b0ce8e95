"""Webhooks registered at a simulator, and their deliveries (provider-neutral).

A :class:`HookStore` keeps the hooks a client created on repositories or projects (a
``target`` is a lower-cased ``owner/repo`` or a project id), hands out ids in creation order
and remembers deleted hooks (:attr:`HookStore.deleted`) so tests can prove a removal.
:func:`post` POSTs one delivery over real HTTP to a URL, as the provider would; every
simulator's deliveries reach it through :meth:`.delivery_log.DeliveryLog.send`, each provider
module signing them its own way (``github_deliveries``, ``gitlab_hooks``, ``bitbucket_hooks``;
``jira_hooks`` keeps Jira's dynamic webhooks in a store of its own).
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

import requests

DELIVERY_TIMEOUT = 10.0  # GitHub gives up on a delivery after 10 s


@dataclass
class Hook:
    """One registered hook. ``secret`` is what the provider signs with (GitHub's
    ``config.secret``, GitLab's ``token``); ``options`` are the provider's other fields."""

    id: int
    target: str
    url: str
    secret: str = field(repr=False)
    events: tuple[str, ...]
    created_at: float
    active: bool = True
    options: dict[str, Any] = field(default_factory=dict)


class HookStore:
    """Hooks per target; thread-safe."""

    def __init__(self, first_id: int) -> None:
        self._ids = itertools.count(first_id)
        self._hooks: dict[str, list[Hook]] = {}
        self.deleted: list[Hook] = []
        self._lock = threading.Lock()

    def add(self, target: str, url: str, secret: str, events: tuple[str, ...],
            created_at: float, **options: Any) -> Hook:
        with self._lock:
            hook = Hook(next(self._ids), target, url, secret, events, created_at,
                        options=options)
            self._hooks.setdefault(target, []).append(hook)
            return hook

    def list(self, target: str) -> list[Hook]:
        with self._lock:
            return list(self._hooks.get(target, []))

    def find_url(self, target: str, url: str) -> Hook | None:
        return next((h for h in self.list(target) if h.url == url), None)

    def remove(self, target: str, hook_id: int) -> bool:
        with self._lock:
            hooks = self._hooks.get(target, [])
            found = next((h for h in hooks if h.id == hook_id), None)
            if found is None:
                return False
            hooks.remove(found)
            self.deleted.append(found)
            return True

    def all(self) -> list[Hook]:
        with self._lock:
            return [h for hooks in self._hooks.values() for h in hooks]


def post(url: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    """POST one JSON delivery to ``url`` over real HTTP, following no redirect."""
    return requests.post(url, data=body, timeout=DELIVERY_TIMEOUT, allow_redirects=False,
                         headers={"Content-Type": "application/json", **headers})
