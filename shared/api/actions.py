"""``/v1/actions``: request a user-attributed comment and read back how it went.

* ``POST /v1/actions`` — scope ``actions:write``. ``202`` with the new action (``pending``),
  ``200`` with the existing one when the same user repeats the same request with the same
  ``action_id``; ``400`` malformed; ``404`` the connection or repository is not the caller
  tenant's; ``409`` the ``action_id`` belongs to another request of the same tenant (ids are
  per tenant: another tenant's equal id is an independent action), or the caller has no linked
  identity with the provider — that problem carries ``link_url`` (``/api/v1/identities``),
  ``link_method`` and ``link_body`` so the frontend can start linking at once.
* ``GET /v1/actions/{id}`` — scope ``actions:write`` or ``data:read``. ``pending``, ``done``
  (with ``provider_comment_id``, ``url`` and the ``comment`` record id) or ``failed`` (with a
  stable ``reason``); another tenant's action answers 404 like a missing one.

Responses never carry a token: an action document holds none, and :func:`model.view` picks
the fields shown.
"""

from __future__ import annotations

from typing import Any

from flask import Response

from shared.actions import model
from shared.actions.request import IdentityRequired, request_action
from shared.errors import Forbidden, NotFound
from shared.http import json_response, problem

LINK_URL = "/api/v1/identities"
_READ_SCOPES = ("actions:write", "data:read")


def create_action(ctx: Any) -> Response:
    try:
        action, created = request_action(ctx.ports, ctx.principal, ctx.json(model.FIELDS))
    except IdentityRequired as e:
        return problem(e.status, e.title, e.detail, code=e.key, provider=e.provider,
                       link_url=LINK_URL, link_method="POST",
                       link_body={"provider": e.provider})
    return json_response(action, status=202 if created else 200)


def get_action(ctx: Any) -> Response:
    principal = ctx.principal
    if not any(principal.has_scope(scope) for scope in _READ_SCOPES):
        raise Forbidden("this request needs the scope actions:write or data:read",
                        key="auth.insufficient_scope")
    action_id = ctx.params["action_id"]
    doc = ctx.ports.business.get(model.COLLECTION, model.doc_id(
        principal.tenant, action_id)) if model.is_action_id(action_id) else None
    if doc is None or doc.get("tenant") != principal.tenant:
        raise NotFound("no such action")
    return json_response(model.view(action_id, doc))
