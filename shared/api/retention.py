"""When a disconnected connection's data goes: ``DELETE /v1/connections/{id}?purge=true`` at
once (the next scheduler tick), else ``KEYWAY_DISCONNECTED_RETENTION_DAYS`` (default 30)
after the disconnect; the scheduler's sweep (:mod:`shared.scheduler.purge`) deletes it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shared.clock import isoformat, parse_iso
from shared.errors import InvalidInput


def purge_requested(ctx: Any) -> bool:
    raw = ctx.request.args.get("purge")
    if raw is None or raw == "false":
        return False
    if raw != "true":
        raise InvalidInput("purge must be true or false")
    return True


def disconnected_purge_at(ctx: Any, record: dict[str, Any]) -> str:
    """The connection's purge time: now when asked, else the retention after it ended (an
    earlier purge already set is kept)."""
    now = ctx.ports.clock.now()
    ended = parse_iso(record["disconnected_at"]) if record.get("disconnected_at") else now
    due = now if purge_requested(ctx) else ended + timedelta(
        days=ctx.config.disconnected_retention_days)
    earlier = record.get("purge_at")
    return min(earlier, isoformat(due)) if earlier else isoformat(due)
