"""Connection lifecycle from the API: disconnect (admins) and sync now.

Both only publish to the connection's vault; the api never touches the vault database. The
tenant check comes first, so another tenant's connection id answers 404 like a missing one.
A disconnect goes on ``connection-control-P``, the topic only ``api`` may publish to; a
repeated ``DELETE`` of a connection still ``disconnecting`` publishes it again (the vault's
disconnect is idempotent), so one whose first request was lost can be finished.
"""

from __future__ import annotations

from typing import Any

from flask import Response

from shared import health, messages
from shared.clock import isoformat
from shared.errors import Conflict, NotFound
from shared.http import json_response


def _own(ctx: Any, connection: str) -> dict:
    record = ctx.ports.business.get("connections", connection)
    if record is None or record.get("tenant") != ctx.principal.tenant:
        raise NotFound("no such connection")
    return record


def delete_connection(ctx: Any) -> Response:
    ctx.json((), required=False)  # no body, or an empty JSON object
    ctx.principal.require_scope("connections:write")
    ctx.principal.require_admin()
    connection = ctx.params["connection"]
    record = _own(ctx, connection)
    if record.get("status") == "disconnected":
        return json_response({"connection": connection, "status": "disconnected"}, 202)
    now = isoformat(ctx.ports.clock.now())
    if record.get("status") != "disconnecting":  # a repeat asks the vault again: idempotent
        ctx.ports.business.put("connections", connection,
                               {**record, "status": "disconnecting", "status_changed_at": now})
    messages.publish(ctx.ports.bus, "api", f"connection-control-{record['provider']}",
                     "connection.disconnect",
                     {"tenant": ctx.principal.tenant, "connection": connection,
                      "requested_by": ctx.principal.user, "requested_at": now},
                     ordering_key=connection)
    health.observe(ports=ctx.ports, connection=connection)
    return json_response({"connection": connection, "status": "disconnecting"}, 202)


def sync_now(ctx: Any) -> Response:
    ctx.json((), required=False)  # no body, or an empty JSON object
    ctx.principal.require_scope("connections:write")
    connection = ctx.params["connection"]
    record = _own(ctx, connection)
    if record.get("status") != "active":
        raise Conflict(f"the connection is {record.get('status')}", key="api.connection_inactive")
    now = isoformat(ctx.ports.clock.now())
    messages.publish(ctx.ports.bus, "api", f"sync-requests-{record['provider']}",
                     "sync.requested",
                     {"tenant": ctx.principal.tenant, "connection": connection, "scope": "all",
                      "reason": "manual", "requested_at": now}, ordering_key=connection)
    return json_response({"connection": connection, "status": "sync_requested"}, 202)
