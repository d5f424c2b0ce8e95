"""Read-only data resources: the normalized records of the caller's tenant, never a token.

``GET /v1/<kind>?connection=&repository=&state=&updated_since=&include_deleted=&limit=&cursor=``
— filters are ANDed; results are ordered by record id and paginated with an opaque
``next_cursor`` (the last id of the page). Tombstones (records the provider deleted, that were
transferred away or that the connection lost access to: ``deleted: true`` with ``deleted_at``
and ``deleted_reason``, :mod:`shared.records.store`) are hidden unless ``include_deleted=true``
— on lists and on ``GET /v1/<kind>/<id>`` alike; any other value than ``true`` / ``false``
is a 400. Another tenant's records are never visible: the tenant filter comes from the
bearer token, not the request, and an id from another tenant answers 404 like a missing one.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import unquote

from flask import Response

from shared import health, ids
from shared.clock import isoformat, parse_iso
from shared.errors import InvalidInput, NotFound
from shared.http import json_response
from shared.ports import Filter, Order

MAX_LIMIT, DEFAULT_LIMIT = 200, 50
RESOURCES = {"repositories": "repositories", "pull-requests": "pull_requests",
             "issues": "issues", "comments": "comments", "reviews": "reviews",
             "labels": "labels"}
_HIDDEN = ("tenant",)
#: The optional equality filters of a listing, in the order they are applied.
RECORD_FILTERS = ("connection", "repository", "state")


def _cursor(raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        padded = raw.encode("ascii") + b"=" * (-len(raw) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidInput("cursor is not one this API issued") from None


def _encode(record_id: str) -> str:
    return base64.urlsafe_b64encode(record_id.encode()).rstrip(b"=").decode()


def page_limit(raw: str | None) -> int:
    """The ``limit`` query parameter: 1..MAX_LIMIT, DEFAULT_LIMIT when absent (400 otherwise)."""
    if raw is None:
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidInput(f"limit must be 1..{MAX_LIMIT}")
    return int(raw)


def include_deleted(raw: str | None) -> bool:
    """The ``include_deleted`` query parameter: ``true`` / ``false`` (absent: false)."""
    if raw is None or raw == "false":
        return False
    if raw == "true":
        return True
    raise InvalidInput("include_deleted must be true or false")


def _filters(tenant: str, args: Any) -> list[Filter]:
    # ``in [false, true]`` rather than no filter: the same composite index serves both views
    shown = [False, True] if include_deleted(args.get("include_deleted")) else [False]
    where = [Filter("tenant", "==", tenant),
             Filter("deleted", "in", shown) if len(shown) > 1 else Filter("deleted", "==", False)]
    for name in RECORD_FILTERS:
        if args.get(name):
            where.append(Filter(name, "==", args[name]))
    if args.get("updated_since"):
        try:
            since = isoformat(parse_iso(args["updated_since"]))
        except (ValueError, OverflowError):
            raise InvalidInput("updated_since must be an ISO-8601 timestamp") from None
        where.append(Filter("updated_at", ">=", since))
    return where


def list_records(ctx: Any, resource: str) -> Response:
    ctx.principal.require_scope("data:read")
    kind = RESOURCES[resource]
    args = ctx.request.args
    limit = page_limit(args.get("limit"))
    where = _filters(ctx.principal.tenant, args)
    after = _cursor(args.get("cursor"))
    if after is not None:
        where.append(Filter("id", ">", after))
    snaps = ctx.ports.business.query(kind, where, [Order("id")], limit + 1)
    items = _with_connection_end(ctx, [{k: v for k, v in s.data.items() if k not in _HIDDEN}
                                       for s in snaps[:limit] if _is_record(s.data)])
    more = len(snaps) > limit
    return json_response({"items": items,
                          "next_cursor": _encode(snaps[limit - 1].id) if more else None})


def _is_record(doc: dict[str, Any]) -> bool:
    """False for a placeholder tombstone: a deletion keyway heard of before it ever read the
    record, kept only so that a late create cannot resurrect it (it has no record fields)."""
    return "external_id" in doc


def listed_id(raw: str) -> str | None:
    """The record id a path segment names: the id exactly as a list showed it (``%2F``,
    ``%23`` and ``%3A`` included), or that id percent-encoded once more; ``None`` when
    neither form is a canonical record id (each ``:``-part what :func:`shared.ids.escape`
    makes of its decoded self), which no stored record has."""
    for candidate in (raw, unquote(raw)):
        parts = candidate.split(":")
        if len(parts) == 4 and all(p and ids.escape(unquote(p)) == p for p in parts):
            return candidate
    return None


def get_record(ctx: Any, resource: str, raw_id: str) -> Response:
    ctx.principal.require_scope("data:read")
    shown = include_deleted(ctx.request.args.get("include_deleted"))
    record_id = listed_id(raw_id)
    doc = None if record_id is None else ctx.ports.business.get(RESOURCES[resource], record_id)
    if doc is None or doc.get("tenant") != ctx.principal.tenant or not _is_record(doc) or (
            doc.get("deleted") and not shown):
        raise NotFound(f"no such {resource[:-1]}")
    return json_response(_with_connection_end(ctx, [
        {k: v for k, v in doc.items() if k not in _HIDDEN}])[0])


def _with_connection_end(ctx: Any, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each record with ``connection_ended_at``: when its connection was disconnected (its data
    is kept until the retention's purge, :mod:`shared.scheduler.purge`), else ``None``."""
    ended: dict[str, str | None] = {}
    for item in items:
        connection = item.get("connection")
        if connection not in ended:
            doc = ctx.ports.business.get("connections", connection) if connection else None
            ended[connection] = (doc or {}).get("disconnected_at")
        item["connection_ended_at"] = ended[connection]
    return items


def sync_status(ctx: Any, connection: str) -> Response:
    ctx.principal.require_scope("connections:read")
    record = ctx.ports.business.get("connections", connection)
    if record is None or record.get("tenant") != ctx.principal.tenant:
        raise NotFound("no such connection")
    status = ctx.ports.business.get("sync_status", connection) or {"state": "never"}
    keep = ("state", "started_at", "finished_at", "retry_at", "reason", "last_success_at",
            "consecutive_failures", "attempt", "last_run")
    missing = status.get("missing") or []  # parts the provider refused (shared.fetch.status)
    view = health.view(record, ctx.ports.business.get("sync_status", connection),
                       ctx.ports.clock.now())
    return json_response({"connection": connection, "status": record.get("status"),
                          "health": view, "next_sync_at": record.get("next_sync_at"),
                          "sync": {**{k: status.get(k) for k in keep},
                                   "degraded": bool(missing), "missing": missing,
                                   "progress": view.get("progress")}})
