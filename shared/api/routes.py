"""The API's resources. Each handler is small: parse → call a service → JSON response."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Response, redirect

from shared.api import actions, connections, data, hosts, identities, openapi, reads, subscriptions
from shared.api.authn import local_issuer
from shared.console.web import mount as console_mount
from shared.errors import InvalidInput, NotFound
from shared.http import json_response
from shared.oauth.start import start
from shared.providers import registry

_RESULT_KEYS = ("provider", "kind", "status", "reason", "connection", "identity")


def _provider(body: dict[str, Any]) -> str:
    provider = body.get("provider")
    if not isinstance(provider, str) or provider not in registry.load():
        raise InvalidInput("provider must be one of " + ", ".join(sorted(registry.load())))
    return provider


def create_connection(ctx: Any) -> Response:
    body = ctx.json(("provider", "base_url", "github_app", "register_webhooks"))
    base_url = _base_url(body)
    github_app = body.get("github_app", False)
    if not isinstance(github_app, bool):
        raise InvalidInput("github_app must be a boolean")
    register_webhooks = body.get("register_webhooks")
    if register_webhooks is not None and not isinstance(register_webhooks, bool):
        raise InvalidInput("register_webhooks must be a boolean")
    started = start(ctx.ports, ctx.config, ctx.principal, _provider(body), "app", base_url,
                    github_app=github_app, register_webhooks=register_webhooks)
    return json_response({"authorize_url": started.authorize_url,
                          "connection": started.connection,
                          "expires_in": started.expires_in}, status=201)


def _base_url(body: dict[str, Any]) -> str | None:
    base_url = body.get("base_url")
    if base_url is not None and not isinstance(base_url, str):
        raise InvalidInput("base_url must be a string")
    return base_url


def create_identity(ctx: Any) -> Response:
    body = ctx.json(("provider", "base_url"))
    started = start(ctx.ports, ctx.config, ctx.principal, _provider(body), "personal",
                    _base_url(body))
    return json_response({"authorize_url": started.authorize_url,
                          "expires_in": started.expires_in}, status=201)


def connect_result(ctx: Any) -> Response:
    """Where the browser lands after a flow when no frontend is configured (local mode): a
    browser (``Accept`` preferring HTML) is sent on to the console's result page."""
    result = {k: ctx.request.args[k] for k in _RESULT_KEYS if k in ctx.request.args}
    if ctx.request.accept_mimetypes.best_match(("application/json", "text/html")) == "text/html":
        return redirect(f"{console_mount(ctx.config)}/console/connect/result?{urlencode(result)}",
                        code=303)
    return json_response(result)


def local_jwks(ctx: Any) -> Response:
    if not ctx.config.local_mode:
        raise NotFound("no local issuer outside local mode")
    return json_response(local_issuer(ctx.config, ctx.ports.clock).jwks())


_KINDS = "|".join(data.RESOURCES)

TABLE = [
    ("POST", "/v1/connections", create_connection, False),
    ("GET", "/v1/connections", reads.list_connections, False),
    ("GET", "/v1/connections/(?P<connection>[^/]+)", reads.get_connection, False),
    ("DELETE", "/v1/connections/(?P<connection>[^/]+)", connections.delete_connection, False),
    ("POST", "/v1/connections/(?P<connection>[^/]+)/sync", connections.sync_now, False),
    ("POST", "/v1/connections/(?P<connection>[^/]+)/reauthorize", connections.reauthorize,
     False),
    ("GET", "/v1/connections/(?P<connection>[^/]+)/status",
     lambda ctx: data.sync_status(ctx, ctx.params["connection"]), False),
    ("GET", f"/v1/(?P<resource>{_KINDS})",
     lambda ctx: data.list_records(ctx, ctx.params["resource"]), False),
    ("GET", f"/v1/(?P<resource>{_KINDS})/(?P<record_id>[^/]+)",
     lambda ctx: data.get_record(ctx, ctx.params["resource"], ctx.params["record_id"]), False),
    ("GET", "/v1/freshness", reads.tenant_freshness, False),
    ("POST", "/v1/identities", create_identity, False),
    ("GET", "/v1/identities", identities.list_identities, False),
    ("DELETE", "/v1/identities/(?P<provider>[^/]+)", identities.unlink_identity, False),
    ("POST", "/v1/hosts", hosts.create_host, False),
    ("GET", "/v1/hosts", hosts.list_hosts, False),
    ("DELETE", "/v1/hosts/(?P<host>[^/]+)", hosts.delete_host, False),
    ("POST", "/v1/actions", actions.create_action, False),
    ("GET", "/v1/actions", reads.list_actions, False),
    ("GET", "/v1/actions/(?P<action_id>[^/]+)", actions.get_action, False),
    ("POST", "/v1/subscriptions", subscriptions.create_subscription, False),
    ("GET", "/v1/subscriptions", subscriptions.list_subscriptions, False),
    ("DELETE", "/v1/subscriptions/(?P<subscription>[^/]+)", subscriptions.delete_subscription,
     False),
    ("GET", "/v1/subscriptions/(?P<subscription>[^/]+)/deliveries",
     subscriptions.list_deliveries, False),
    ("GET", "/v1/connect-result", connect_result, True),
    ("GET", "/local-issuer/.well-known/jwks.json", local_jwks, True),
    ("GET", "/openapi.json", openapi.serve, True),
]
