"""``/api/v1/hosts``: a tenant admin registers the self-hosted hosts (GitHub Enterprise
Server, self-managed GitLab) the tenant may connect, each with that host's own OAuth client
(:mod:`shared.hosts.registry`). Registering and removing need ``connections:write`` and the
admin role; listing needs ``connections:read``. No answer ever carries the client secret.
"""

from __future__ import annotations

from typing import Any

from flask import Response

from shared.errors import InvalidInput
from shared.hosts import registry as hosts
from shared.http import json_response
from shared.log import get_logger
from shared.providers import registry

log = get_logger("keyway.api.hosts")


def create_host(ctx: Any) -> Response:
    body = ctx.json(("provider", "base_url", "client_id", "client_secret"))
    ctx.principal.require_scope("connections:write")
    ctx.principal.require_admin()
    provider = body.get("provider")
    if not isinstance(provider, str) or provider not in registry.load():
        raise InvalidInput("provider must be one of " + ", ".join(sorted(registry.load())))
    host = hosts.register(ctx.ports, tenant=ctx.principal.tenant, provider=provider,
                          base_url=body.get("base_url"), client_id=body.get("client_id"),
                          client_secret=body.get("client_secret"),
                          created_by=ctx.principal.user, local_mode=ctx.config.local_mode)
    log.info("hosts.registered", extra={"fields": {"tenant": host.tenant, "host": host.id,
                                                   "provider": provider}})
    return json_response(host.view(), status=201)


def list_hosts(ctx: Any) -> Response:
    ctx.principal.require_scope("connections:read")
    return json_response({"items": [h.view() for h in
                                    hosts.list_hosts(ctx.ports, ctx.principal.tenant)]})


def delete_host(ctx: Any) -> Response:
    ctx.json((), required=False)
    ctx.principal.require_scope("connections:write")
    ctx.principal.require_admin()
    host = hosts.remove(ctx.ports, ctx.principal.tenant, ctx.params["host"])
    log.info("hosts.removed", extra={"fields": {"tenant": host.tenant, "host": host.id}})
    return Response(status=204)
