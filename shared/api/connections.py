"""Connection lifecycle from the API: disconnect and re-authorize (admins), and sync now.

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
from shared.api import retention
from shared.clock import isoformat
from shared.errors import Conflict, NotFound
from shared.http import json_response
from shared.oauth.start import start


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
    purge_at = retention.disconnected_purge_at(ctx, record)
    if record.get("status") == "disconnected":
        if purge_at != record.get("purge_at"):  # ?purge=true after the fact
            ctx.ports.business.put("connections", connection, {**record, "purge_at": purge_at})
        return json_response({"connection": connection, "status": "disconnected",
                              "purge_at": purge_at}, 202)
    now = isoformat(ctx.ports.clock.now())
    if record.get("status") != "disconnecting" or purge_at != record.get("purge_at"):
        ctx.ports.business.put("connections", connection, {  # a repeat asks the vault again
            **record, "status": "disconnecting", "status_changed_at": now,
            "disconnected_at": record.get("disconnected_at") or now, "purge_at": purge_at})
    messages.publish(ctx.ports.bus, "api", f"connection-control-{record['provider']}",
                     "connection.disconnect",
                     {"tenant": ctx.principal.tenant, "connection": connection,
                      "requested_by": ctx.principal.user, "requested_at": now},
                     ordering_key=connection)
    health.observe(ports=ctx.ports, connection=connection)
    return json_response({"connection": connection, "status": "disconnecting",
                          "purge_at": purge_at}, 202)


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


def reauthorize(ctx: Any) -> Response:
    """``POST /v1/connections/{id}/reauthorize`` (admins): a flow that replaces the token of
    this connection — same id, records and cursors kept — when the same provider account
    consents (:mod:`shared.oauth.same_account`); 409 for a disconnected one."""
    ctx.json((), required=False)
    ctx.principal.require_scope("connections:write")
    ctx.principal.require_admin()
    connection = ctx.params["connection"]
    record = _own(ctx, connection)
    if record.get("status") in ("disconnecting", "disconnected"):
        raise Conflict("a disconnected connection cannot be re-authorized; connect again",
                       key="api.connection_inactive")
    started = start(ctx.ports, ctx.config, ctx.principal, record["provider"], "app",
                    record.get("base_url"), github_app=bool(record.get("installation_id")),
                    register_webhooks=bool(record.get("register_webhooks")) or None,
                    reauthorize=connection)
    return json_response({"authorize_url": started.authorize_url, "connection": connection,
                          "expires_in": started.expires_in}, status=201)
