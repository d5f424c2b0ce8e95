"""``/v1/subscriptions``: a tenant's webhook subscriptions to keyway's notifications.

* ``POST /v1/subscriptions {url, events}`` — admins, scope ``connections:write``: ``201`` with
  the subscription and its signing ``secret``, shown this once; ``400`` for an unknown event
  type (``subscription.unknown_event``), a malformed list (``subscription.invalid_events``) or
  a URL the SSRF guard refuses (``ssrf.refused``, ``subscription.invalid_url``); ``409``
  ``subscription.limit`` past 20 a tenant.
* ``GET /v1/subscriptions`` — scope ``connections:read``: the tenant's subscriptions (never a
  secret).
* ``DELETE /v1/subscriptions/{id}`` — admins, scope ``connections:write``: deletes it and its
  secret; nothing more is sent to it.
* ``GET /v1/subscriptions/{id}/deliveries?limit=`` — scope ``connections:read``: the newest
  deliveries, each with its attempts.

Another tenant's subscription answers 404 like a missing one.
"""

from __future__ import annotations

from typing import Any

from flask import Response

from shared.api.data import page_limit
from shared.http import json_response
from shared.notify import deliver, subscriptions


def create_subscription(ctx: Any) -> Response:
    body = ctx.json(("url", "events"))
    ctx.principal.require_scope("connections:write")
    ctx.principal.require_admin()
    made = subscriptions.create(ctx.ports, ctx.principal.tenant, ctx.principal.user, body,
                                local_mode=ctx.config.local_mode)
    return json_response(made, status=201)


def list_subscriptions(ctx: Any) -> Response:
    ctx.principal.require_scope("connections:read")
    return json_response({"items": subscriptions.listing(ctx.ports, ctx.principal.tenant)})


def delete_subscription(ctx: Any) -> Response:
    ctx.json((), required=False)  # no body, or an empty JSON object
    ctx.principal.require_scope("connections:write")
    ctx.principal.require_admin()
    subscriptions.delete(ctx.ports, ctx.principal.tenant, ctx.params["subscription"])
    return json_response({"id": ctx.params["subscription"], "status": "deleted"})


def list_deliveries(ctx: Any) -> Response:
    ctx.principal.require_scope("connections:read")
    subscription = ctx.params["subscription"]
    subscriptions.own(ctx.ports, ctx.principal.tenant, subscription)
    limit = page_limit(ctx.request.args.get("limit"))
    return json_response({"items": deliver.recent(ctx.ports, subscription, limit)})
