"""The component table: every Cloud Function keyway deploys, its trigger and its provider.

``functions/<name>/main.py`` exists for each row (a test checks both directions). HTTPS
functions expose ``serve(request)``; Pub/Sub functions expose ``receive(cloud_event)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shared.policy import PROVIDERS, topics_consumed_by

Trigger = Literal["http", "pubsub"]


@dataclass(frozen=True)
class Component:
    name: str
    trigger: Trigger
    provider: str | None
    does: str

    @property
    def entry_point(self) -> str:
        return "serve" if self.trigger == "http" else "receive"

    @property
    def topics(self) -> list[str]:
        """Topics this component consumes (empty for HTTPS functions)."""
        return topics_consumed_by(self.name)


def _provider_components(p: str) -> list[Component]:
    return [
        Component(f"oauth-{p}", "http", p, f"start and callback of {p}'s OAuth flow"),
        Component(f"vault-{p}", "pubsub", p, f"stores/refreshes {p} tokens; seals and pushes them"),
        Component(f"fetch-{p}", "pubsub", p, f"metadata sync for {p}"),
        Component(f"act-{p}", "pubsub", p, f"user-attributed actions on {p}"),
        Component(f"webhook-{p}", "http", p, f"verifies and publishes {p} webhooks"),
    ]


COMPONENTS: dict[str, Component] = {
    c.name: c
    for c in [
        Component("api", "http", None, "frontend API: connections, data, actions; never tokens"),
        *(c for p in PROVIDERS for c in _provider_components(p)),
        Component("ingest", "pubsub", None, "turns webhook events into normalized records"),
        Component("scheduler", "pubsub", None, "finds connections due for refresh"),
        Component("notify", "pubsub", None,
                  "delivers signed notifications to the tenants' webhook subscriptions"),
    ]
}


def get(name: str) -> Component:
    try:
        return COMPONENTS[name]
    except KeyError:
        raise KeyError(f"unknown component {name!r}") from None
