"""The operations pages: connections (health, reason, progress, freshness), one connection
(sync now, disconnect, its webhook registrations, a comment form), recent actions, and
notification subscriptions with their deliveries.

Every read and write goes through the API's handlers (:mod:`shared.console.calls`), so a
member's post of an admin-only form is refused by the same check as the API's (403
``auth.admin_required``, nothing changed) — the pages only leave the buttons out. Members
only read here, except what is their own: linking their account and asking for a comment
under it. "Sync now", which the API also grants members, is for admins in the console.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response

from shared.api import actions as api_actions
from shared.api import connections as api_connections
from shared.api import data, reads
from shared.api import subscriptions as api_subscriptions
from shared.console.calls import ok
from shared.errors import InvalidInput
from shared.notify.events import TYPES as EVENT_TYPES
from shared.webhooks import hooks


def _ok(page: Any, handler: Any, **kwargs: Any) -> Any:
    return ok(page.ports, page.config, page.who, handler, **kwargs)


def connections(page: Any) -> Response:
    items = _ok(page, reads.list_connections)["items"]
    items.sort(key=lambda c: c.get("created_at") or "", reverse=True)
    return page.render("connections.html", title="Connections", items=items)


def connection(page: Any) -> Response:
    params = {"connection": page.params["connection"]}
    detail = _ok(page, reads.get_connection, params=params)  # another tenant's: 404
    status = _ok(page, lambda ctx: data.sync_status(ctx, params["connection"]), params=params)
    registrations = sorted(hooks.for_connection(page.ports.business,
                                                params["connection"]).values(),
                           key=lambda r: r.get("repository") or "")
    repositories = _ok(page, lambda ctx: data.list_records(ctx, "repositories"),
                       args={"connection": params["connection"], "limit": "100"})["items"]
    return page.render("connection.html", flow_forms=True,
                       title=_title(detail), c=detail, sync=status["sync"],
                       registrations=registrations, repositories=repositories,
                       action_id=uuid.uuid4().hex)


def _title(detail: dict) -> str:
    account = (detail.get("account") or {}).get("login")
    return f"{detail.get('provider')} connection" + (f" · {account}" if account else "")


def sync_now(page: Any) -> Response:
    page.who.require_admin()  # the console's members only read (the API lets them sync)
    connection = page.params["connection"]
    _ok(page, api_connections.sync_now, params={"connection": connection})
    return page.go(f"/console/connections/{connection}")


def disconnect(page: Any) -> Response:
    connection = page.params["connection"]
    args = {"purge": "true"} if page.request.form.get("purge") == "true" else {}
    _ok(page, api_connections.delete_connection, params={"connection": connection}, args=args)
    return page.go(f"/console/connections/{connection}")


def comment(page: Any) -> Response:
    form, connection = page.request.form, page.params["connection"]
    try:
        number = int(form.get("number") or "")
    except ValueError:
        raise InvalidInput("the number must be a whole number",
                           key="console.bad_number") from None
    body = {"connection": connection, "kind": "comment", "body": form.get("body") or "",
            "action_id": form.get("action_id") or uuid.uuid4().hex,
            "target": {"repository": form.get("repository") or "",
                       "parent_kind": form.get("parent_kind") or "", "number": number}}
    _ok(page, api_actions.create_action, body=body)
    return page.go("/console/actions")


def actions(page: Any) -> Response:
    items = _ok(page, reads.list_actions, args={"limit": "50"})["items"]
    return page.render("actions.html", title="Recent actions", items=items)


def subscriptions(page: Any, made: dict | None = None) -> Response:
    items = _ok(page, api_subscriptions.list_subscriptions)["items"]
    for item in items:
        item["deliveries"] = _ok(page, api_subscriptions.list_deliveries,
                                 params={"subscription": item["id"]},
                                 args={"limit": "10"})["items"]
    return page.render("subscriptions.html", title="Notification subscriptions", items=items,
                       events=sorted(EVENT_TYPES), made=made)


def subscribe(page: Any) -> Response:
    form = page.request.form
    made = _ok(page, api_subscriptions.create_subscription,
               body={"url": form.get("url") or "", "events": form.getlist("events")})
    response = subscriptions(page, made)  # the signing secret is shown this once
    response.status_code = 201
    return response


def unsubscribe(page: Any) -> Response:
    _ok(page, api_subscriptions.delete_subscription,
        params={"subscription": page.params["subscription"]})
    return page.go("/console/subscriptions")
