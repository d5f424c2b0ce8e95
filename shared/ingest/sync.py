"""Follow-up syncs: what ``ingest`` asks the vault for when a webhook cannot say it all
(repositories added to an installation, an event whose payload was too large to carry)."""

from __future__ import annotations

from shared import messages
from shared.ingest.event import Event
from shared.log import get_logger
from shared.ports import Ports
from shared.records.model import Context

log = get_logger("keyway.ingest")


def request_sync(ports: Ports, event: Event, ctx: Context) -> str:
    """Publish ``sync.requested`` for ``ctx``'s connection.

    ``requested_at`` is when the webhook arrived, so the vault's staleness rule (requests older
    than an hour are not acted on) also covers an event redelivered or replayed much later.
    """
    message_id = messages.publish(
        ports.bus, "ingest", f"sync-requests-{event.provider}", "sync.requested",
        {"tenant": ctx.tenant, "connection": ctx.connection, "scope": "all",
         "reason": f"webhook:{event.name}", "requested_at": event.received_at},
        ordering_key=ctx.connection)
    log.info(f"ingest.{event.provider}.sync_requested",
             extra={"fields": {"connection": ctx.connection, "delivery": event.delivery}})
    return message_id
