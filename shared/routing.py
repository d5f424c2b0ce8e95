"""Message type → handler, per Pub/Sub component. A routing table, not an if-chain."""

from __future__ import annotations

from collections.abc import Mapping

from shared.entry import EventHandler
from shared.scheduler import tick

HANDLERS: dict[str, Mapping[str, EventHandler]] = {
    "scheduler": {"refresh.tick": tick.on_tick},
}


def handlers_for(component: str) -> Mapping[str, EventHandler]:
    return HANDLERS.get(component, {})
