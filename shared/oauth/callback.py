"""``GET /oauth-<provider>/callback``: the only place a provider's code becomes a token.

Order: consume the state (unknown, expired, replayed or another provider's → a 400 plain
page ``oauth.invalid_state``, nothing stored) → the browser binding: the flow's cookie from
the start step must be present and match the hash on the state
(:mod:`shared.oauth.flowcookie`), else a 400 plain page ``oauth.flow_not_bound`` and nothing
stored; that attempt uses the state up too, so the flow must be started again → the
provider's ``error`` (``access_denied`` → back to the frontend with a status) → redeem the
code over HTTPS with the PKCE verifier → the provider's post-connect lookup, if any (Jira: the
site's cloud id, :mod:`shared.oauth.post_connect`) → hand the token to the provider's vault
in-process (never published, never logged) → record the connection or identity (no token) →
request the first sync → redirect to the configured frontend URL with the connection id and a
status. The browser never sees a token and is only ever sent to the configured frontend.
Every answer also expires the flow's cookie.

When the admin left webhook registration on (``register_webhooks``), the callback first stores
a fresh random per-connection webhook secret (``webhook-secret-<connection>``, 256 bits, never
logged) as a new secret version; the connection document records only the choice. The
fetcher registers the hooks with it during a sync (:mod:`shared.webhooks.register`). If a
later step fails, the secret is deleted again (best effort). Jira's dynamic webhooks are
signed with the OAuth client secret instead, so no per-connection secret is made for them.

A GitHub App install flow also brings ``installation_id`` and a code GitHub issued to the
GitHub App's own OAuth client, so it is redeemed with that client (``KEYWAY_GITHUB_APP_CLIENT_ID``
and the secret ``github-app-client-secret``; GitHub refuses it to the OAuth App's client with
``bad_verification_code`` → ``oauth.code_rejected``, nothing stored). The code's user-to-server
token must see that installation (``GET /user/installations``, else
``github_app.not_your_installation`` and nothing stored); then the vault records the
installation and the user token is dropped, never stored or logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from urllib.parse import urlencode

import requests
from flask import Response, redirect

from shared import health, ids, messages
from shared.clock import isoformat
from shared.config import Config
from shared.errors import InvalidInput, KeywayError, PermanentError
from shared.log import get_logger
from shared.oauth import account, flowcookie, pages, post_connect, same_account, state
from shared.ports import Ports
from shared.providers import registry
from shared.vault.endpoints import endpoint_for
from shared.vault.github_app import verify_installation_belongs_to_user
from shared.vault.handlers import service
from shared.webhooks import secrets as webhook_secrets
from shared.webhooks.hooks import uses_connection_secret

log = get_logger("keyway.oauth")
SYNC_INTERVAL = timedelta(minutes=15)


class NotBound(InvalidInput):
    key, title = "oauth.flow_not_bound", "This sign-in did not start in this browser"


class NotYourInstallation(PermanentError):
    key, title = "github_app.not_your_installation", "You cannot access this installation"


def _back(config: Config, **params: str) -> Response:
    return redirect(f"{config.frontend_url}?{urlencode(params)}", code=302)


def callback(ports: Ports, config: Config, provider: str, args: Mapping[str, str],
             env: Mapping[str, str] | None = None, session: requests.Session | None = None,
             cookies: Mapping[str, str] | None = None) -> Response:
    value = args.get("state")
    response = _answer(ports, config, provider, args, env, session, cookies or {})
    if value and len(value) <= 256:  # this flow is over, whatever happened
        flowcookie.forget(config, response, flowcookie.name(config, value))
    return response


def _answer(ports: Ports, config: Config, provider: str, args: Mapping[str, str],
            env: Mapping[str, str] | None, session: requests.Session | None,
            cookies: Mapping[str, str]) -> Response:
    env = os.environ if env is None else env
    try:
        flow = state.consume(ports, args.get("state"), provider)
    except state.InvalidState as e:
        log.warning(e.key, extra={"fields": {"provider": provider}})
        return pages.refusal(e)
    fields = {"provider": provider, "kind": flow.kind, "tenant": flow.tenant}
    if not flowcookie.matches(config, args.get("state") or "", flow, cookies):
        refused = NotBound("this browser did not start this sign-in, or kept no cookie from "
                           "its start; nothing was stored")
        log.warning(refused.key, extra={"fields": fields})
        return pages.refusal(refused)
    if args.get("error"):
        status = "denied" if args.get("error") == "access_denied" else "error"
        log.info("oauth.provider_error", extra={"fields": {**fields, "status": status}})
        return _back(config, provider=provider, kind=flow.kind, status=status)
    if not args.get("code"):
        return pages.refusal(state.InvalidState("callback without a code"))
    try:
        result = _complete(ports, flow, args, env, session or requests.Session())
    except KeywayError as e:
        log.warning(e.key, extra={"fields": fields})
        reason = "provider_unavailable" if e.retryable else e.key
        existing = ({"connection": e.connection}
                    if isinstance(e, same_account.DuplicateAccount) else {})
        return _back(config, provider=provider, kind=flow.kind, status="error", reason=reason,
                     **existing)
    log.info("oauth.connected", extra={"fields": fields})
    return _back(config, provider=provider, kind=flow.kind, status="connected", **result)


def _complete(ports: Ports, flow: state.PendingFlow, args: Mapping[str, str],
              env: Mapping[str, str], session: requests.Session) -> dict[str, str]:
    spec = registry.get(flow.provider)
    installation_id = _installation_id(flow, args)
    endpoint = endpoint_for(flow.provider, ports, env, session, base_url=flow.base_url,
                            github_app=flow.github_app,  # the install code is the App's
                            host=flow.host, tenant=flow.tenant)  # a host: its own client
    tokens = endpoint.exchange_code(args["code"], flow.redirect_uri, flow.verifier)
    found = post_connect.run(spec, env, registry.api_base_url(spec, env, flow.base_url),
                             tokens.access_token, session)
    api_base = found.api_base
    if installation_id and not verify_installation_belongs_to_user(
            api_base, tokens.access_token, installation_id, session):
        raise NotYourInstallation("the user cannot access this installation")
    who = account.whoami(spec, api_base, tokens.access_token, session)
    vault = service(flow.provider, ports)
    if flow.kind == "personal":
        vault.store_personal_token(flow.tenant, flow.user, tokens, flow.base_url,
                                   host=flow.host)
        _record_identity(ports, flow, who)
        return {"identity": "linked"}
    if not flow.connection:
        raise PermanentError("app flow without a connection id", key="oauth.bad_state")
    if flow.reauthorize:
        try:
            same_account.reauthorized(ports, flow, who, tokens, api_base, installation_id, vault)
        except KeywayError:
            same_account.discard(spec, endpoint, tokens)
            raise
        return {"connection": flow.connection}
    duplicate = same_account.existing(ports, flow, who, installation_id)
    if duplicate is not None:
        same_account.discard(spec, endpoint, tokens)
        raise same_account.DuplicateAccount(duplicate)
    hooks = flow.register_webhooks and not installation_id and uses_connection_secret(spec)
    secret_name = webhook_secrets.create_connection_secret(ports.secrets, flow.connection) \
        if hooks else None
    try:
        if installation_id:  # the user token only proved access to the installation: dropped
            vault.store_installation(flow.tenant, flow.connection, flow.user, installation_id)
        else:
            vault.store_app_token(flow.tenant, flow.connection, flow.user, tokens,
                                  flow.base_url, host=flow.host)
        _record_connection(ports, flow, who, api_base, installation_id, found.fields)
        health.observe(ports, flow.connection or "")
        messages.publish(ports.bus, f"oauth-{flow.provider}", f"sync-requests-{flow.provider}",
                         "sync.requested", {"tenant": flow.tenant, "connection": flow.connection,
                                            "scope": "all", "reason": "first_sync",
                                            "requested_at": isoformat(ports.clock.now())},
                         ordering_key=flow.connection)
    except BaseException:
        if secret_name is not None:
            _forget_secret(ports, flow.connection)
        raise
    return {"connection": flow.connection}


def _forget_secret(ports: Ports, connection: str) -> None:
    """Best effort: the connection was not made, so its webhook secret should not stay."""
    try:
        webhook_secrets.delete_connection_secrets(ports.secrets, connection)
    except KeywayError as e:
        log.warning("oauth.webhook_secret_cleanup_failed",
                    extra={"fields": {"connection": connection, "reason": e.key}})


def _installation_id(flow: state.PendingFlow, args: Mapping[str, str]) -> str | None:
    """The installation a GitHub App install flow came back with (None for other flows)."""
    if not flow.github_app:
        return None
    installation_id = args.get("installation_id")
    if not installation_id or args.get("setup_action") not in (None, "install", "update"):
        raise PermanentError("GitHub sent no installation (an owner must approve the "
                             "install request first)", key="github_app.no_installation")
    return installation_id


def _record_connection(ports: Ports, flow: state.PendingFlow, who: account.Account | None,
                       api_base: str, installation_id: str | None,
                       extra: dict | None = None) -> None:
    now = ports.clock.now()
    ports.business.put("connections", flow.connection or "", {**(extra or {}),
        "tenant": flow.tenant, "provider": flow.provider, "kind": "app", "status": "active",
        "base_url": flow.base_url, "host": flow.host, "api_base": api_base,
        "created_by": flow.user,
        "account": who.record() if who else None,
        "installation_id": installation_id,
        "register_webhooks": bool(flow.register_webhooks and not installation_id),
        "created_at": isoformat(now), "next_sync_at": isoformat(now + SYNC_INTERVAL),
        "interval_seconds": int(SYNC_INTERVAL.total_seconds())})  # first sync: requested above


def _record_identity(ports: Ports, flow: state.PendingFlow,
                     who: account.Account | None) -> None:
    ports.business.put("identities", ids.identity_id(flow.provider, flow.tenant, flow.user), {
        "tenant": flow.tenant, "provider": flow.provider, "user": flow.user,
        "base_url": flow.base_url, "host": flow.host,
        "account": who.record() if who else None, "linked_at": isoformat(ports.clock.now())})
