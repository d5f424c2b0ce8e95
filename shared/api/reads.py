"""Read routes people reach for: the tenant's connections and actions.

* ``GET /v1/connections`` and ``GET /v1/connections/{id}`` — scope ``connections:read``: each
  connection with its ``health`` (:mod:`shared.health`) and ``freshness``
  (:mod:`shared.freshness`); one connection also with its sync summary (``state``,
  ``last_success_at``, ``retry_at``, ``reason``).
* ``GET /v1/freshness`` — scope ``connections:read`` or ``data:read``: per connection and per
  record kind, the oldest ``fresh_as_of`` of its repositories and how many never completed.
* ``GET /v1/actions?user=&status=&connection=&limit=&cursor=`` — scope ``actions:write`` or
  ``data:read``: the tenant's actions, newest first (every member of a tenant may read its
  actions, :mod:`shared.actions.model`); an opaque ``next_cursor`` pages on.

Another tenant's connection answers 404 like a missing one; nothing here carries a token.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from flask import Response

from shared import freshness, health, ids
from shared.actions import model
from shared.api.data import page_limit
from shared.errors import Forbidden, InvalidInput, NotFound
from shared.http import json_response
from shared.ports import Filter, Order

CONNECTION_KEYS = ("provider", "kind", "status", "status_reason", "base_url", "host",
                   "account", "created_at", "next_sync_at", "disconnected_at", "purge_at",
                   "purged_at")
SYNC_KEYS = ("state", "last_success_at", "retry_at", "reason", "consecutive_failures")
ACTION_FILTERS = ("user", "status", "connection")


def connection_view(ctx: Any, connection: str, record: dict[str, Any],
                    sync: dict[str, Any] | None) -> dict[str, Any]:
    """The connection as readers see it, with its health (:func:`shared.health.view`)."""
    return {"id": connection, **{k: record.get(k) for k in CONNECTION_KEYS},
            "register_webhooks": bool(record.get("register_webhooks")),
            "health": health.view(record, sync, ctx.ports.clock.now()),
            "freshness": freshness.connection_view(record)}


def list_connections(ctx: Any) -> Response:
    ctx.principal.require_scope("connections:read")
    snaps = ctx.ports.business.query("connections", [Filter("tenant", "==", ctx.principal.tenant)])
    return json_response({"items": [
        connection_view(ctx, s.id, s.data, ctx.ports.business.get("sync_status", s.id))
        for s in snaps]})


def get_connection(ctx: Any) -> Response:
    ctx.principal.require_scope("connections:read")
    connection = ctx.params["connection"]
    record = ctx.ports.business.get("connections", connection)
    if record is None or record.get("tenant") != ctx.principal.tenant:
        raise NotFound("no such connection")
    sync = ctx.ports.business.get("sync_status", connection)
    return json_response({**connection_view(ctx, connection, record, sync),
                          "sync": {k: (sync or {"state": "never"}).get(k) for k in SYNC_KEYS}})


def tenant_freshness(ctx: Any) -> Response:
    principal = ctx.principal
    if not (principal.has_scope("connections:read") or principal.has_scope("data:read")):
        raise Forbidden("this request needs the scope connections:read or data:read",
                        key="auth.insufficient_scope")
    return json_response(freshness.tenant_view(ctx.ports.business, principal.tenant))


def list_actions(ctx: Any) -> Response:
    principal = ctx.principal
    if not (principal.has_scope("actions:write") or principal.has_scope("data:read")):
        raise Forbidden("this request needs the scope actions:write or data:read",
                        key="auth.insufficient_scope")
    args = ctx.request.args
    limit = page_limit(args.get("limit"))
    where = [Filter("tenant", "==", principal.tenant)]
    where += [Filter(name, "==", args[name]) for name in ACTION_FILTERS if args.get(name)]
    at, skip = _cursor(args.get("cursor"))
    if at is not None:
        where.append(Filter("created_at", "<=", at))
    snaps = ctx.ports.business.query(model.COLLECTION, where, [Order("created_at", True)],
                                     limit + len(skip) + 1)
    snaps = [s for s in snaps if s.id not in skip]
    page = snaps[:limit]
    items = [model.view(ids.split(s.id, 2)[1], s.data) for s in page]
    more = len(snaps) > limit
    return json_response({"items": items,
                          "next_cursor": _next_cursor(page, at, skip) if more else None})


def _next_cursor(page: list[Any], previous_at: str | None, previous_skip: set[str]) -> str:
    """The last item's ``created_at`` and every id already shown at that instant (this page's
    and, when the instant is the previous cursor's, that cursor's), so equal timestamps are
    neither repeated nor skipped."""
    at = page[-1].data["created_at"]
    skip = sorted({s.id for s in page if s.data.get("created_at") == at}
                  | (previous_skip if at == previous_at else set()))
    raw = json.dumps({"at": at, "skip": skip}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _cursor(raw: str | None) -> tuple[str | None, set[str]]:
    if not raw:
        return None, set()
    try:
        padded = raw.encode("ascii") + b"=" * (-len(raw) % 4)
        value = json.loads(base64.b64decode(padded, altchars=b"-_", validate=True))
        at, skip = value["at"], value["skip"]
        if not isinstance(at, str) or not all(isinstance(s, str) for s in skip):
            raise ValueError
        return at, set(skip)
    except (binascii.Error, UnicodeError, ValueError, TypeError, KeyError):
        raise InvalidInput("cursor is not one this API issued") from None
