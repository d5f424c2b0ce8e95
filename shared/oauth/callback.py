"""``GET /oauth-<provider>/callback``: the only place a provider's code becomes a token.

Order: consume the state (unknown, expired, replayed or another provider's → 400, nothing
stored) → the provider's ``error`` (``access_denied`` → back to the frontend with a status) →
redeem the code over HTTPS with the PKCE verifier → hand the token to the provider's vault
in-process (never published, never logged) → record the connection or identity (no token) →
request the first sync → redirect to the configured frontend URL with the connection id and a
status. The browser never sees a token and is only ever sent to the configured frontend.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from urllib.parse import urlencode

import requests
from flask import Response, redirect

from shared import messages
from shared.clock import isoformat
from shared.config import Config
from shared.errors import KeywayError, PermanentError
from shared.http import problem_from_error
from shared.log import get_logger
from shared.oauth import account, state
from shared.ports import Ports
from shared.providers import registry
from shared.vault.endpoints import endpoint_for
from shared.vault.handlers import service

log = get_logger("keyway.oauth")
SYNC_INTERVAL = timedelta(minutes=15)


def _back(config: Config, **params: str) -> Response:
    return redirect(f"{config.frontend_url}?{urlencode(params)}", code=302)


def callback(ports: Ports, config: Config, provider: str, args: Mapping[str, str],
             env: Mapping[str, str] | None = None,
             session: requests.Session | None = None) -> Response:
    env = os.environ if env is None else env
    try:
        flow = state.consume(ports, args.get("state"), provider)
    except state.InvalidState as e:
        log.warning(e.key, extra={"fields": {"provider": provider}})
        return problem_from_error(e)
    fields = {"provider": provider, "kind": flow.kind, "tenant": flow.tenant}
    if args.get("error"):
        status = "denied" if args.get("error") == "access_denied" else "error"
        log.info("oauth.provider_error", extra={"fields": {**fields, "status": status}})
        return _back(config, provider=provider, kind=flow.kind, status=status)
    if not args.get("code"):
        return problem_from_error(state.InvalidState("callback without a code"))
    try:
        result = _complete(ports, flow, args["code"], env, session or requests.Session())
    except KeywayError as e:
        log.warning(e.key, extra={"fields": fields})
        reason = "provider_unavailable" if e.retryable else e.key
        return _back(config, provider=provider, kind=flow.kind, status="error", reason=reason)
    log.info("oauth.connected", extra={"fields": fields})
    return _back(config, provider=provider, kind=flow.kind, status="connected", **result)


def _complete(ports: Ports, flow: state.PendingFlow, code: str, env: Mapping[str, str],
              session: requests.Session) -> dict[str, str]:
    spec = registry.get(flow.provider)
    endpoint = endpoint_for(flow.provider, ports, env, session, base_url=flow.base_url)
    tokens = endpoint.exchange_code(code, flow.redirect_uri, flow.verifier)
    api_base = registry.api_base_url(spec, env, flow.base_url)
    who = account.whoami(spec, api_base, tokens.access_token, session)
    vault = service(flow.provider, ports)
    if flow.kind == "personal":
        vault.store_personal_token(flow.tenant, flow.user, tokens, flow.base_url)
        _record_identity(ports, flow, who)
        return {"identity": "linked"}
    if not flow.connection:
        raise PermanentError("app flow without a connection id", key="oauth.bad_state")
    vault.store_app_token(flow.tenant, flow.connection, flow.user, tokens, flow.base_url)
    _record_connection(ports, flow, who, api_base)
    messages.publish(ports.bus, f"oauth-{flow.provider}", f"sync-requests-{flow.provider}",
                     "sync.requested", {"tenant": flow.tenant, "connection": flow.connection,
                                        "scope": "all", "reason": "first_sync",
                                        "requested_at": isoformat(ports.clock.now())},
                     ordering_key=flow.connection)
    return {"connection": flow.connection}


def _record_connection(ports: Ports, flow: state.PendingFlow, who: account.Account | None,
                       api_base: str) -> None:
    now = ports.clock.now()
    ports.business.put("connections", flow.connection or "", {
        "tenant": flow.tenant, "provider": flow.provider, "kind": "app", "status": "active",
        "base_url": flow.base_url, "api_base": api_base, "created_by": flow.user,
        "account": {"id": who.id, "login": who.login} if who else None,
        "created_at": isoformat(now), "next_sync_at": isoformat(now + SYNC_INTERVAL),
        "interval_seconds": int(SYNC_INTERVAL.total_seconds())})  # first sync: requested above


def _record_identity(ports: Ports, flow: state.PendingFlow,
                     who: account.Account | None) -> None:
    ports.business.put("identities", f"{flow.provider}:{flow.tenant}:{flow.user}", {
        "tenant": flow.tenant, "provider": flow.provider, "user": flow.user,
        "base_url": flow.base_url, "account": {"id": who.id, "login": who.login} if who else None,
        "linked_at": isoformat(ports.clock.now())})
