"""``/v1/identities``: a member's linked personal identities.

* ``GET /v1/identities?user=`` — scope ``connections:read``: the caller's own linked identities
  (provider, account, linked_at, status); an admin may name a member with ``user``.
* ``DELETE /v1/identities/{provider}?user=`` — scope ``connections:write``: unlink one's own
  identity (an admin may name a member); see :func:`unlink_identity`.

Another tenant's identity is never seen; nothing here carries a token.
"""

from __future__ import annotations

from typing import Any

from flask import Response

from shared import ids, messages
from shared.clock import isoformat
from shared.errors import NotFound
from shared.http import json_response
from shared.ports import Filter
from shared.providers import registry

IDENTITY_KEYS = ("provider", "user", "base_url", "host", "account", "linked_at", "status",
                 "status_reason")


def list_identities(ctx: Any) -> Response:
    principal = ctx.principal
    principal.require_scope("connections:read")
    user = ctx.request.args.get("user") or principal.user
    if user != principal.user:
        principal.require_admin()
    snaps = ctx.ports.business.query("identities", [Filter("tenant", "==", principal.tenant),
                                                    Filter("user", "==", user)])
    return json_response({"items": [{k: s.data.get(k) for k in IDENTITY_KEYS}
                                    for s in sorted(snaps, key=lambda s: s.data["provider"])]})


def unlink_identity(ctx: Any) -> Response:
    """``DELETE /v1/identities/{provider}?user=`` — one's own identity (an admin may name a
    member): 202 ``unlinking``; the provider's vault deletes the personal token (revoked unless
    its grant is shared) and then the identity, so no action can use it afterwards."""
    principal = ctx.principal
    ctx.json((), required=False)
    principal.require_scope("connections:write")
    user = ctx.request.args.get("user") or principal.user
    if user != principal.user:
        principal.require_admin()
    provider = ctx.params["provider"]
    key = ids.identity_id(provider, principal.tenant, user) if provider in registry.load() else ""
    doc = ctx.ports.business.get("identities", key) if key else None
    if doc is None or doc.get("tenant") != principal.tenant:
        raise NotFound("no such identity")
    ctx.ports.business.put("identities", key, {**doc, "status": "unlinking",
                                               "status_reason": None})
    messages.publish(ctx.ports.bus, "api", f"connection-control-{provider}", "identity.unlink",
                     {"tenant": principal.tenant, "user": user,
                      "requested_by": principal.user,
                      "requested_at": isoformat(ctx.ports.clock.now())}, ordering_key=key)
    return json_response({"provider": provider, "user": user, "status": "unlinking"}, 202)
