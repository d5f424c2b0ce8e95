"""Message type → handler, per Pub/Sub component. A routing table, not an if-chain."""

from __future__ import annotations

from collections.abc import Mapping

from shared.actions import handler as act
from shared.entry import EventHandler
from shared.fetch import handler as fetch
from shared.ingest import handler as ingest
from shared.policy import PROVIDERS
from shared.scheduler import tick
from shared.vault import handlers as vault

HANDLERS: dict[str, Mapping[str, EventHandler]] = {
    "scheduler": {"refresh.tick": tick.on_tick},
    **{f"vault-{p}": vault.handlers(p) for p in PROVIDERS},
    **{f"fetch-{p}": fetch.handlers(p) for p in fetch.PLANS},
    **{f"act-{p}": act.handlers(p) for p in act.PROVIDERS},
    "ingest": ingest.HANDLERS,
}


def handlers_for(component: str) -> Mapping[str, EventHandler]:
    return HANDLERS.get(component, {})
