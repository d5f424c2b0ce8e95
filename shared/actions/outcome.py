"""Record a posted comment: the normalized record (so the data API shows it), then ``done``."""

from __future__ import annotations

from typing import Any

from shared.actions import ledger, provider, targets
from shared.errors import InvalidInput
from shared.log import get_logger
from shared.ports import Ports
from shared.records import store as records
from shared.records.model import Context

log = get_logger("keyway.act")


def record(ports: Ports, provider_name: str, tenant: str, connection: str, action_id: str,
           thread: provider.Thread, raw: dict[str, Any]) -> None:
    """Upsert the normalized comment, then mark the action done with its ids and URL."""
    context = Context(tenant, provider_name, connection, repository=thread.repository["id"])
    try:
        comment = targets.NORMALIZE[provider_name](raw, context, thread.parent_kind,
                                                   thread.number)
    except InvalidInput as e:  # posted all the same: the next sync or webhook brings it
        log.warning("act.unnormalizable_comment", extra={"fields": {
            "provider": provider_name, "action": action_id, "detail": e.detail}})
        comment = None
    if comment is not None:
        records.upsert(ports.business, comment)
    ledger.finish(ports, action_id, tenant, ports.clock.now(), {
        "provider_comment_id": str(raw["id"]),
        "url": targets.comment_url(provider_name, raw, thread.repository, thread.parent_kind,
                                   thread.number),
        "comment": comment["id"] if comment is not None else None})
