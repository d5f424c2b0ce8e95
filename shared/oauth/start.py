"""Start a connect (app token, admins only) or link (personal token, any member) flow.

Returns the provider's authorize URL with a fresh server-side state, PKCE S256 wherever the
provider supports it, the provider's minimal scopes for the token kind and the exact
registered redirect URI ``<public_url>/oauth-<provider>/callback``. A user-supplied base URL
(GitHub Enterprise Server, self-hosted GitLab) passes the SSRF guard first.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from shared.auth.principal import Principal
from shared.config import Config
from shared.errors import Conflict, InvalidInput
from shared.oauth import pkce, state
from shared.ports import Ports
from shared.providers import registry, ssrf


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
          base_url: str | None = None, env: Mapping[str, str] | None = None) -> Started:
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
    if base_url is not None:
        if not spec.self_hosted:
            raise InvalidInput(f"{provider} has no self-hosted variant", key="oauth.no_base_url")
        base_url = ssrf.check_base_url(base_url, local_mode=config.local_mode)
    client_id = registry.client_id(spec, env)
    if not client_id:
        raise ProviderNotConfigured(f"set KEYWAY_{provider.upper()}_CLIENT_ID")
    verifier = pkce.new_verifier() if spec.oauth.pkce else None
    flow = state.PendingFlow(
        tenant=principal.tenant, user=principal.user, kind=kind, provider=provider,
        redirect_uri=redirect_uri(config, provider), verifier=verifier, base_url=base_url,
        connection=f"c-{uuid.uuid4().hex}" if kind == "app" else None)
    params = {"client_id": client_id, "redirect_uri": flow.redirect_uri, "response_type": "code",
              "scope": spec.oauth.scope_separator.join(spec.oauth.scopes[kind]),
              "state": state.create(ports, flow), **spec.oauth.extra_authorize_params}
    if verifier:
        params.update(code_challenge=pkce.challenge_s256(verifier), code_challenge_method="S256")
    base = registry.oauth_base_url(spec, env, base_url)
    return Started(f"{base}{spec.oauth.authorize_path}?{urlencode(params)}", flow.connection,
                   int(state.TTL.total_seconds()))
