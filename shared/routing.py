"""Message type → handler, per Pub/Sub component. A routing table, not an if-chain.

Each role's handlers live in their own module, imported only by the component that runs them:
a function never pays, at cold start, for the other components' code (the scheduler does not
import the vault, fetchers or actions; act-P does not import ingest).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from shared.entry import EventHandler

# role → (module, handlers of that module for a provider, or for None: a provider-less role)
ROUTES: dict[str, tuple[str, Callable[[Any, str | None], Mapping[str, EventHandler]]]] = {
    "scheduler": ("shared.scheduler.tick", lambda m, p: {"refresh.tick": m.on_tick}),
    "ingest": ("shared.ingest.handler", lambda m, p: m.HANDLERS),
    "vault": ("shared.vault.handlers", lambda m, p: m.handlers(p) if p else {}),
    "fetch": ("shared.fetch.handler", lambda m, p: m.handlers(p) if p in m.PLANS else {}),
    "act": ("shared.actions.handler", lambda m, p: m.handlers(p) if p in m.PROVIDERS else {}),
    "notify": ("shared.notify.deliver", lambda m, p: m.HANDLERS),
}
_PROVIDERLESS = ("scheduler", "ingest", "notify")


def handlers_for(component: str) -> Mapping[str, EventHandler]:
    """The handlers of ``component`` (``vault-github``, ``ingest``, …); ``{}`` for none."""
    role, _, provider = component.partition("-")
    route = ROUTES.get(role)
    if route is None or (role in _PROVIDERLESS) != (provider == ""):
        return {}
    module, pick = route
    return pick(importlib.import_module(module), provider or None)
