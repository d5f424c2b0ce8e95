"""Start a connect (app token, admins only) or link (personal token, any member) flow.

Stores a fresh server-side state with the provider's authorize URL — PKCE S256 wherever the
provider supports it, the provider's minimal scopes for the token kind and the exact
registered redirect URI ``<public_url>/oauth-<provider>/callback`` — and returns keyway's own
start URL ``<public_url>/oauth-<provider>/start?state=…``: the browser that opens it is bound
to the flow there, then sent on to the provider (:mod:`shared.oauth.begin`). A user-supplied
base URL (GitHub Enterprise Server, self-hosted GitLab) passes the SSRF guard first and must be
a host the tenant registered, whose own client id the authorize URL then carries
(:mod:`shared.hosts.clients`; else 400 ``oauth.host_not_registered``, nothing stored).

``register_webhooks`` (app connections only; default: the provider table's
``webhook_registration.default``) adds that table entry's scopes to the app scopes, so the
fetcher can register keyway's hooks with the app token (:mod:`shared.webhooks.register`).
Asking for it on a provider without ``webhook_registration``, or on a GitHub App installation
(whose app-level webhook is used instead), is a 400 ``oauth.no_webhook_registration``.

``github_app=True`` (admins' app connections to GitHub) installs the GitHub App instead:
``<oauth base>/apps/<KEYWAY_GITHUB_APP_SLUG>/installations/new?state=…``. GitHub sends the admin
back to the same callback with ``installation_id`` and a code for their user-to-server token
(the app must "request user authorization during installation"); no PKCE on that path. That
code belongs to the GitHub App's own OAuth client, so the flow needs
``KEYWAY_GITHUB_APP_CLIENT_ID`` (not the OAuth App's ``KEYWAY_GITHUB_CLIENT_ID``); without it
the start is a 409 ``oauth.provider_not_configured`` naming the variable, nothing stored.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import urlencode

from shared.auth.principal import Principal
from shared.config import Config
from shared.errors import ConfigError, Conflict, InvalidInput
from shared.hosts import clients
from shared.oauth import pkce, state
from shared.ports import Ports
from shared.providers import registry
from shared.providers.schema import ProviderSpec
from shared.vault.github_app import APP_ID_ENV

SLUG_ENV = "KEYWAY_GITHUB_APP_SLUG"
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,99}")


class NoWebhookRegistration(InvalidInput):
    key, title = "oauth.no_webhook_registration", "Webhook registration is not available here"


class ProviderNotConfigured(Conflict):
    key, title = "oauth.provider_not_configured", "This provider has no OAuth client configured"


@dataclass(frozen=True)
class Started:
    authorize_url: str
    connection: str | None
    expires_in: int


def redirect_uri(config: Config, provider: str) -> str:
    return f"{config.public_url}/oauth-{provider}/callback"


def start(ports: Ports, config: Config, principal: Principal, provider: str, kind: str,
          base_url: str | None = None, env: Mapping[str, str] | None = None, *,
          github_app: bool = False, register_webhooks: bool | None = None,
          reauthorize: str | None = None) -> Started:
    env = os.environ if env is None else env
    if kind == "app":
        principal.require_scope("connections:write")
        principal.require_admin()
    elif kind == "personal":
        principal.require_scope("connections:write")
    else:
        raise InvalidInput("kind must be app or personal")
    spec = registry.get(provider)
    if not spec.enabled:
        raise InvalidInput(f"{provider} is not enabled yet", key="oauth.provider_disabled")
    slug = _app_slug(spec, kind, base_url, env) if github_app else None
    hooks = _webhook_choice(spec, kind, github_app, register_webhooks)
    client = clients.for_flow(ports, config, spec, principal.tenant, base_url, env,
                              github_app=github_app)  # a base URL: that host's own client
    base_url, client_id = client.base_url, client.client_id
    if not client_id:  # an install flow's code is redeemed with the App's own client
        raise ProviderNotConfigured(f"set {registry.client_id_env(spec, github_app=github_app)}")
    verifier = pkce.new_verifier() if spec.oauth.pkce and not github_app else None
    flow = state.PendingFlow(
        tenant=principal.tenant, user=principal.user, kind=kind, provider=provider,
        redirect_uri=redirect_uri(config, provider), verifier=verifier, base_url=base_url,
        connection=(reauthorize or f"c-{uuid.uuid4().hex}") if kind == "app" else None,
        github_app=github_app, register_webhooks=hooks, reauthorize=reauthorize is not None,
        host=client.host)
    base = registry.oauth_base_url(spec, env, base_url)
    url = (f"{base}/apps/{slug}/installations/new" if slug
           else _authorize_url(base, spec, flow, client_id))
    value = state.create(ports, replace(flow, provider_url=url))  # the state is added at start
    return Started(start_url(config, provider, value), flow.connection,
                   int(state.TTL.total_seconds()))


def start_url(config: Config, provider: str, value: str) -> str:
    """Where the browser begins: keyway's start step (:mod:`shared.oauth.begin`)."""
    return f"{config.public_url}/oauth-{provider}/start?{urlencode({'state': value})}"


def _authorize_url(base: str, spec: ProviderSpec, flow: state.PendingFlow,
                   client_id: str) -> str:
    scopes = spec.oauth.scopes[flow.kind]
    if flow.register_webhooks and spec.webhook_registration is not None:
        scopes = scopes + spec.webhook_registration.scopes
    params = {"client_id": client_id, "redirect_uri": flow.redirect_uri, "response_type": "code",
              "scope": spec.oauth.scope_separator.join(scopes),
              **spec.oauth.extra_authorize_params}
    if flow.verifier:
        params.update(code_challenge=pkce.challenge_s256(flow.verifier),
                      code_challenge_method="S256")
    return f"{base}{spec.oauth.authorize_path}?{urlencode(params)}"


def _webhook_choice(spec: ProviderSpec, kind: str, github_app: bool,
                    requested: bool | None) -> bool:
    """Whether this app connection registers keyway's webhooks (see the module docstring)."""
    registration = spec.webhook_registration
    if requested is None:
        return kind == "app" and not github_app and bool(registration and registration.default)
    if requested and (kind != "app" or registration is None or github_app):
        where = "a GitHub App installation" if github_app else f"{spec.name} {kind} flows"
        raise NoWebhookRegistration(f"keyway registers no webhooks for {where}")
    return requested


def _app_slug(spec: ProviderSpec, kind: str, base_url: str | None,
              env: Mapping[str, str]) -> str:
    """The GitHub App's slug (``KEYWAY_GITHUB_APP_SLUG``) for an installation flow: admins'
    app connections to the one configured app only (no per-connection base URL)."""
    if kind != "app" or spec.github_app is None:
        raise InvalidInput(f"{spec.name} has no app installation flow", key="oauth.no_github_app")
    if base_url is not None:
        raise InvalidInput("a GitHub App installation takes no base_url",
                           key="oauth.no_base_url")
    slug = (env.get(SLUG_ENV) or "").strip()
    if not slug or not (env.get(APP_ID_ENV) or "").strip():
        raise ProviderNotConfigured(f"set {SLUG_ENV} and {APP_ID_ENV}")
    if not _SLUG.fullmatch(slug):
        raise ConfigError(f"{SLUG_ENV} is not a GitHub App slug", key="github_app.bad_slug")
    return slug
